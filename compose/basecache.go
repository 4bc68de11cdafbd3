package compose

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/strata-os/strata/checkout"
	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// The base cache keeps the tree mmdebstrap made from a lock (before the
// spec's files, users, units and layout are applied) as a commit of a bare
// repository in the cache ($STRATA_CACHE/base-repo, ref compose/base/KEY),
// so a rebuild of a spec whose lock is unchanged skips mmdebstrap. It is
// read back through checkout, which verifies every file against its
// checksum. KEY covers everything the tree depends on: the lock, the
// strata binary and initramfs modules put in before the kernel's
// postinst, the [ids] pins and the build clock.
const baseRefPrefix = "compose/base/"

// baseKeep is how many cached bases are kept (each a few hundred MiB,
// shared objects counted once).
const baseKeep = 4

func baseKey(s *Spec, l *Lock, strataBin string, epoch int64) (string, error) {
	sum, err := fsutil.FileSHA256(strataBin)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "lock %s\nstrata %s\nepoch %d\nmodules %s\n", l.Digest(), sum, epoch, strings.Join(s.Kernel.InitramfsModules, ","))
	for _, n := range sortedKeys(s.IDs.Users) {
		fmt.Fprintf(h, "uid %s %d\n", n, s.IDs.Users[n])
	}
	for _, n := range sortedKeys(s.IDs.Groups) {
		fmt.Fprintf(h, "gid %s %d\n", n, s.IDs.Groups[n])
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

func baseRepo(o *Options) (*repo.Repo, error) {
	p := filepath.Join(o.CacheDir, "base-repo")
	r, err := repo.Open(p)
	if err == nil {
		return r, nil
	}
	if _, serr := os.Stat(p); serr == nil {
		return nil, err
	}
	return repo.Init(p, repo.ModeBare, repo.InitOptions{})
}

// restoreBase checks the cached base KEY out into root (copies, verified).
func restoreBase(ctx context.Context, o *Options, key, root string) (bool, error) {
	r, err := baseRepo(o)
	if err != nil {
		return false, err
	}
	c, err := r.ReadRef("heads/" + baseRefPrefix + key)
	if err != nil {
		return false, nil
	}
	o.Progress.Phase("unpack", "files", 0)
	defer o.Progress.Done()
	if err := checkout.Checkout(ctx, r, c, root, checkout.Options{ForceCopy: true, Progress: o.Progress}); err != nil {
		_ = os.RemoveAll(root)
		return false, fmt.Errorf("cached base %s: %w", key, err)
	}
	return true, nil
}

// storeBase commits root as the cached base KEY and drops the oldest
// bases beyond baseKeep. Device nodes and the like (mmdebstrap's /dev)
// cannot be committed: /dev is left out (layout empties it anyway).
func storeBase(ctx context.Context, o *Options, key, root string) error {
	r, err := baseRepo(o)
	if err != nil {
		return err
	}
	bt, err := openTree(root)
	if err != nil {
		return err
	}
	err = dropSpecial(bt, nopWarner{})
	bt.Close()
	if err != nil {
		return err
	}
	t, err := r.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.Abort()
	m := commit.NewMTree(nil)
	if err := commit.AddDir(ctx, t, m, root, commit.Filter{}, nil); err != nil {
		return err
	}
	var none objects.Checksum
	if _, err := commit.Write(ctx, t, m, commit.Options{Branch: baseRefPrefix + key, Subject: "compose base " + key, Timestamp: time.Now(), Parent: &none, NoBindings: true}); err != nil {
		return err
	}
	if err := t.Commit(); err != nil {
		return err
	}
	return pruneBases(r)
}

func pruneBases(r *repo.Repo) error {
	refs, err := r.ListRefs()
	if err != nil {
		return err
	}
	type ent struct {
		path string
		ts   uint64
	}
	var es []ent
	for _, ref := range refs {
		if !strings.HasPrefix(ref.Name, baseRefPrefix) {
			continue
		}
		cm, err := r.ReadCommit(ref.Checksum)
		if err != nil {
			continue
		}
		es = append(es, ent{ref.Path, cm.Timestamp})
	}
	if len(es) <= baseKeep {
		return nil
	}
	sort.Slice(es, func(i, j int) bool { return es[i].ts > es[j].ts })
	for _, e := range es[min(baseKeep, len(es)):] {
		if err := r.SetRef(e.path, nil); err != nil {
			return err
		}
	}
	_, err = r.Prune(context.Background(), repo.PruneOptions{RefsOnly: true})
	return err
}

type nopWarner struct{}

func (nopWarner) Warn(error) {}
