// Package checkout writes a commit's tree out of a repository into a
// directory, as `ostree checkout` does: hard links to the repository's
// objects where the repo mode allows it, copies otherwise.
package checkout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
)

// Options adjust a checkout.
type Options struct {
	// Subpath checks out only this path of the tree (a directory or a file).
	Subpath string
	// UserMode does not set ownership, strips setuid/setgid bits and skips
	// xattrs (ostree checkout -U).
	UserMode bool
	// Union overwrites existing files in the destination; UnionAdd keeps
	// them. Without either, the destination must not exist.
	Union, UnionAdd bool
	// ForceCopy never hard-links.
	ForceCopy bool
	// RequireHardlinks fails instead of copying a file object.
	RequireHardlinks bool
	// Progress receives one unit per file.
	Progress progress.Reporter
}

// ErrExists reports a destination entry in the way.
var ErrExists = errors.New("file exists")

type checkout struct {
	r    *repo.Repo
	o    Options
	rep  progress.Reporter
	link bool // may hard-link file objects
	g    *errgroup.Group
	ctx  context.Context

	mu   sync.Mutex
	dirs []dirFix
	// first path each object was copied to, for linking copies within a
	// user-mode checkout as ostree does
	copied map[objects.Checksum]string
}

type dirFix struct {
	path string
	meta *objects.DirMeta
}

// canLink reports whether file objects of this repo can be hard-linked
// into a checkout with the requested options, as ostree decides.
func canLink(mode repo.Mode, user bool) bool {
	switch mode {
	case repo.ModeBare:
		return !user
	case repo.ModeBareUserOnly:
		return true
	case repo.ModeBareUser:
		return user
	}
	return false
}

// Checkout writes the tree of commit (or its Subpath) to dest.
func Checkout(ctx context.Context, r *repo.Repo, commit objects.Checksum, dest string, o Options) error {
	cm, err := r.ReadCommit(commit)
	if err != nil {
		return err
	}
	c := &checkout{r: r, o: o, rep: progress.OrNop(o.Progress), ctx: ctx, copied: map[objects.Checksum]string{}}
	c.link = !o.ForceCopy && canLink(r.Mode(), o.UserMode)
	if o.RequireHardlinks && !c.link {
		return fmt.Errorf("%w: --require-hardlinks: cannot hard-link from a %s repository with these options", repo.ErrInvalid, r.Mode())
	}
	tree, meta := cm.RootTree, cm.RootMeta
	var file *objects.Checksum
	if sp := strings.Trim(filepath.Clean("/"+o.Subpath), "/"); sp != "" {
		parts := strings.Split(sp, "/")
		for i, name := range parts {
			dt, err := r.ReadDirTree(tree)
			if err != nil {
				return err
			}
			found := false
			for _, d := range dt.Dirs {
				if d.Name == name {
					tree, meta, found = d.Tree, d.Meta, true
				}
			}
			if !found && i == len(parts)-1 {
				for _, f := range dt.Files {
					if f.Name == name {
						cs := f.Checksum
						file, found = &cs, true
					}
				}
			}
			if !found {
				return fmt.Errorf("%w: %s in commit %s", repo.ErrNotFound, o.Subpath, commit)
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, runtime.GOMAXPROCS(0)*2))
	c.g, c.ctx = g, gctx
	c.rep.Phase("checkout", "files", 0)
	defer c.rep.Done()
	if file != nil {
		// As ostree does: the file goes into the destination directory,
		// created 0700 when missing.
		if err := unix.Mkdir(dest, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("checkout %s: %w", dest, err)
		} else if err != nil && !o.Union && !o.UnionAdd {
			return fmt.Errorf("%w: %s", ErrExists, dest)
		}
		ferr := c.file(*file, filepath.Join(dest, filepath.Base("/"+o.Subpath)))
		return errdefs.WalkErr(ctx, ferr, g.Wait())
	}
	if err := errdefs.WalkErr(ctx, c.dir(tree, meta, dest, true), g.Wait()); err != nil {
		return err
	}
	// Directory modes and owners last, deepest first, so that read-only
	// directories could still be filled.
	for i := len(c.dirs) - 1; i >= 0; i-- {
		if err := c.applyDirMeta(c.dirs[i].path, c.dirs[i].meta); err != nil {
			return err
		}
	}
	return nil
}

func (c *checkout) dir(tree, meta objects.Checksum, dest string, top bool) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	dm, err := c.r.ReadDirMeta(meta)
	if err != nil {
		return err
	}
	dt, err := c.r.ReadDirTree(tree)
	if err != nil {
		return err
	}
	if err := unix.Mkdir(dest, 0o700); err != nil {
		if !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("checkout %s: %w", dest, err)
		}
		if !c.o.Union && !c.o.UnionAdd {
			return fmt.Errorf("%w: %s", ErrExists, dest)
		}
		var st unix.Stat_t
		if err := unix.Lstat(dest, &st); err != nil {
			return fmt.Errorf("checkout %s: %w", dest, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("%w: %s exists and is not a directory", ErrExists, dest)
		}
	}
	c.mu.Lock()
	c.dirs = append(c.dirs, dirFix{dest, dm})
	c.mu.Unlock()
	for _, f := range dt.Files {
		p := filepath.Join(dest, f.Name)
		cs := f.Checksum
		c.g.Go(func() error { return c.file(cs, p) })
	}
	for _, d := range dt.Dirs {
		if err := c.dir(d.Tree, d.Meta, filepath.Join(dest, d.Name), false); err != nil {
			return err
		}
	}
	return nil
}

func (c *checkout) applyDirMeta(p string, dm *objects.DirMeta) error {
	if !c.o.UserMode {
		if err := unix.Lchown(p, int(dm.UID), int(dm.GID)); err != nil {
			return fmt.Errorf("checkout %s: %w", p, err)
		}
		for _, x := range dm.Xattrs {
			if err := unix.Lsetxattr(p, x.Name, x.Value, 0); err != nil {
				return fmt.Errorf("checkout %s: setxattr %s: %w", p, x.Name, err)
			}
		}
	}
	if err := unix.Chmod(p, dm.Mode&^objects.ModeTypeMask); err != nil {
		return fmt.Errorf("checkout %s: %w", p, err)
	}
	return nil
}

// exists handles an existing destination entry: false to skip (UnionAdd),
// an error without a union, and it removes a file in the way for Union.
func (c *checkout) clear(p string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true, nil
		}
		return false, fmt.Errorf("checkout %s: %w", p, err)
	}
	switch {
	case c.o.UnionAdd:
		return false, nil
	case !c.o.Union:
		return false, fmt.Errorf("%w: %s", ErrExists, p)
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return false, fmt.Errorf("%w: %s is a directory in the destination", ErrExists, p)
	}
	if err := unix.Unlink(p); err != nil {
		return false, fmt.Errorf("checkout %s: %w", p, err)
	}
	return true, nil
}

func (c *checkout) file(cs objects.Checksum, p string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	defer c.rep.Add(1)
	if c.link {
		obj := c.r.ObjectPath(objects.KindFile, cs)
		linkable := true
		// Empty files are copied, as ostree does, so that they do not pile
		// up links on one inode.
		var st unix.Stat_t
		if err := unix.Lstat(obj, &st); err == nil {
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				linkable = st.Size > 0
			case unix.S_IFLNK:
			default:
				// A device node, fifo or socket in objects/ is never
				// linked into a tree (ostree refuses it too).
				return fmt.Errorf("%w: object %s is not a regular file or symlink", repo.ErrCorrupt, repo.ObjectName(objects.KindFile, cs))
			}
		}
		if linkable && c.r.Mode() == repo.ModeBareUser {
			// Symlinks are regular files in bare-user: only real regular
			// files can be linked.
			h, err := c.r.ReadFileHeader(cs)
			if err != nil {
				return err
			}
			linkable = h.IsRegular()
		}
		if linkable {
			err := unix.Linkat(unix.AT_FDCWD, obj, unix.AT_FDCWD, p, 0)
			if errors.Is(err, unix.EEXIST) {
				ok, cerr := c.clear(p)
				if cerr != nil || !ok {
					return cerr
				}
				err = unix.Linkat(unix.AT_FDCWD, obj, unix.AT_FDCWD, p, 0)
			}
			if err == nil {
				return nil
			}
			if errors.Is(err, unix.ENOENT) {
				if _, serr := os.Lstat(obj); serr != nil {
					return fmt.Errorf("%w: object %s", repo.ErrNotFound, repo.ObjectName(objects.KindFile, cs))
				}
			}
			if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EMLINK) || c.o.RequireHardlinks {
				return fmt.Errorf("checkout %s: hard link: %w", p, err)
			}
		}
	}
	dedup := c.o.UserMode && !c.o.ForceCopy && c.r.Mode() == repo.ModeArchive
	if dedup {
		// A second copy of an object in a user-mode checkout from an archive
		// repo is a hard link to the first, as ostree does.
		c.mu.Lock()
		first, ok := c.copied[cs]
		c.mu.Unlock()
		if ok {
			if err := unix.Linkat(unix.AT_FDCWD, first, unix.AT_FDCWD, p, 0); err == nil {
				return nil
			}
		}
	}
	if err := c.copy(cs, p); err != nil {
		return err
	}
	if dedup {
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size > 0 {
			c.mu.Lock()
			if _, ok := c.copied[cs]; !ok {
				c.copied[cs] = p
			}
			c.mu.Unlock()
		}
	}
	return nil
}

// copy writes a file object's content into a new file (or symlink) at p,
// verifying the content as it streams; a mismatch removes the file.
func (c *checkout) copy(cs objects.Checksum, p string) (err error) {
	h, rc, err := c.r.OpenFileVerified(cs)
	if err != nil {
		return err
	}
	defer rc.Close()
	if h.IsSymlink() {
		// The target is the object's only content: drain the verifying
		// reader (OpenFileVerified already did) so that a target that does
		// not hash to cs is never linked, whoever opened it.
		if _, err := io.Copy(io.Discard, rc); err != nil {
			return err
		}
	}
	if ok, err := c.clear(p); err != nil || !ok {
		return err
	}
	if h.IsSymlink() {
		if err := unix.Symlink(h.Target, p); err != nil {
			return fmt.Errorf("checkout %s: %w", p, err)
		}
		if !c.o.UserMode {
			if err := unix.Lchown(p, int(h.UID), int(h.GID)); err != nil {
				return fmt.Errorf("checkout %s: %w", p, err)
			}
			for _, x := range h.Xattrs {
				if err := unix.Lsetxattr(p, x.Name, x.Value, 0); err != nil {
					return fmt.Errorf("checkout %s: setxattr %s: %w", p, x.Name, err)
				}
			}
		}
		return nil
	}
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("checkout %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			os.Remove(p)
		}
	}()
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	// The context is checked between reads: a cancelled checkout stops
	// within one buffer of a large file, and the partial file is removed.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, fsutil.ContextReader(c.ctx, rc), *buf); err != nil {
		return fmt.Errorf("checkout %s: %w", p, err)
	}
	if !c.o.UserMode {
		if err := unix.Fchown(fd, int(h.UID), int(h.GID)); err != nil {
			return fmt.Errorf("checkout %s: %w", p, err)
		}
		for _, x := range h.Xattrs {
			if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
				return fmt.Errorf("checkout %s: setxattr %s: %w", p, x.Name, err)
			}
		}
	}
	mode := h.Mode &^ objects.ModeTypeMask
	if c.o.UserMode {
		mode &^= 0o6000
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("checkout %s: %w", p, err)
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
