package ocilayer

import (
	"context"
	"fmt"
	"strings"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// Merge stacks layer commits as a container runtime stacks layers: base
// (a commit, or the zero checksum for none) at the bottom, then each of
// layers in order. In each layer directory an opaque whiteout empties the
// directory below first, .wh.NAME removes NAME, and the layer's other
// entries replace what is below (directories merge, their metadata taken
// from the upper layer). Whiteout entries never reach the result. The
// returned tree shares every untouched subtree with its source.
func Merge(ctx context.Context, r *repo.Repo, base objects.Checksum, layers []objects.Checksum) (*commit.MTree, error) {
	root := commit.NewMTree(nil)
	if !base.IsZero() {
		c, err := r.ReadCommit(base)
		if err != nil {
			return nil, fmt.Errorf("merge base %s: %w", base, err)
		}
		root.SetLazy(c.RootTree, c.RootMeta)
	}
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := r.ReadCommit(l)
		if err != nil {
			return nil, fmt.Errorf("layer commit %s: %w", l, err)
		}
		meta, err := r.ReadDirMeta(c.RootMeta)
		if err != nil {
			return nil, fmt.Errorf("layer commit %s: %w", l, err)
		}
		root.Meta = meta
		if err := overlay(r, root, c.RootTree, ""); err != nil {
			return nil, fmt.Errorf("layer commit %s: %w", l, err)
		}
	}
	return root, nil
}

func overlay(r *repo.Repo, dst *commit.MTree, tree objects.Checksum, path string) error {
	dt, err := r.ReadDirTree(tree)
	if err != nil {
		return err
	}
	// Opaque first, then whiteouts, then entries: within one directory a
	// whiteout only ever refers to what is below.
	for _, f := range dt.Files {
		if f.Name == OpaqueWhiteout {
			if err := dst.Clear(r); err != nil {
				return err
			}
		}
	}
	for _, f := range dt.Files {
		if f.Name == OpaqueWhiteout {
			continue
		}
		if name, ok := strings.CutPrefix(f.Name, WhiteoutPrefix); ok {
			if objects.ValidateFilename(name) != nil {
				return fmt.Errorf("%w: whiteout %q names no file", repo.ErrInvalid, path+"/"+f.Name)
			}
			if err := dst.Remove(r, name); err != nil {
				return err
			}
		}
	}
	for _, f := range dt.Files {
		if strings.HasPrefix(f.Name, WhiteoutPrefix) {
			continue
		}
		slot, err := dst.SetFile(r, f.Name)
		if err != nil {
			return err
		}
		*slot = f.Checksum
	}
	for _, d := range dt.Dirs {
		meta, err := r.ReadDirMeta(d.Meta)
		if err != nil {
			return err
		}
		sub, err := dst.Lookup(r, d.Name)
		if err != nil {
			return err
		}
		if sub == nil {
			// Nothing below: the layer's subtree as it is, unless it
			// holds whiteouts (which must not reach the result).
			sub, err = dst.Dir(r, d.Name, meta)
			if err != nil {
				return err
			}
		} else {
			sub.Meta = meta
		}
		if err := overlay(r, sub, d.Tree, path+"/"+d.Name); err != nil {
			return err
		}
	}
	return nil
}
