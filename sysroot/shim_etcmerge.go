package sysroot

// Temporary shim for what the etcmerge package will provide (the /etc
// three-way merge: a plan that finds impossible merges before anything is
// written, its application, and the diff behind config-diff). It is the
// smallest version of ostree's algorithm, on top of the diff package, and
// is to be replaced by calls into etcmerge when it lands.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/diff"
	"github.com/strata-os/strata/fsutil"
)

// etcPlan is a planned /etc merge.
type etcPlan struct {
	orig, mod, dst string
	changes        []diff.Change
}

// counts returns how many paths were modified, removed and added locally.
func (p *etcPlan) counts() (m, r, a int) {
	for _, c := range p.changes {
		switch c.Kind {
		case diff.Modified:
			m++
		case diff.Removed:
			r++
		case diff.Added:
			a++
		}
	}
	return
}

// planEtcMerge computes the local changes of a deployment (modEtc against
// its defaults origEtc) to carry into newEtc, and fails, before anything
// is written, when one cannot be carried: a locally changed file that is a
// directory in the new defaults.
func planEtcMerge(ctx context.Context, origEtc, modEtc, newEtc string) (*etcPlan, error) {
	changes, err := configDiff(ctx, origEtc, modEtc)
	if err != nil {
		return nil, err
	}
	p := &etcPlan{orig: origEtc, mod: modEtc, dst: newEtc, changes: changes}
	for _, c := range changes {
		if c.Kind == diff.Removed {
			continue
		}
		var ms, ns unix.Stat_t
		if unix.Lstat(filepath.Join(modEtc, c.Path), &ms) != nil {
			continue
		}
		if unix.Lstat(filepath.Join(newEtc, c.Path), &ns) == nil &&
			ns.Mode&unix.S_IFMT == unix.S_IFDIR && ms.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil, fmt.Errorf("%w: /etc merge: modified config file newly defaults to directory '%s', cannot merge", ErrInvalid, strings.TrimPrefix(c.Path, "/"))
		}
	}
	return p, nil
}

// configDiff lists the local changes of an /etc against its defaults,
// ignoring xattrs (SELinux labels differ between the two), as ostree does.
func configDiff(ctx context.Context, origEtc, modEtc string) ([]diff.Change, error) {
	changes, err := diff.Compare(ctx, diff.Dir(origEtc), diff.Dir(modEtc), &diff.Options{IgnoreXattrs: true})
	if err != nil {
		return nil, fmt.Errorf("/etc merge: computing the configuration diff: %w", err)
	}
	return changes, nil
}

// apply writes the merge into the new /etc: removals, then modified, then
// added paths, each copied from the local /etc (directories recursively).
func (p *etcPlan) apply(ctx context.Context) error {
	for _, kind := range []diff.Kind{diff.Removed, diff.Modified, diff.Added} {
		copied := ""
		for _, c := range p.changes {
			if c.Kind != kind {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			dst := filepath.Join(p.dst, c.Path)
			if kind == diff.Removed {
				if err := os.RemoveAll(dst); err != nil {
					return fmt.Errorf("/etc merge: %w", err)
				}
				continue
			}
			if copied != "" && strings.HasPrefix(c.Path, copied+"/") {
				continue
			}
			src := filepath.Join(p.mod, c.Path)
			var ss, ds unix.Stat_t
			if err := unix.Lstat(src, &ss); err != nil {
				return fmt.Errorf("/etc merge: %w", err)
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return fmt.Errorf("/etc merge: %w", err)
			}
			if unix.Lstat(dst, &ds) == nil {
				if ds.Mode&unix.S_IFMT == unix.S_IFDIR {
					if ss.Mode&unix.S_IFMT == unix.S_IFDIR {
						continue
					}
					return fmt.Errorf("%w: /etc merge: modified config file newly defaults to directory '%s', cannot merge", ErrInvalid, strings.TrimPrefix(c.Path, "/"))
				}
				if err := os.Remove(dst); err != nil {
					return fmt.Errorf("/etc merge: %w", err)
				}
			}
			if err := copyTree(src, dst); err != nil {
				return fmt.Errorf("/etc merge: %w", err)
			}
			if ss.Mode&unix.S_IFMT == unix.S_IFDIR {
				copied = c.Path
			}
		}
	}
	return nil
}

// copyTree copies a file, symlink or directory (recursively) with its
// mode, owner and xattrs.
func copyTree(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := copyTree(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	case unix.S_IFLNK:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(t, dst); err != nil {
			return err
		}
	case unix.S_IFREG:
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	default:
		return nil // ostree ignores other file types in /etc
	}
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	vals, names, err := fsutil.ListXattrs(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := unix.Lsetxattr(dst, n, vals[n], 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return err
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return unix.Chmod(dst, st.Mode&0o7777)
	}
	return nil
}
