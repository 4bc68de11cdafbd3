package etcmerge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/repo"
)

// Plan is a computed /etc three-way merge: the local changes of a
// deployment (its etc against its usr/etc) to carry into a new
// deployment's etc, checked to be applicable. A Plan is used once.
type Plan struct {
	orig, local, dst string
	changes          []Change
	ignored          []string
}

// ErrConflict reports a merge that cannot be done; it wraps
// repo.ErrInvalid. Its message names the path.
var ErrConflict = fmt.Errorf("/etc merge: %w", repo.ErrInvalid)

// NewPlan computes the merge of origEtc -> localEtc (the old deployment's
// usr/etc and etc) into newEtc (the new deployment's etc, a copy of its
// usr/etc), with ostree's semantics (merge_configuration_from):
//   - the changes are Diff(origEtc, localEtc): xattrs are not compared
//     (SELinux labels of /etc and usr/etc differ), but a changed file is
//     copied with all its xattrs;
//   - every Deleted path is removed from newEtc, recursively;
//   - then every Modified, then every Added path is copied from localEtc
//     over what newEtc has, directories recursively; parent directories
//     missing from newEtc are created, and the parent of each copied path
//     takes the local parent's owner, mode and xattrs;
//   - a path that is a directory in both localEtc and newEtc is left as
//     newEtc has it (its children are merged one by one);
//   - device nodes, FIFOs and sockets are not copied (ostree logs and
//     skips them; see Ignored), except inside a copied directory, where
//     ostree fails and so does NewPlan;
//   - everything else in newEtc (untouched defaults) stays as it is.
//
// NewPlan only reads. It fails with ErrConflict, naming the path, when
// ostree's merge would fail or would have to write outside newEtc: a
// locally changed non-directory that is a directory in newEtc ("modified
// config file newly defaults to directory"), a path below something in
// newEtc that is not a directory, a path below a symlink in newEtc, or a
// special file inside a directory to copy.
func NewPlan(ctx context.Context, origEtc, localEtc, newEtc string) (*Plan, error) {
	changes, err := Diff(ctx, origEtc, localEtc)
	if err != nil {
		return nil, fmt.Errorf("/etc merge: computing the configuration diff: %w", err)
	}
	if st, err := os.Lstat(newEtc); err != nil {
		return nil, fmt.Errorf("/etc merge: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrConflict, newEtc)
	}
	p := &Plan{orig: origEtc, local: localEtc, dst: newEtc, changes: changes}
	s := &sim{p: p, over: map[string]overlay{}}
	for _, c := range changes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if c.Kind == Deleted {
			err = s.remove(c.Path)
		} else {
			err = s.copy(c.Path)
		}
		if err != nil {
			return nil, err
		}
	}
	p.ignored = s.ignored
	return p, nil
}

// Changes returns the local changes the plan carries over, in the order
// in which they are applied (and `ostree admin config-diff` prints them).
func (p *Plan) Changes() []Change { return append([]Change(nil), p.changes...) }

// Counts returns how many paths were modified, deleted and added locally
// (ostree's "Copying /etc changes: N modified, N removed, N added").
func (p *Plan) Counts() (modified, deleted, added int) {
	for _, c := range p.changes {
		switch c.Kind {
		case Modified:
			modified++
		case Deleted:
			deleted++
		case Added:
			added++
		}
	}
	return
}

// Ignored returns the changed paths that are not copied because they are
// neither regular files, symlinks nor directories.
func (p *Plan) Ignored() []string { return append([]string(nil), p.ignored...) }

// conflict returns an ErrConflict with a message naming the path.
func conflict(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...))
}

// typ is what a path is in the simulated new /etc.
type typ int

const (
	tNone typ = iota
	tDir
	tFile // regular, symlink, or special: anything unlink removes
	tSymlink
)

func typOf(mode uint32) typ {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return tDir
	case unix.S_IFLNK:
		return tSymlink
	}
	return tFile
}

// overlay records what an operation did to a path of the new /etc.
type overlay int

const (
	oGone  overlay = iota + 1 // removed, with its subtree
	oLocal                    // now a copy of the local path's subtree
	oDir                      // a directory created empty
)

// sim replays the merge on a model of the new /etc, to find every failure
// before anything is written.
type sim struct {
	p       *Plan
	over    map[string]overlay
	ignored []string
}

func (s *sim) set(rel string, o overlay) {
	for k := range s.over {
		if strings.HasPrefix(k, rel+"/") {
			delete(s.over, k)
		}
	}
	s.over[rel] = o
}

// parentState is how the path to an entry resolves in the new /etc.
type parentState int

const (
	pOK      parentState = iota // every parent a real directory
	pMissing                    // a parent is missing
	pNotDir                     // a parent is a file
	pSymlink                    // a parent is a symlink
)

// stat returns what rel is in the simulated new /etc, and how its parent
// path resolves (the type is tNone unless the parents are pOK).
func (s *sim) stat(rel string) (typ, parentState, string, error) {
	parts := strings.Split(rel, "/")
	mode := "new" // where the current prefix comes from: new, local, none
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		if o, ok := s.over[prefix]; ok {
			switch o {
			case oGone:
				mode = "none"
			case oLocal:
				mode = "local"
			case oDir:
				mode = "dir"
			}
		} else if mode == "dir" {
			mode = "none"
		}
		var t typ
		switch mode {
		case "none":
			t = tNone
		case "dir":
			t = tDir
		default:
			base := s.p.dst
			if mode == "local" {
				base = s.p.local
			}
			st, err := lstat(filepath.Join(base, prefix))
			switch {
			case errors.Is(err, os.ErrNotExist):
				t = tNone
			case err != nil:
				return tNone, pOK, "", fmt.Errorf("/etc merge: %w", err)
			default:
				t = typOf(st.Mode)
			}
		}
		if i == len(parts)-1 {
			return t, pOK, "", nil
		}
		switch t {
		case tNone:
			return tNone, pMissing, prefix, nil
		case tSymlink:
			return tNone, pSymlink, prefix, nil
		case tFile:
			return tNone, pNotDir, prefix, nil
		}
	}
	panic("unreachable")
}

// remove models glnx_shutil_rm_rf_at(new_etc, rel).
func (s *sim) remove(rel string) error {
	_, ps, at, err := s.stat(rel)
	if err != nil {
		return err
	}
	switch ps {
	case pNotDir:
		return conflict("cannot remove locally deleted '%s': '%s' is not a directory in the new defaults", rel, at)
	case pSymlink:
		return conflict("cannot remove locally deleted '%s': '%s' is a symlink in the new defaults", rel, at)
	case pMissing:
		return nil
	}
	s.set(rel, oGone)
	return nil
}

// copy models copy_modified_config_file(rel).
func (s *sim) copy(rel string) error {
	lst, err := lstat(filepath.Join(s.p.local, rel))
	if err != nil {
		return fmt.Errorf("/etc merge: reading modified config file: %w", err)
	}
	if dir := path.Dir(rel); dir != "." {
		if err := s.ensureDir(dir, rel); err != nil {
			return err
		}
	}
	t, _, _, err := s.stat(rel)
	if err != nil {
		return err
	}
	lt := typOf(lst.Mode)
	if t == tDir {
		if lt != tDir {
			return conflict("modified config file newly defaults to directory '%s', cannot merge", rel)
		}
		return nil
	}
	switch lst.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := s.checkCopyable(filepath.Join(s.p.local, rel), rel); err != nil {
			return err
		}
	case unix.S_IFREG, unix.S_IFLNK:
	default:
		s.ignored = append(s.ignored, rel)
		if t != tNone {
			s.set(rel, oGone) // ostree unlinks the default, then skips
		}
		return nil
	}
	s.set(rel, oLocal)
	return nil
}

// ensureDir models ensure_directory_from_template(dir) for the copy of
// rel: dir and its missing parents are created.
func (s *sim) ensureDir(dir, rel string) error {
	t, ps, at, err := s.stat(dir)
	if err != nil {
		return err
	}
	switch ps {
	case pNotDir:
		return conflict("cannot copy '%s': '%s' is not a directory in the new defaults", rel, at)
	case pSymlink:
		return conflict("cannot copy '%s': '%s' is a symlink in the new defaults", rel, at)
	case pMissing:
		if err := s.ensureDir(path.Dir(dir), rel); err != nil {
			return err
		}
		t = tNone
	}
	switch t {
	case tNone:
		s.set(dir, oDir)
	case tFile:
		return conflict("cannot copy '%s': '%s' is not a directory in the new defaults", rel, dir)
	case tSymlink:
		return conflict("cannot copy '%s': '%s' is a symlink in the new defaults", rel, dir)
	}
	return nil
}

// checkCopyable fails on what copy_dir_recurse cannot copy: anything but
// directories, regular files and symlinks.
func (s *sim) checkCopyable(dir, rel string) error {
	ents, err := readdirRaw(dir)
	if err != nil {
		return fmt.Errorf("/etc merge: %w", err)
	}
	for _, e := range ents {
		st, err := lstat(filepath.Join(dir, e.name))
		if err != nil {
			return fmt.Errorf("/etc merge: %w", err)
		}
		crel := path.Join(rel, e.name)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := s.checkCopyable(filepath.Join(dir, e.name), crel); err != nil {
				return err
			}
		case unix.S_IFREG, unix.S_IFLNK:
		default:
			return conflict("cannot copy '%s': not a regular file, symlink or directory", crel)
		}
	}
	return nil
}

// Apply writes the merge into the new /etc, in ostree's order: removals,
// then modified paths, then added paths. Copies keep mode, owner, xattrs
// (security.selinux included) and, for regular files, atime and mtime;
// directories are created 0700 and then given the local mode, owner and
// xattrs; each file is written to a temporary and renamed into place. It
// ends with a syncfs of the new /etc's filesystem. A failure (I/O, or a
// conflict that appeared after NewPlan) leaves the new /etc partly merged:
// the caller discards the new deployment.
func (p *Plan) Apply(ctx context.Context) error {
	for _, c := range p.changes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fsutil.CheckFailpoint("etcmerge:" + c.Path); err != nil {
			return err
		}
		var err error
		if c.Kind == Deleted {
			err = p.applyRemove(c.Path)
		} else {
			err = p.applyCopy(c.Path)
		}
		if err != nil {
			return err
		}
	}
	return fsutil.Syncfs(p.dst)
}

// parentsOK checks that every parent of rel in the new /etc is a real
// directory (or missing, when missingOK).
func (p *Plan) parentsOK(rel string, missingOK bool) (bool, error) {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		st, err := lstat(filepath.Join(p.dst, prefix))
		if errors.Is(err, os.ErrNotExist) && missingOK {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("/etc merge: %w", err)
		}
		if typOf(st.Mode) != tDir {
			return false, conflict("'%s' is not a directory in the new defaults", prefix)
		}
	}
	return true, nil
}

func (p *Plan) applyRemove(rel string) error {
	ok, err := p.parentsOK(rel, true)
	if err != nil || !ok {
		return err
	}
	if err := os.RemoveAll(filepath.Join(p.dst, rel)); err != nil {
		return fmt.Errorf("/etc merge: %w", err)
	}
	return nil
}

func (p *Plan) applyCopy(rel string) error {
	src := filepath.Join(p.local, rel)
	lst, err := lstat(src)
	if err != nil {
		return fmt.Errorf("/etc merge: reading modified config file: %w", err)
	}
	if dir := path.Dir(rel); dir != "." {
		if err := p.ensureDir(dir); err != nil {
			return err
		}
	}
	dst := filepath.Join(p.dst, rel)
	nst, err := lstat(dst)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("/etc merge: %w", err)
	case typOf(nst.Mode) == tDir:
		if typOf(lst.Mode) != tDir {
			return conflict("modified config file newly defaults to directory '%s', cannot merge", rel)
		}
		return nil
	default:
		if err := os.Remove(dst); err != nil {
			return fmt.Errorf("/etc merge: %w", err)
		}
	}
	switch lst.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return copyDir(src, dst, lst)
	case unix.S_IFREG, unix.S_IFLNK:
		return copyFile(src, dst, lst)
	}
	return nil // ignored, as ostree does
}

// ensureDir creates dir (and missing parents) in the new /etc, giving each
// created directory, and dir itself, the local directory's attributes.
func (p *Plan) ensureDir(dir string) error {
	dst := filepath.Join(p.dst, dir)
	if _, err := p.parentsOK(dir, true); err != nil {
		return err
	}
	for {
		err := unix.Mkdir(dst, 0o700)
		if err == nil || err == unix.EEXIST {
			break
		}
		if err == unix.ENOENT && path.Dir(dir) != "." {
			if err := p.ensureDir(path.Dir(dir)); err != nil {
				return err
			}
			continue
		}
		return fmt.Errorf("/etc merge: mkdir %s: %w", dst, err)
	}
	st, err := lstat(dst)
	if err != nil {
		return fmt.Errorf("/etc merge: %w", err)
	}
	if typOf(st.Mode) != tDir {
		return conflict("'%s' is not a directory in the new defaults", dir)
	}
	src := filepath.Join(p.local, dir)
	sst, err := lstat(src)
	if err != nil {
		return fmt.Errorf("/etc merge: %w", err)
	}
	return copyDirAttrs(src, dst, sst)
}

// copyDir is copy_dir_recurse: dst is created 0700, given src's xattrs,
// owner and mode, then filled.
func copyDir(src, dst string, st *unix.Stat_t) error {
	if err := unix.Mkdir(dst, 0o700); err != nil && err != unix.EEXIST {
		return fmt.Errorf("/etc merge: mkdir %s: %w", dst, err)
	}
	if err := copyDirAttrs(src, dst, st); err != nil {
		return err
	}
	ents, err := readdirRaw(src)
	if err != nil {
		return fmt.Errorf("/etc merge: %w", err)
	}
	for _, e := range ents {
		s, d := filepath.Join(src, e.name), filepath.Join(dst, e.name)
		cst, err := lstat(s)
		if err != nil {
			return fmt.Errorf("/etc merge: %w", err)
		}
		if typOf(cst.Mode) == tDir {
			err = copyDir(s, d, cst)
		} else {
			err = copyFile(s, d, cst)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func copyDirAttrs(src, dst string, st *unix.Stat_t) error {
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("/etc merge: chown %s: %w", dst, err)
	}
	if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
		return fmt.Errorf("/etc merge: chmod %s: %w", dst, err)
	}
	return nil
}

// copyXattrs sets every xattr of src on dst (symlinks not followed); the
// xattrs dst already has stay.
func copyXattrs(src, dst string) error {
	vals, names, err := fsutil.ListXattrs(src)
	if err != nil {
		return fmt.Errorf("/etc merge: %w", err)
	}
	for _, n := range names {
		if err := unix.Lsetxattr(dst, n, vals[n], 0); err != nil {
			return fmt.Errorf("/etc merge: setxattr %s %s: %w", dst, n, err)
		}
	}
	return nil
}

var tmpCounter atomic.Uint64

// copyFile is glnx_file_copy_at with GLNX_FILE_COPY_OVERWRITE: a symlink
// is recreated (xattrs, owner); a regular file is written to a temporary
// beside dst, given src's owner, xattrs, mode and timestamps, and renamed
// over dst.
func copyFile(src, dst string, st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("/etc merge: %w", err)
		}
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("/etc merge: %w", err)
		}
		if err := copyXattrs(src, dst); err != nil {
			return err
		}
		if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("/etc merge: chown %s: %w", dst, err)
		}
		return nil
	case unix.S_IFREG:
	default:
		return fmt.Errorf("%w: cannot copy non-regular/non-symlink file %s", ErrConflict, src)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("/etc merge: %w", err)
	}
	defer in.Close()
	// A short temporary name (fsutil.TempName would derive one from dst,
	// too long beside a 255-byte name); the pattern is still the one
	// fsutil.RemoveStaleTemps recognises.
	tmp := filepath.Join(filepath.Dir(dst), fmt.Sprintf(".etcmerge.tmp-%d-%d", os.Getpid(), tmpCounter.Add(1)))
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("/etc merge: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("/etc merge: copy %s: %w", src, err)
	}
	if err := out.Chown(int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("/etc merge: chown %s: %w", dst, err)
	}
	vals, names, err := fsutil.ListXattrs(src)
	if err != nil {
		return fmt.Errorf("/etc merge: %w", err)
	}
	for _, n := range names {
		if err := unix.Fsetxattr(int(out.Fd()), n, vals[n], 0); err != nil {
			return fmt.Errorf("/etc merge: setxattr %s %s: %w", dst, n, err)
		}
	}
	// chmod after the xattrs: a 0400 file (/etc/shadow) takes no fsetxattr
	// for non-root callers otherwise.
	if err := unix.Fchmod(int(out.Fd()), st.Mode&0o7777); err != nil {
		return fmt.Errorf("/etc merge: chmod %s: %w", dst, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, tmp, ts, unix.AT_SYMLINK_NOFOLLOW) // best effort, as glnx does
	if err := out.Close(); err != nil {
		return fmt.Errorf("/etc merge: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("/etc merge: %w", err)
	}
	ok = true
	return nil
}
