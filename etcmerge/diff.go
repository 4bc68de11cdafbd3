package etcmerge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/fsutil"
)

// Kind of a local change.
type Kind int

// Change kinds, in the order `ostree admin config-diff` prints them.
const (
	Modified Kind = iota
	Deleted
	Added
)

// String returns "modified", "deleted" or "added".
func (k Kind) String() string {
	switch k {
	case Modified:
		return "modified"
	case Deleted:
		return "deleted"
	case Added:
		return "added"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Letter returns the letter ostree prints for k: M, D or A.
func (k Kind) Letter() byte {
	switch k {
	case Modified:
		return 'M'
	case Deleted:
		return 'D'
	case Added:
		return 'A'
	}
	return '?'
}

// Change is one path that differs between the default /etc and the local
// one.
type Change struct {
	Kind Kind
	// Path is relative to /etc, '/'-separated, without a leading slash
	// ("hosts", "ssh/sshd_config").
	Path string
}

// String formats c as `ostree admin config-diff` prints it: the letter,
// four spaces, the path.
func (c Change) String() string { return string(c.Kind.Letter()) + "    " + c.Path }

// Diff compares a default /etc (orig, a deployment's usr/etc) with a live
// one (modified, its etc) as ostree_diff_dirs does for `ostree admin
// config-diff` and the /etc merge, xattrs ignored:
//   - an entry of orig missing from modified is Deleted (its children are
//     not listed);
//   - an entry whose type changed (regular, directory, symlink, other) is
//     Modified, and not descended into;
//   - an entry of the same type is Modified when its mode, uid, gid,
//     symlink target or (regular files) content differ; directories are
//     then descended into;
//   - an entry of modified missing from orig is Added, a directory
//     together with everything below it.
//
// The result lists every Modified, then every Deleted, then every Added
// change, each in ostree's traversal order: depth first, the entries of a
// directory in GLib's enumeration order (readdir order sorted by inode in
// chunks), and a directory's Added entries after those found below its
// common subdirectories. That is the order in which ostree prints and
// merges them. Diff only reads.
func Diff(ctx context.Context, orig, modified string) ([]Change, error) {
	for _, d := range []string{orig, modified} {
		st, err := os.Lstat(d)
		if err != nil {
			return nil, fmt.Errorf("config diff: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("config diff: %s: not a directory", d)
		}
	}
	var d differ
	d.ctx = ctx
	if err := d.dirs(orig, modified, ""); err != nil {
		return nil, err
	}
	out := make([]Change, 0, len(d.modified)+len(d.removed)+len(d.added))
	for _, p := range d.modified {
		out = append(out, Change{Modified, p})
	}
	for _, p := range d.removed {
		out = append(out, Change{Deleted, p})
	}
	for _, p := range d.added {
		out = append(out, Change{Added, p})
	}
	return out, nil
}

type differ struct {
	ctx                      context.Context
	modified, removed, added []string
}

// fileType is GLib's GFileType of a mode: what ostree compares first.
func fileType(mode uint32) int {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return 1
	case unix.S_IFDIR:
		return 2
	case unix.S_IFLNK:
		return 3
	}
	return 4 // G_FILE_TYPE_SPECIAL
}

func lstat(p string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	return &st, nil
}

func (d *differ) dirs(a, b, rel string) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	entsA, err := readdirGlib(a)
	if err != nil {
		return fmt.Errorf("config diff: %w", err)
	}
	for _, e := range entsA {
		ca, cb, crel := filepath.Join(a, e.name), filepath.Join(b, e.name), path.Join(rel, e.name)
		sa, err := lstat(ca)
		if errors.Is(err, os.ErrNotExist) {
			continue // vanished since readdir: GLib skips it
		}
		if err != nil {
			return fmt.Errorf("config diff: %w", err)
		}
		sb, err := lstat(cb)
		if errors.Is(err, os.ErrNotExist) {
			d.removed = append(d.removed, crel)
			continue
		}
		if err != nil {
			return fmt.Errorf("config diff: %w", err)
		}
		if fileType(sa.Mode) != fileType(sb.Mode) {
			d.modified = append(d.modified, crel)
			continue
		}
		same, err := sameMeta(ca, cb, sa, sb)
		if err != nil {
			return fmt.Errorf("config diff: %w", err)
		}
		if !same {
			d.modified = append(d.modified, crel)
		}
		if fileType(sa.Mode) == 2 {
			if err := d.dirs(ca, cb, crel); err != nil {
				return err
			}
		}
	}
	entsB, err := readdirGlib(b)
	if err != nil {
		return fmt.Errorf("config diff: %w", err)
	}
	for _, e := range entsB {
		ca, cb, crel := filepath.Join(a, e.name), filepath.Join(b, e.name), path.Join(rel, e.name)
		if _, err := lstat(ca); err == nil {
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("config diff: %w", err)
		}
		sb, err := lstat(cb)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("config diff: %w", err)
		}
		d.added = append(d.added, crel)
		if fileType(sb.Mode) == 2 {
			if err := d.addDir(cb, crel); err != nil {
				return err
			}
		}
	}
	return nil
}

// addDir lists everything below an added directory, as
// diff_add_dir_recurse does.
func (d *differ) addDir(dir, rel string) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	ents, err := readdirGlib(dir)
	if err != nil {
		return fmt.Errorf("config diff: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.name)
		st, err := lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("config diff: %w", err)
		}
		crel := path.Join(rel, e.name)
		d.added = append(d.added, crel)
		if fileType(st.Mode) == 2 {
			if err := d.addDir(p, crel); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameMeta reports whether two entries of the same type have the same
// ostree checksum with xattrs left out: same uid, gid and mode, same
// symlink target, same content.
func sameMeta(a, b string, sa, sb *unix.Stat_t) (bool, error) {
	if sa.Uid != sb.Uid || sa.Gid != sb.Gid || sa.Mode != sb.Mode {
		return false, nil
	}
	switch sa.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		ta, err := os.Readlink(a)
		if err != nil {
			return false, err
		}
		tb, err := os.Readlink(b)
		if err != nil {
			return false, err
		}
		return ta == tb, nil
	case unix.S_IFREG:
		if sa.Size != sb.Size {
			return false, nil
		}
		return sameContent(a, b)
	}
	return true, nil
}

func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	return fsutil.SameContent(fa, fb)
}
