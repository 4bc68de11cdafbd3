package repo

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
)

// PruneOptions select what Prune keeps, with `ostree prune`'s meanings.
type PruneOptions struct {
	// RefsOnly makes the refs (refs/heads, refs/remotes, refs/mirrors) the
	// only roots. Otherwise every stored commit is a root, so only objects
	// that no commit reaches (to Depth) are deleted.
	RefsOnly bool
	// Depth is how many parents of each root are kept: -1 for all, 0 for
	// the root alone.
	Depth int
	// KeepYoungerThan, when set, makes the refs the only roots and keeps,
	// from each ref's commit back, the parents whose timestamp is not older
	// than it, stopping at the first older one (Depth is then unused, as
	// in ostree).
	KeepYoungerThan time.Time
	// DeleteCommit, when set, deletes that commit first and records a
	// tombstone for it; refused while a ref points to it.
	DeleteCommit *objects.Checksum
	// CommitOnly traverses and deletes commit objects only.
	CommitOnly bool
	// NoPrune reports what would be deleted without deleting anything.
	NoPrune bool
}

// PruneStats is what Prune found and did, counted as ostree counts: commit
// metadata and tombstones are not objects of their own, and the commit
// DeleteCommit names is not among the deleted.
type PruneStats struct {
	Total   int   // objects considered (commits only, with CommitOnly)
	Deleted int   // objects deleted (or, with NoPrune, that would be)
	Freed   int64 // bytes they take on disk
}

// Prune deletes the objects that the selected roots do not reach, and the
// static deltas whose target commit is gone, as `ostree prune` does.
//
// It holds the repo lock exclusively, so no transaction stages or publishes
// objects meanwhile (and a pull cannot reference an object Prune is about
// to delete).
//
// Crash safety. Prune never deletes a ref, and every ref is a root, so no
// object a ref reaches (to the chosen depth) is ever deleted; the one
// explicit deletion, DeleteCommit, is refused while any ref names the
// commit. Everything deleted is therefore reachable from no ref, and a
// crash after any number of deletions leaves every ref's commit complete.
// Beyond that, deletion goes roots first: the unreachable commits (each
// with its commitmeta and partial marker, after its tombstone when the
// repository keeps tombstones), then a syncfs, then dirtrees, then dirmetas
// and files. So at every instant each commit still stored has all of its
// objects, and an interrupted prune leaves at worst unreferenced objects,
// which the next prune deletes: never a commit with holes that fsck would
// report or a pull would trust.
func (r *Repo) Prune(ctx context.Context, o PruneOptions) (PruneStats, error) {
	var st PruneStats
	if o.DeleteCommit != nil && o.NoPrune {
		return st, fmt.Errorf("%w: cannot both delete commit %s and not prune", ErrInvalid, o.DeleteCommit)
	}
	lock, err := r.LockExclusive(ctx)
	if err != nil {
		return st, err
	}
	defer lock.Unlock()
	refs, err := r.ListRefs()
	if err != nil {
		return st, err
	}
	if o.DeleteCommit != nil {
		if err := r.deleteCommitExplicitly(*o.DeleteCommit, refs); err != nil {
			return st, err
		}
	}
	tombstones, err := r.cfg.GetBool("core", "tombstone-commits", false)
	if err != nil {
		return st, fmt.Errorf("%s: core.tombstone-commits: %w", filepath.Join(r.path, "config"), err)
	}

	var candidates []ObjectRef
	var commits []objects.Checksum
	err = r.ListObjects(func(obj ObjectRef) error {
		switch {
		case obj.Kind == objects.KindCommitMeta || obj.Kind == objects.KindTombstone:
			// Not objects of their own: a commitmeta goes with its commit,
			// tombstones stay.
		case obj.Kind == objects.KindCommit:
			commits = append(commits, obj.Checksum)
			candidates = append(candidates, obj)
		case !o.CommitOnly:
			candidates = append(candidates, obj)
		}
		return nil
	}, nil)
	if err != nil {
		return st, err
	}
	st.Total = len(candidates)

	w := &reachWalk{r: r, ctx: ctx, commitOnly: o.CommitOnly, reach: map[ObjectRef]bool{}}
	switch {
	case !o.KeepYoungerThan.IsZero():
		limit := o.KeepYoungerThan.Unix()
		for _, ref := range refs {
			if err := w.keepYounger(ref.Checksum, limit); err != nil {
				return st, err
			}
		}
	case o.RefsOnly:
		for _, ref := range refs {
			if err := w.commit(ref.Checksum, o.Depth); err != nil {
				return st, err
			}
		}
	default:
		for _, c := range commits {
			if err := w.commit(c, o.Depth); err != nil {
				return st, err
			}
		}
	}

	// Roots first: commits, then trees, then what trees reference.
	var doomed [3][]ObjectRef
	for _, obj := range candidates {
		if w.reach[obj] {
			continue
		}
		fi, err := os.Lstat(r.ObjectPath(obj.Kind, obj.Checksum))
		if err != nil {
			return st, err
		}
		st.Deleted++
		st.Freed += fi.Size()
		switch obj.Kind {
		case objects.KindCommit:
			doomed[0] = append(doomed[0], obj)
		case objects.KindDirTree:
			doomed[1] = append(doomed[1], obj)
		default:
			doomed[2] = append(doomed[2], obj)
		}
	}
	if o.NoPrune {
		return st, nil
	}
	for _, c := range doomed[0] {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if err := r.deleteCommit(c.Checksum, tombstones); err != nil {
			return st, err
		}
	}
	if len(doomed[0]) > 0 && len(doomed[1])+len(doomed[2]) > 0 {
		if err := fsutil.Syncfs(r.path); err != nil {
			return st, err
		}
	}
	for _, list := range doomed[1:] {
		for _, obj := range list {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			if err := removeFile(r.ObjectPath(obj.Kind, obj.Checksum)); err != nil {
				return st, fmt.Errorf("prune %s: %w", ObjectName(obj.Kind, obj.Checksum), err)
			}
		}
	}
	if err := r.pruneStaticDeltas(); err != nil {
		return st, err
	}
	return st, nil
}

// deleteCommitExplicitly is `prune --delete-commit`: refused while a ref
// points to c; otherwise tombstones are switched on and c is deleted with
// its tombstone.
func (r *Repo) deleteCommitExplicitly(c objects.Checksum, refs []Ref) error {
	for _, ref := range refs {
		if ref.Checksum == c {
			return fmt.Errorf("%w: commit %s is referenced by ref %s", ErrInvalid, c, ref.Name)
		}
	}
	if ok, err := r.HasObject(objects.KindCommit, c); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: commit %s", ErrNotFound, c)
	}
	if on, _ := r.cfg.GetBool("core", "tombstone-commits", false); !on {
		kf, err := ParseKeyFile(r.cfg.String())
		if err != nil {
			return err
		}
		kf.Set("core", "tombstone-commits", "true")
		if err := r.WriteConfig(kf); err != nil {
			return err
		}
	}
	return r.deleteCommit(c, true)
}

// deleteCommit deletes commit c, its commitmeta and its partial marker,
// after recording a tombstone when tombstone is set. The tombstone comes
// first: a crash then leaves a commit that is also tombstoned (harmless;
// the next prune finishes), never a deleted commit without its tombstone.
func (r *Repo) deleteCommit(c objects.Checksum, tombstone bool) error {
	if tombstone {
		if err := r.writeTombstone(c); err != nil {
			return err
		}
	}
	if err := removeFile(r.partialPath(c)); err != nil {
		return fmt.Errorf("prune commit %s: %w", c, err)
	}
	if err := removeFile(r.ObjectPath(objects.KindCommitMeta, c)); err != nil {
		return fmt.Errorf("prune %s: %w", ObjectName(objects.KindCommitMeta, c), err)
	}
	if err := removeFile(r.ObjectPath(objects.KindCommit, c)); err != nil {
		return fmt.Errorf("prune %s: %w", ObjectName(objects.KindCommit, c), err)
	}
	return nil
}

// removeFile removes p, if it exists; fault-injection tests see the step
// as "remove:<path>".
func removeFile(p string) error {
	if err := fsutil.CheckFailpoint("remove:" + p); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// reachWalk collects the objects reachable from commits.
type reachWalk struct {
	r          *Repo
	ctx        context.Context
	commitOnly bool
	reach      map[ObjectRef]bool
}

// commit marks c and, to depth parents (-1: all), its ancestors, with
// their trees unless commitOnly. A missing commit ends the chain (history
// was pruned there); missing tree objects are skipped (a partial commit).
func (w *reachWalk) commit(c objects.Checksum, depth int) error {
	for {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		cm, err := w.one(c)
		if err != nil || cm == nil {
			return err
		}
		if depth == 0 || cm.Parent.IsZero() {
			return nil
		}
		if depth > 0 {
			depth--
		}
		c = cm.Parent
	}
}

// keepYounger marks the ref's commit c, whatever its age, then walks back
// from it marking commits while they are not older than limit, as ostree's
// traverse_keep_younger_than does.
func (w *reachWalk) keepYounger(c objects.Checksum, limit int64) error {
	if _, err := w.one(c); err != nil {
		return err
	}
	for {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		cm, err := w.r.ReadCommit(c)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if int64(cm.Timestamp) < limit {
			return nil
		}
		if _, err := w.one(c); err != nil {
			return err
		}
		if cm.Parent.IsZero() {
			return nil
		}
		c = cm.Parent
	}
}

// one marks commit c and its tree; nil, nil when c is not stored.
func (w *reachWalk) one(c objects.Checksum) (*objects.Commit, error) {
	ref := ObjectRef{objects.KindCommit, c}
	cm, err := w.r.ReadCommit(c)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	first := !w.reach[ref]
	w.reach[ref] = true
	if first && !w.commitOnly {
		w.reach[ObjectRef{objects.KindDirMeta, cm.RootMeta}] = true
		if err := w.tree(cm.RootTree); err != nil {
			return nil, err
		}
	}
	return cm, nil
}

func (w *reachWalk) tree(c objects.Checksum) error {
	ref := ObjectRef{objects.KindDirTree, c}
	if w.reach[ref] {
		return nil
	}
	w.reach[ref] = true
	dt, err := w.r.ReadDirTree(c)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, f := range dt.Files {
		w.reach[ObjectRef{objects.KindFile, f.Checksum}] = true
	}
	for _, d := range dt.Dirs {
		w.reach[ObjectRef{objects.KindDirMeta, d.Meta}] = true
		if err := w.tree(d.Tree); err != nil {
			return err
		}
	}
	return nil
}

// writeTombstone records that commit was deleted on purpose, as ostree's
// `prune --delete-commit` does: a "tombstone-commit" object named after the
// commit holding {"commit": <b'CHECKSUM'>}, so pulls do not treat the
// missing commit as an error.
func (r *Repo) writeTombstone(c objects.Checksum) error {
	md := objects.Metadata{{Key: "commit", Value: gvariant.Variant{Type: gvariant.MustParseType("ay"), Value: append([]byte(c.String()), 0)}}}
	data, err := md.Marshal()
	if err != nil {
		return err
	}
	p := r.ObjectPath(objects.KindTombstone, c)
	if err := fsutil.MkdirAllSync(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFile(p, data, 0o644)
}

// deltaNameEncoding is OSTree's "modified base64" of a checksum in delta
// directory names: standard base64 with '_' for '/', unpadded.
var deltaNameEncoding = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+_").WithPadding(base64.NoPadding)

// pruneStaticDeltas deletes the static deltas (deltas/XX/REST, where XX+REST
// is "[FROM-]TO" in modified base64) whose target commit is not stored. The
// superblock goes first, so a delta is never half there for a client.
func (r *Repo) pruneStaticDeltas() error {
	root := filepath.Join(r.path, "deltas")
	prefixes, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, p := range prefixes {
		if !p.IsDir() || len(p.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, p.Name()))
		if err != nil {
			return err
		}
		for _, e := range ents {
			name := p.Name() + e.Name()
			if i := strings.LastIndexByte(name, '-'); i >= 0 {
				name = name[i+1:]
			}
			raw, err := deltaNameEncoding.DecodeString(name)
			if err != nil || len(raw) != len(objects.Checksum{}) {
				continue // not a delta
			}
			to := objects.Checksum(raw)
			if ok, err := r.HasObject(objects.KindCommit, to); err != nil || ok {
				if err != nil {
					return err
				}
				continue
			}
			dir := filepath.Join(root, p.Name(), e.Name())
			if err := removeFile(filepath.Join(dir, "superblock")); err != nil {
				return fmt.Errorf("prune static delta %s: %w", dir, err)
			}
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("prune static delta %s: %w", dir, err)
			}
		}
	}
	return nil
}
