// Package tree names a filesystem tree (a tree of a repository, or a
// directory on disk) and walks a repository tree by path: Lookup without
// following symlinks, Resolve as the kernel would in a checkout. It is what
// diff compares and what ls and cat read.
package tree

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// Tree is a filesystem tree: a tree of a repository (a dirtree and its
// dirmeta) or a directory on disk. The zero Tree is invalid.
type Tree struct {
	r          *repo.Repo
	tree, meta objects.Checksum
	dir        string
}

// Commit returns the root tree of a commit.
func Commit(r *repo.Repo, commit objects.Checksum) (Tree, error) {
	c, err := r.ReadCommit(commit)
	if err != nil {
		return Tree{}, err
	}
	return RepoTree(r, c.RootTree, c.RootMeta), nil
}

// RepoTree returns the tree with the given dirtree and dirmeta objects.
func RepoTree(r *repo.Repo, dirtree, dirmeta objects.Checksum) Tree {
	return Tree{r: r, tree: dirtree, meta: dirmeta}
}

// Dir returns the directory tree rooted at path on disk. Entries are read
// without following symlinks.
func Dir(path string) Tree { return Tree{dir: path} }

// OnDisk reports whether t is a directory on disk.
func (t Tree) OnDisk() bool { return t.r == nil }

// Valid reports whether t is a repository tree or a directory (not the
// zero Tree).
func (t Tree) Valid() bool { return t.r != nil || t.dir != "" }

// Repo returns the repository of a repository tree (nil on disk).
func (t Tree) Repo() *repo.Repo { return t.r }

// DirTree returns a repository tree's root dirtree.
func (t Tree) DirTree() objects.Checksum { return t.tree }

// DirMeta returns a repository tree's root dirmeta.
func (t Tree) DirMeta() objects.Checksum { return t.meta }

// Path returns the directory of a tree on disk ("" for a repository tree).
func (t Tree) Path() string { return t.dir }

// Lookup resolves an absolute path in a repository tree without following
// symlinks. A missing path is repo.ErrNotFound; a path through a
// non-directory is repo.ErrInvalid.
func Lookup(r *repo.Repo, root Tree, p string) (Entry, error) {
	if root.OnDisk() {
		return Entry{}, fmt.Errorf("%w: lookup in a directory on disk", repo.ErrInvalid)
	}
	e := Entry{Path: "/", Dir: true, Tree: root.tree, Meta: root.meta}
	for _, name := range splitPath(p) {
		if !e.Dir {
			return Entry{}, fmt.Errorf("%w: %s: not a directory", repo.ErrInvalid, e.Path)
		}
		dt, err := r.ReadDirTree(e.Tree)
		if err != nil {
			return Entry{}, err
		}
		next, ok := findEntry(dt, name)
		if !ok {
			return Entry{}, fmt.Errorf("%w: no such file or directory: %s", repo.ErrNotFound, path.Join(e.Path, name))
		}
		next.Path = path.Join(e.Path, name)
		e = next
	}
	return e, nil
}

// Entry is a path of a repository tree.
type Entry struct {
	Path       string
	Dir        bool
	Tree, Meta objects.Checksum // directories
	File       objects.Checksum // files and symlinks
}

func findEntry(dt *objects.DirTree, name string) (Entry, bool) {
	i := sort.Search(len(dt.Dirs), func(i int) bool { return dt.Dirs[i].Name >= name })
	if i < len(dt.Dirs) && dt.Dirs[i].Name == name {
		return Entry{Dir: true, Tree: dt.Dirs[i].Tree, Meta: dt.Dirs[i].Meta}, true
	}
	i = sort.Search(len(dt.Files), func(i int) bool { return dt.Files[i].Name >= name })
	if i < len(dt.Files) && dt.Files[i].Name == name {
		return Entry{File: dt.Files[i].Checksum}, true
	}
	return Entry{}, false
}

// splitPath splits a path into names, resolving "." and ".." lexically
// (".." of the root is the root).
func splitPath(p string) []string {
	var out []string
	for _, n := range strings.Split(p, "/") {
		switch n {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, n)
		}
	}
	return out
}

// maxSymlinks bounds symlink resolution, as the kernel's ELOOP does.
const maxSymlinks = 40

// Resolve resolves a path in a repository tree the way the kernel would in
// a checkout of it: every symlink, including the last component, is
// followed, absolute targets from the tree's root, and ".." never leaves
// the root. Too many links is repo.ErrInvalid.
func Resolve(r *repo.Repo, root Tree, p string) (Entry, error) {
	if root.OnDisk() {
		return Entry{}, fmt.Errorf("%w: resolve in a directory on disk", repo.ErrInvalid)
	}
	rootEntry := Entry{Path: "/", Dir: true, Tree: root.tree, Meta: root.meta}
	stack := []Entry{rootEntry} // the directories from the root to the current one
	todo := splitRaw(p)
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		cur := stack[len(stack)-1]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		dt, err := r.ReadDirTree(cur.Tree)
		if err != nil {
			return Entry{}, err
		}
		next, ok := findEntry(dt, name)
		next.Path = path.Join(cur.Path, name)
		if !ok {
			return Entry{}, fmt.Errorf("%w: no such file or directory: %s", repo.ErrNotFound, next.Path)
		}
		if next.Dir {
			stack = append(stack, next)
			continue
		}
		// Verified: a symlink's target is followed only once it hashes to
		// the object's name (a regular file's content is not read here).
		h, rc, err := r.OpenFileVerified(next.File)
		if err != nil {
			return Entry{}, err
		}
		rc.Close()
		if !h.IsSymlink() {
			if len(todo) > 0 && nonEmpty(todo) {
				return Entry{}, fmt.Errorf("%w: %s: not a directory", repo.ErrInvalid, next.Path)
			}
			return next, nil
		}
		if links++; links > maxSymlinks {
			return Entry{}, fmt.Errorf("%w: %s: too many levels of symbolic links", repo.ErrInvalid, p)
		}
		if strings.HasPrefix(h.Target, "/") {
			stack = stack[:1]
		}
		todo = append(splitRaw(h.Target), todo...)
	}
	return stack[len(stack)-1], nil
}

func splitRaw(p string) []string { return strings.Split(p, "/") }

func nonEmpty(names []string) bool {
	for _, n := range names {
		if n != "" && n != "." {
			return true
		}
	}
	return false
}
