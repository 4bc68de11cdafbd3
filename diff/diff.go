// Package diff compares two filesystem trees, each either a tree in a
// repository or a directory on disk, as `ostree diff` does. Subtrees of two
// repository trees with equal dirtree checksums are skipped unread: content
// addressing makes an unchanged subtree free to compare.
package diff

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/tree"
)

// Kind of a change.
type Kind int

// Change kinds.
const (
	Modified Kind = iota
	Removed
	Added
)

// String returns "modified", "removed" or "added".
func (k Kind) String() string {
	switch k {
	case Modified:
		return "modified"
	case Removed:
		return "removed"
	case Added:
		return "added"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Letter returns the letter `ostree diff` prints for k: M, D or A.
func (k Kind) Letter() string {
	switch k {
	case Modified:
		return "M"
	case Removed:
		return "D"
	case Added:
		return "A"
	}
	return "?"
}

// Change is one path that differs between the old tree and the new one.
type Change struct {
	Kind Kind
	// Path is absolute within the trees ("/etc/hosts"), '/'-separated.
	Path string
	// Dir reports whether the path is a directory in the tree it is listed
	// from: the old tree for Modified and Removed, the new tree for Added.
	Dir bool
}

// Tree is one side of a comparison: a tree of a repository or a directory
// on disk (tree.Tree).
type Tree = tree.Tree

// Options tune a comparison.
type Options struct {
	// IgnoreXattrs compares files on disk as if they had no extended
	// attributes (ostree diff --no-xattrs). It is implied when a side is
	// a bare-user-only repository, which stores none.
	IgnoreXattrs bool
	// OwnerUID and OwnerGID, when set, replace the owner of every entry
	// read from disk (ostree diff --owner-uid, --owner-gid).
	OwnerUID, OwnerGID *uint32
}

// Compare lists what differs between the old tree a and the new tree b:
// files whose object checksum differs, directories whose metadata (owner,
// mode, xattrs) differs and entries whose type changed are Modified (a
// changed directory's contents are compared too; an entry whose type
// changed is not descended into); entries only in a are Removed (only the
// entry itself is listed); entries only in b are Added, a directory
// followed by everything under it. The roots' own metadata is not
// compared.
//
// Changes come in walk order: for each directory, a's entries in order
// (non-directories, then directories, each sorted by name), a common
// subdirectory's changes right after its own entry, then the entries only
// b has. Keeping only one Kind of this order gives the order in which
// `ostree diff` lists that kind (for directories on disk ostree follows
// readdir order, strata sorts by name). Use SortByPath for path order.
//
// Files on disk are checksummed as a commit of them would be (owner, mode,
// xattrs, content), only when their metadata matches the repository's.
func Compare(ctx context.Context, a, b Tree, o *Options) ([]Change, error) {
	if !a.Valid() || !b.Valid() {
		return nil, fmt.Errorf("%w: diff of an empty Tree", repo.ErrInvalid)
	}
	c := &comparer{ctx: ctx, a: a, b: b}
	if o != nil {
		c.o = *o
	}
	for _, t := range []Tree{a, b} {
		if !t.OnDisk() && t.Repo().Mode() == repo.ModeBareUserOnly {
			c.o.IgnoreXattrs = true
		}
	}
	ra := node{kind: objects.ModeDir, tree: a.DirTree(), sum: a.DirMeta(), path: a.Path()}
	rb := node{kind: objects.ModeDir, tree: b.DirTree(), sum: b.DirMeta(), path: b.Path()}
	if err := c.dir("/", ra, rb); err != nil {
		return nil, err
	}
	return c.out, nil
}

// Commits compares the root trees of two commits of r.
func Commits(ctx context.Context, r *repo.Repo, a, b objects.Checksum) ([]Change, error) {
	ta, err := tree.Commit(r, a)
	if err != nil {
		return nil, err
	}
	tb, err := tree.Commit(r, b)
	if err != nil {
		return nil, err
	}
	return Compare(ctx, ta, tb, nil)
}

// SortByPath sorts changes by path, bytewise.
func SortByPath(changes []Change) {
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
}

// node is one entry of a tree.
type node struct {
	name string
	kind uint32           // objects.ModeDir, ModeRegular (any file of a repo), ModeSymlink, or other type bits
	sum  objects.Checksum // repo: file object, or dirmeta for a directory
	tree objects.Checksum // repo: dirtree of a directory
	path string           // disk: path of the entry
}

func (n *node) isDir() bool { return n.kind == objects.ModeDir }

type comparer struct {
	ctx  context.Context
	a, b Tree
	o    Options
	out  []Change
}

func (c *comparer) emit(k Kind, p string, dir bool) {
	c.out = append(c.out, Change{Kind: k, Path: p, Dir: dir})
}

func (c *comparer) dir(p string, a, b node) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	if !c.a.OnDisk() && !c.b.OnDisk() && a.tree == b.tree {
		return nil
	}
	ac, err := children(c.a, a)
	if err != nil {
		return err
	}
	bc, err := children(c.b, b)
	if err != nil {
		return err
	}
	inB := make(map[string]int, len(bc))
	for i, n := range bc {
		inB[n.name] = i
	}
	inA := make(map[string]bool, len(ac))
	for _, x := range ac {
		inA[x.name] = true
		cp := path.Join(p, x.name)
		i, ok := inB[x.name]
		if !ok {
			c.emit(Removed, cp, x.isDir())
			continue
		}
		y := bc[i]
		// Repository files all have kind ModeRegular here (a symlink is
		// told by its header), so only directories and entries compared
		// on disk on both sides can differ in kind alone.
		if x.isDir() != y.isDir() || c.a.OnDisk() && c.b.OnDisk() && x.kind != y.kind {
			c.emit(Modified, cp, x.isDir())
			continue
		}
		if x.isDir() {
			differ, err := c.metaDiffers(x, y)
			if err != nil {
				return err
			}
			if differ {
				c.emit(Modified, cp, true)
			}
			if err := c.dir(cp, x, y); err != nil {
				return err
			}
			continue
		}
		differ, err := c.fileDiffers(x, y)
		if err != nil {
			return fmt.Errorf("compare %s: %w", cp, err)
		}
		if differ {
			c.emit(Modified, cp, false)
		}
	}
	for _, y := range bc {
		if inA[y.name] {
			continue
		}
		cp := path.Join(p, y.name)
		c.emit(Added, cp, y.isDir())
		if y.isDir() {
			if err := c.addAll(cp, y); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *comparer) addAll(p string, n node) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	kids, err := children(c.b, n)
	if err != nil {
		return err
	}
	for _, k := range kids {
		cp := path.Join(p, k.name)
		c.emit(Added, cp, k.isDir())
		if k.isDir() {
			if err := c.addAll(cp, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// children lists a directory's entries: non-directories, then
// directories, each sorted by name (the order of a dirtree).
func children(t Tree, n node) ([]node, error) {
	if !t.OnDisk() {
		dt, err := t.Repo().ReadDirTree(n.tree)
		if err != nil {
			return nil, err
		}
		out := make([]node, 0, len(dt.Files)+len(dt.Dirs))
		for _, f := range dt.Files {
			out = append(out, node{name: f.Name, kind: objects.ModeRegular, sum: f.Checksum})
		}
		for _, d := range dt.Dirs {
			out = append(out, node{name: d.Name, kind: objects.ModeDir, sum: d.Meta, tree: d.Tree})
		}
		return out, nil
	}
	f, err := os.Open(n.path)
	if err != nil {
		return nil, err
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", n.path, err)
	}
	out := make([]node, 0, len(ents))
	for _, e := range ents {
		kind := uint32(objects.ModeRegular)
		switch t := e.Type(); {
		case t.IsDir():
			kind = objects.ModeDir
		case t&os.ModeSymlink != 0:
			kind = objects.ModeSymlink
		case !t.IsRegular():
			kind = 0 // device, fifo, socket: no repository has one
		}
		out = append(out, node{name: e.Name(), kind: kind, path: filepath.Join(n.path, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool {
		if di, dj := out[i].isDir(), out[j].isDir(); di != dj {
			return dj
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// metaDiffers compares two directories' metadata.
func (c *comparer) metaDiffers(x, y node) (bool, error) {
	if !c.a.OnDisk() && !c.b.OnDisk() {
		return x.sum != y.sum, nil
	}
	sx, err := c.dirMetaSum(c.a, x)
	if err != nil {
		return false, err
	}
	sy, err := c.dirMetaSum(c.b, y)
	if err != nil {
		return false, err
	}
	return sx != sy, nil
}

func (c *comparer) dirMetaSum(t Tree, n node) (objects.Checksum, error) {
	if !t.OnDisk() {
		return n.sum, nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(n.path, &st); err != nil {
		return objects.Checksum{}, fmt.Errorf("stat %s: %w", n.path, err)
	}
	uid, gid := c.owner(&st)
	xs, err := c.xattrs(n.path)
	if err != nil {
		return objects.Checksum{}, err
	}
	dm := &objects.DirMeta{UID: uid, GID: gid, Mode: st.Mode, Xattrs: xs}
	return objects.Sum(dm.Marshal()), nil
}

func (c *comparer) owner(st *unix.Stat_t) (uint32, uint32) {
	uid, gid := st.Uid, st.Gid
	if c.o.OwnerUID != nil {
		uid = *c.o.OwnerUID
	}
	if c.o.OwnerGID != nil {
		gid = *c.o.OwnerGID
	}
	return uid, gid
}

func (c *comparer) xattrs(p string) (objects.Xattrs, error) {
	if c.o.IgnoreXattrs {
		return nil, nil
	}
	return repo.ReadXattrs(p)
}

// fileDiffers compares two non-directories.
func (c *comparer) fileDiffers(x, y node) (bool, error) {
	switch {
	case !c.a.OnDisk() && !c.b.OnDisk():
		return x.sum != y.sum, nil
	case c.a.OnDisk() && c.b.OnDisk():
		if x.kind == 0 || y.kind == 0 {
			return c.specialDiffers(x, y)
		}
		hx, err := c.diskHeader(x)
		if err != nil {
			return false, err
		}
		hy, err := c.diskHeader(y)
		if err != nil {
			return false, err
		}
		if !sameHeader(hx, hy) {
			return true, nil
		}
		sx, err := c.diskSum(x, hx)
		if err != nil {
			return false, err
		}
		sy, err := c.diskSum(y, hy)
		return sx != sy, err
	}
	rn, dn, rt := x, y, c.a
	if c.a.OnDisk() {
		rn, dn, rt = y, x, c.b
	}
	if dn.kind == 0 {
		return true, nil
	}
	hd, err := c.diskHeader(dn)
	if err != nil {
		return false, err
	}
	hr, err := rt.Repo().ReadFileHeader(rn.sum)
	if err != nil {
		return false, err
	}
	if !sameHeader(hd, hr) {
		return true, nil
	}
	sd, err := c.diskSum(dn, hd)
	if err != nil {
		return false, err
	}
	return sd != rn.sum, nil
}

func sameHeader(a, b *objects.FileHeader) bool {
	if a.UID != b.UID || a.GID != b.GID || a.Mode != b.Mode || a.Target != b.Target || a.Size != b.Size || len(a.Xattrs) != len(b.Xattrs) {
		return false
	}
	for i := range a.Xattrs {
		if a.Xattrs[i].Name != b.Xattrs[i].Name || string(a.Xattrs[i].Value) != string(b.Xattrs[i].Value) {
			return false
		}
	}
	return true
}

// diskHeader reads the file header a commit of the file would carry.
func (c *comparer) diskHeader(n node) (*objects.FileHeader, error) {
	var st unix.Stat_t
	if err := unix.Lstat(n.path, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", n.path, err)
	}
	uid, gid := c.owner(&st)
	h := &objects.FileHeader{UID: uid, GID: gid, Mode: st.Mode}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		t, err := os.Readlink(n.path)
		if err != nil {
			return nil, err
		}
		h.Target = t
	case unix.S_IFREG:
		h.Size = uint64(st.Size)
	}
	xs, err := c.xattrs(n.path)
	if err != nil {
		return nil, err
	}
	h.Xattrs = xs
	return h, nil
}

// diskSum checksums a file on disk as a file object.
func (c *comparer) diskSum(n node, h *objects.FileHeader) (objects.Checksum, error) {
	if !h.IsRegular() {
		return objects.FileChecksum(h, nil)
	}
	f, err := os.OpenFile(n.path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return objects.Checksum{}, err
	}
	defer f.Close()
	s, err := objects.FileChecksum(h, fsutil.ContextReader(c.ctx, f))
	if err != nil {
		return s, fmt.Errorf("read %s: %w", n.path, err)
	}
	return s, nil
}

func (c *comparer) specialDiffers(x, y node) (bool, error) {
	var sx, sy unix.Stat_t
	if err := unix.Lstat(x.path, &sx); err != nil {
		return false, err
	}
	if err := unix.Lstat(y.path, &sy); err != nil {
		return false, err
	}
	ux, gx := c.owner(&sx)
	uy, gy := c.owner(&sy)
	return sx.Mode != sy.Mode || sx.Rdev != sy.Rdev || ux != uy || gx != gy, nil
}
