package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
)

// PruneOptions select what Prune keeps, with `ostree prune`'s meanings.
type PruneOptions struct {
	// RefsOnly makes refs the only roots; otherwise every stored commit is
	// a root and only objects no commit reaches are deleted.
	RefsOnly bool
	// Depth is how many parents of each root are kept (-1: all).
	Depth int
	// KeepYoungerThan, when set, deletes commits older than it that no ref
	// points to.
	KeepYoungerThan time.Time
	// DeleteCommit, when set, deletes that commit (refused while a ref
	// points to it).
	DeleteCommit *objects.Checksum
	// CommitOnly traverses and deletes commit objects only.
	CommitOnly bool
	// NoPrune reports what would be deleted without deleting.
	NoPrune bool
}

// PruneStats is what Prune found and did.
type PruneStats struct {
	Total   int   // objects in the repository before pruning
	Deleted int   // objects deleted (or, with NoPrune, deletable)
	Freed   int64 // bytes of the deleted objects
}

// Prune deletes objects that the selected roots do not reach.
//
// It holds the repo lock exclusively, so no transaction is staging or
// publishing objects meanwhile. Crash safety: Prune never deletes a ref,
// and refs are always roots, so every object a ref reaches (to the chosen
// depth) is kept; the objects it deletes are referenced by nothing that
// remains, so a crash after any number of deletions leaves every ref's
// commit complete, whatever the order. The one exception asked for
// explicitly, DeleteCommit, is refused while a ref names the commit.
func (r *Repo) Prune(ctx context.Context, o PruneOptions) (*PruneStats, error) {
	lock, err := r.LockExclusive(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	refs, err := r.ListRefs()
	if err != nil {
		return nil, err
	}
	refTargets := map[objects.Checksum]string{}
	for _, ref := range refs {
		refTargets[ref.Checksum] = ref.Name
	}
	var all []ObjectRef
	if err := r.ListObjects(func(o ObjectRef) error { all = append(all, o); return nil }, nil); err != nil {
		return nil, err
	}
	st := &PruneStats{Total: len(all)}
	deleted := map[ObjectRef]bool{}
	deleteObj := func(o2 ObjectRef) error {
		if deleted[o2] {
			return nil
		}
		p := r.ObjectPath(o2.Kind, o2.Checksum)
		fi, err := os.Lstat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		deleted[o2] = true
		st.Deleted++
		st.Freed += fi.Size()
		if o.NoPrune {
			return nil
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("prune %s: %w", ObjectName(o2.Kind, o2.Checksum), err)
		}
		if o2.Kind == objects.KindCommit {
			os.Remove(r.ObjectPath(objects.KindCommitMeta, o2.Checksum))
			os.Remove(r.path + "/state/" + o2.Checksum.String() + ".commitpartial")
		}
		return nil
	}
	if o.DeleteCommit != nil {
		if name, ok := refTargets[*o.DeleteCommit]; ok {
			return nil, fmt.Errorf("%w: commit %s is referenced by ref %s", ErrInvalid, o.DeleteCommit, name)
		}
		if ok, err := r.HasObject(objects.KindCommit, *o.DeleteCommit); err != nil || !ok {
			return nil, fmt.Errorf("%w: commit %s", ErrNotFound, o.DeleteCommit)
		}
		if err := deleteObj(ObjectRef{objects.KindCommit, *o.DeleteCommit}); err != nil {
			return nil, err
		}
		if !o.NoPrune {
			if err := r.writeTombstone(*o.DeleteCommit); err != nil {
				return nil, err
			}
		}
	}
	var commits []objects.Checksum
	for _, obj := range all {
		if obj.Kind == objects.KindCommit && !deleted[obj] {
			commits = append(commits, obj.Checksum)
		}
	}
	if !o.KeepYoungerThan.IsZero() {
		limit := uint64(o.KeepYoungerThan.Unix())
		var kept []objects.Checksum
		for _, c := range commits {
			cm, err := r.ReadCommit(c)
			if err == nil && cm.Timestamp < limit {
				if _, isRef := refTargets[c]; !isRef {
					if err := deleteObj(ObjectRef{objects.KindCommit, c}); err != nil {
						return nil, err
					}
					continue
				}
			}
			kept = append(kept, c)
		}
		commits = kept
	}
	// Reachability from the roots. Like ostree, pruning by age keeps only
	// what refs reach.
	roots := commits
	if o.RefsOnly || !o.KeepYoungerThan.IsZero() {
		roots = nil
		for _, ref := range refs {
			roots = append(roots, ref.Checksum)
		}
	}
	reach := map[ObjectRef]bool{}
	var walkTree func(tree, meta objects.Checksum) error
	walkTree = func(tree, meta objects.Checksum) error {
		reach[ObjectRef{objects.KindDirMeta, meta}] = true
		tr := ObjectRef{objects.KindDirTree, tree}
		if reach[tr] {
			return nil
		}
		reach[tr] = true
		dt, err := r.ReadDirTree(tree)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, f := range dt.Files {
			reach[ObjectRef{objects.KindFile, f.Checksum}] = true
		}
		for _, d := range dt.Dirs {
			if err := walkTree(d.Tree, d.Meta); err != nil {
				return err
			}
		}
		return nil
	}
	for _, root := range roots {
		c := root
		for depth := 0; o.Depth < 0 || depth <= o.Depth; depth++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			ref := ObjectRef{objects.KindCommit, c}
			if deleted[ref] {
				break
			}
			first := !reach[ref]
			reach[ref] = true
			cm, err := r.ReadCommit(c)
			if errors.Is(err, ErrNotFound) {
				break // history truncated here
			}
			if err != nil {
				return nil, err
			}
			if first && !o.CommitOnly {
				if err := walkTree(cm.RootTree, cm.RootMeta); err != nil {
					return nil, err
				}
			}
			if cm.Parent.IsZero() {
				break
			}
			c = cm.Parent
		}
	}
	for _, obj := range all {
		if obj.Kind == objects.KindCommitMeta || reach[obj] {
			continue
		}
		if o.CommitOnly && obj.Kind != objects.KindCommit {
			continue
		}
		if err := deleteObj(obj); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// writeTombstone records that commit was deleted on purpose, as ostree's
// `prune --delete-commit` does: a "tombstone-commit" object named after the
// commit holding {"commit": <b'CHECKSUM'>}, and core.tombstone-commits=true
// in the config, so pulls do not treat the missing commit as an error.
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
	if err := fsutil.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	if v, _ := r.cfg.GetBool("core", "tombstone-commits", false); !v {
		kf, err := ParseKeyFile(r.cfg.String())
		if err != nil {
			return err
		}
		kf.Set("core", "tombstone-commits", "true")
		return r.WriteConfig(kf)
	}
	return nil
}
