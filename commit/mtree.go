// Package commit builds filesystem trees into a repository: from a
// directory, a tar stream or an existing commit, overlaid in order, then
// written as dirtree/dirmeta objects and a commit object whose checksum
// matches what `ostree commit` gives for the same input.
package commit

import (
	"fmt"
	"sort"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// MTree is a mutable directory tree being assembled. A subtree taken from
// an existing commit stays a (tree, meta) checksum pair until something is
// written into it.
type MTree struct {
	Meta  *objects.DirMeta
	files map[string]*objects.Checksum // a pointer so parallel workers can fill it in
	dirs  map[string]*MTree

	// lazy: contents are those of an existing dirtree.
	lazyTree *objects.Checksum
	lazyMeta objects.Checksum
}

// NewMTree returns an empty tree with the given directory metadata.
func NewMTree(meta *objects.DirMeta) *MTree {
	return &MTree{Meta: meta, files: map[string]*objects.Checksum{}, dirs: map[string]*MTree{}}
}

// expand loads a lazy subtree's entries so it can be modified.
func (m *MTree) expand(r *repo.Repo) error {
	if m.lazyTree == nil {
		return nil
	}
	dt, err := r.ReadDirTree(*m.lazyTree)
	if err != nil {
		return err
	}
	if m.Meta == nil {
		if m.Meta, err = r.ReadDirMeta(m.lazyMeta); err != nil {
			return err
		}
	}
	for _, f := range dt.Files {
		c := f.Checksum
		m.files[f.Name] = &c
	}
	for _, d := range dt.Dirs {
		t := d.Tree
		m.dirs[d.Name] = &MTree{files: map[string]*objects.Checksum{}, dirs: map[string]*MTree{}, lazyTree: &t, lazyMeta: d.Meta}
	}
	m.lazyTree = nil
	return nil
}

// Dir returns the subdirectory name, creating it with meta if missing. An
// existing file of that name is replaced, as a later overlay wins.
func (m *MTree) Dir(r *repo.Repo, name string, meta *objects.DirMeta) (*MTree, error) {
	if err := objects.ValidateFilename(name); err != nil {
		return nil, err
	}
	if err := m.expand(r); err != nil {
		return nil, err
	}
	if d, ok := m.dirs[name]; ok {
		if meta != nil {
			d.Meta = meta
		}
		if err := d.expand(r); err != nil {
			return nil, err
		}
		return d, nil
	}
	delete(m.files, name)
	d := NewMTree(meta)
	m.dirs[name] = d
	return d, nil
}

// SetFile records a file entry; the checksum may be filled in later (before
// Write). A directory of the same name is replaced.
func (m *MTree) SetFile(r *repo.Repo, name string) (*objects.Checksum, error) {
	if err := objects.ValidateFilename(name); err != nil {
		return nil, err
	}
	if err := m.expand(r); err != nil {
		return nil, err
	}
	delete(m.dirs, name)
	c := new(objects.Checksum)
	m.files[name] = c
	return c, nil
}

// Remove deletes an entry (whiteouts).
func (m *MTree) Remove(r *repo.Repo, name string) error {
	if err := m.expand(r); err != nil {
		return err
	}
	delete(m.files, name)
	delete(m.dirs, name)
	return nil
}

// ErrTypeChange reports an overlay that would turn a directory into a file
// or a file into a directory; ostree refuses both for dir and ref overlays.
var ErrTypeChange = fmt.Errorf("%w: an overlay cannot change an entry between file and directory", repo.ErrInvalid)

// checkOverlay fails with ErrTypeChange when name exists in m with the
// other type (dir true: a directory is being added).
func (m *MTree) checkOverlay(r *repo.Repo, name string, dir bool) error {
	if err := m.expand(r); err != nil {
		return err
	}
	if _, isFile := m.files[name]; dir && isFile {
		return fmt.Errorf("cannot replace file with directory: %w", ErrTypeChange)
	}
	if _, isDir := m.dirs[name]; !dir && isDir {
		return fmt.Errorf("cannot replace directory with file: %w", ErrTypeChange)
	}
	return nil
}

// Lookup returns a subdirectory (nil if absent).
func (m *MTree) Lookup(r *repo.Repo, name string) (*MTree, error) {
	if err := m.expand(r); err != nil {
		return nil, err
	}
	return m.dirs[name], nil
}

// SetLazy makes m the contents of an existing tree.
func (m *MTree) SetLazy(tree, meta objects.Checksum) {
	m.files = map[string]*objects.Checksum{}
	m.dirs = map[string]*MTree{}
	m.lazyTree = &tree
	m.lazyMeta = meta
	m.Meta = nil
}

// Write stores the tree's dirtree and dirmeta objects, bottom-up, and
// returns the root's (dirtree, dirmeta) checksums.
func (m *MTree) Write(t *repo.Txn) (tree, meta objects.Checksum, err error) {
	if m.lazyTree != nil && m.Meta == nil {
		return *m.lazyTree, m.lazyMeta, nil
	}
	if m.lazyTree != nil {
		if err := m.expand(t.Repo()); err != nil {
			return tree, meta, err
		}
	}
	if m.Meta == nil {
		return tree, meta, fmt.Errorf("%w: directory without metadata (a tar needs a ./ entry, or use --tar-autocreate-parents)", repo.ErrInvalid)
	}
	var dt objects.DirTree
	for name, c := range m.files {
		dt.Files = append(dt.Files, objects.TreeFile{Name: name, Checksum: *c})
	}
	names := make([]string, 0, len(m.dirs))
	for name := range m.dirs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		st, sm, err := m.dirs[name].Write(t)
		if err != nil {
			return tree, meta, err
		}
		dt.Dirs = append(dt.Dirs, objects.TreeDir{Name: name, Tree: st, Meta: sm})
	}
	dt.Sort()
	if tree, err = t.WriteMetadata(objects.KindDirTree, dt.Marshal()); err != nil {
		return tree, meta, err
	}
	if meta, err = t.WriteMetadata(objects.KindDirMeta, m.Meta.Marshal()); err != nil {
		return tree, meta, err
	}
	return tree, meta, nil
}

// Clear empties m (an opaque whiteout), keeping its metadata.
func (m *MTree) Clear(r *repo.Repo) error {
	if err := m.expand(r); err != nil {
		return err
	}
	clear(m.files)
	clear(m.dirs)
	return nil
}
