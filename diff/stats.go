package diff

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// Stats is what `ostree diff --stats` reports about two commits: how many
// objects each one reaches (its own tree, not its parents'), how many both
// reach, and the storage size of those.
type Stats struct {
	ObjectsA, ObjectsB int
	CommonObjects      int
	CommonSize         uint64 // bytes the common objects take in the repository
}

// CommitStats counts the objects reachable from commits a and b, each
// without its parents, as ostree does: the commit, dirtrees, dirmetas and
// files.
func CommitStats(ctx context.Context, r *repo.Repo, a, b objects.Checksum) (Stats, error) {
	ra, err := Reachable(ctx, r, a, 0)
	if err != nil {
		return Stats{}, err
	}
	rb, err := Reachable(ctx, r, b, 0)
	if err != nil {
		return Stats{}, err
	}
	s := Stats{ObjectsA: len(ra), ObjectsB: len(rb)}
	for o := range ra {
		if !rb[o] {
			continue
		}
		s.CommonObjects++
		fi, err := os.Lstat(r.ObjectPath(o.Kind, o.Checksum))
		if err != nil {
			return Stats{}, fmt.Errorf("object %s: %w", repo.ObjectName(o.Kind, o.Checksum), err)
		}
		s.CommonSize += uint64(fi.Size())
	}
	return s, nil
}

// Object names an object by kind and checksum.
type Object struct {
	Kind     objects.Kind
	Checksum objects.Checksum
}

// Reachable returns the objects reachable from commit and up to depth of
// its parents (-1 for all); history also stops at the first parent not
// stored, as in a repository pulled with a depth. Trees missing from a
// partial commit are skipped.
func Reachable(ctx context.Context, r *repo.Repo, commit objects.Checksum, depth int) (map[Object]bool, error) {
	set := map[Object]bool{}
	c := commit
	for ; ; depth-- {
		key := Object{objects.KindCommit, c}
		if set[key] {
			break
		}
		cm, err := r.ReadCommit(c)
		if errors.Is(err, repo.ErrNotFound) && c != commit {
			break
		}
		if err != nil {
			return nil, err
		}
		partial, err := r.IsCommitPartial(c)
		if err != nil {
			return nil, err
		}
		set[key] = true
		set[Object{objects.KindDirMeta, cm.RootMeta}] = true
		if err := reachTree(ctx, r, cm.RootTree, partial, set); err != nil {
			return nil, err
		}
		if cm.Parent.IsZero() || depth == 0 {
			break
		}
		c = cm.Parent
	}
	return set, nil
}

func reachTree(ctx context.Context, r *repo.Repo, tree objects.Checksum, partial bool, set map[Object]bool) error {
	key := Object{objects.KindDirTree, tree}
	if set[key] {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dt, err := r.ReadDirTree(tree)
	if partial && errors.Is(err, repo.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	set[key] = true
	for _, f := range dt.Files {
		set[Object{objects.KindFile, f.Checksum}] = true
	}
	for _, d := range dt.Dirs {
		set[Object{objects.KindDirMeta, d.Meta}] = true
		if err := reachTree(ctx, r, d.Tree, partial, set); err != nil {
			return err
		}
	}
	return nil
}
