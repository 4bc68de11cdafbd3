// Package diff compares two trees of a repository, skipping every subtree
// whose dirtree and dirmeta checksums are equal: content addressing makes
// an unchanged subtree free to compare.
package diff

import (
	"context"
	"path"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// Kind of a change.
type Kind int

// Change kinds, in the order ostree diff prints them.
const (
	Modified Kind = iota
	Removed
	Added
)

func (k Kind) String() string { return [...]string{"M", "D", "A"}[k] }

// Change is one path that differs; for a directory added or removed, only
// the directory itself is listed.
type Change struct {
	Kind Kind
	Path string
	Dir  bool
}

// Commits compares the trees of two commits.
func Commits(ctx context.Context, r *repo.Repo, a, b objects.Checksum) ([]Change, error) {
	ca, err := r.ReadCommit(a)
	if err != nil {
		return nil, err
	}
	cb, err := r.ReadCommit(b)
	if err != nil {
		return nil, err
	}
	return Trees(ctx, r, [2]objects.Checksum{ca.RootTree, ca.RootMeta}, [2]objects.Checksum{cb.RootTree, cb.RootMeta})
}

// Trees compares two (dirtree, dirmeta) pairs. Changes come grouped as
// ostree lists them, modified, then removed, then added, each in the order
// ostree finds them: the old tree's entries first (recursing into changed
// directories), then what only the new tree has. An added directory is
// listed with everything under it.
func Trees(ctx context.Context, r *repo.Repo, a, b [2]objects.Checksum) ([]Change, error) {
	var mod, rem, add []Change
	var addAll func(p string, tree objects.Checksum) error
	addAll = func(p string, tree objects.Checksum) error {
		dt, err := r.ReadDirTree(tree)
		if err != nil {
			return err
		}
		for _, f := range dt.Files {
			add = append(add, Change{Added, path.Join(p, f.Name), false})
		}
		for _, d := range dt.Dirs {
			cp := path.Join(p, d.Name)
			add = append(add, Change{Added, cp, true})
			if err := addAll(cp, d.Tree); err != nil {
				return err
			}
		}
		return nil
	}
	var walk func(p string, a, b [2]objects.Checksum) error
	walk = func(p string, a, b [2]objects.Checksum) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if a[0] == b[0] {
			return nil
		}
		da, err := r.ReadDirTree(a[0])
		if err != nil {
			return err
		}
		db, err := r.ReadDirTree(b[0])
		if err != nil {
			return err
		}
		bf := map[string]objects.Checksum{}
		for _, f := range db.Files {
			bf[f.Name] = f.Checksum
		}
		bd := map[string][2]objects.Checksum{}
		for _, d := range db.Dirs {
			bd[d.Name] = [2]objects.Checksum{d.Tree, d.Meta}
		}
		af := map[string]bool{}
		for _, f := range da.Files {
			af[f.Name] = true
			cp := path.Join(p, f.Name)
			if c, ok := bf[f.Name]; ok {
				if c != f.Checksum {
					mod = append(mod, Change{Modified, cp, false})
				}
			} else {
				rem = append(rem, Change{Removed, cp, false})
			}
		}
		ad := map[string]bool{}
		for _, d := range da.Dirs {
			ad[d.Name] = true
			cp := path.Join(p, d.Name)
			nb, ok := bd[d.Name]
			if !ok {
				rem = append(rem, Change{Removed, cp, true})
				continue
			}
			if nb[1] != d.Meta {
				mod = append(mod, Change{Modified, cp, true})
			}
			if err := walk(cp, [2]objects.Checksum{d.Tree, d.Meta}, nb); err != nil {
				return err
			}
		}
		for _, f := range db.Files {
			if !af[f.Name] {
				add = append(add, Change{Added, path.Join(p, f.Name), false})
			}
		}
		for _, d := range db.Dirs {
			if !ad[d.Name] {
				cp := path.Join(p, d.Name)
				add = append(add, Change{Added, cp, true})
				if err := addAll(cp, d.Tree); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if a[1] != b[1] {
		mod = append(mod, Change{Modified, "/", true})
	}
	if err := walk("/", a, b); err != nil {
		return nil, err
	}
	return append(append(mod, rem...), add...), nil
}
