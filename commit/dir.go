package commit

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
)

// Filter adjusts what is recorded for each entry: ownership overrides,
// dropping xattrs, canonical permissions.
type Filter struct {
	OwnerUID, OwnerGID *uint32
	NoXattrs           bool
	// Canonical applies bare-user-only rules: uid/gid 0, mode masked to
	// 0755 plus the type, no xattrs. It is forced for bare-user-only repos.
	Canonical bool
}

func (f *Filter) apply(uid, gid, mode uint32, xs objects.Xattrs) (uint32, uint32, uint32, objects.Xattrs) {
	if f.OwnerUID != nil {
		uid = *f.OwnerUID
	}
	if f.OwnerGID != nil {
		gid = *f.OwnerGID
	}
	if f.NoXattrs {
		xs = nil
	}
	if f.Canonical {
		uid, gid, xs = 0, 0, nil
		if mode&objects.ModeTypeMask != objects.ModeSymlink {
			mode &= objects.ModeTypeMask | 0o755
		}
	}
	return uid, gid, mode, xs
}

// Workers is the number of files hashed and written at once.
func Workers() int { return max(2, runtime.GOMAXPROCS(0)) }

// AddDir overlays the directory src onto m, writing file objects to t in
// parallel (bounded by Workers). Sockets, fifos and device nodes are refused
// by name, as OSTree refuses them.
func AddDir(ctx context.Context, t *repo.Txn, m *MTree, src string, f Filter, rep progress.Reporter) error {
	rep = progress.OrNop(rep)
	if t.Repo().Mode() == repo.ModeBareUserOnly {
		f.Canonical = true
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Workers())
	err := addDir(gctx, g, t, m, src, "/", &f, rep, true)
	return errdefs.WalkErr(ctx, err, g.Wait())
}

func addDir(ctx context.Context, g *errgroup.Group, t *repo.Txn, m *MTree, dir, rel string, f *Filter, rep progress.Reporter, root bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var st syscall.Stat_t
	stat := syscall.Lstat
	if root {
		stat = syscall.Stat
	}
	if err := stat(dir, &st); err != nil {
		return fmt.Errorf("commit %s: %w", dir, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return fmt.Errorf("commit %s: not a directory", dir)
	}
	var xs objects.Xattrs
	var err error
	if !f.NoXattrs && !f.Canonical {
		if xs, err = repo.ReadXattrs(dir); err != nil {
			return err
		}
	}
	uid, gid, mode, xs := f.apply(st.Uid, st.Gid, st.Mode, xs)
	meta := &objects.DirMeta{UID: uid, GID: gid, Mode: mode, Xattrs: xs}
	m.Meta = meta
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("commit %s: %w", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(dir, name)
		relp := filepath.Join(rel, name)
		switch e.Type() & os.ModeType {
		case os.ModeDir:
			if err := m.checkOverlay(t.Repo(), name, true); err != nil {
				return fmt.Errorf("commit %s: %w", relp, err)
			}
			sub, err := m.Dir(t.Repo(), name, nil)
			if err != nil {
				return fmt.Errorf("commit %s: %w", relp, err)
			}
			if err := addDir(ctx, g, t, sub, p, relp, f, rep, false); err != nil {
				return err
			}
		case 0, os.ModeSymlink:
			if err := m.checkOverlay(t.Repo(), name, false); err != nil {
				return fmt.Errorf("commit %s: %w", relp, err)
			}
			slot, err := m.SetFile(t.Repo(), name)
			if err != nil {
				return fmt.Errorf("commit %s: %w", relp, err)
			}
			g.Go(func() error {
				c, err := addFile(t, p, f)
				if err != nil {
					return fmt.Errorf("commit %s: %w", relp, err)
				}
				*slot = c
				rep.Add(1)
				return nil
			})
		default:
			return fmt.Errorf("commit %s: unsupported file type %s (only regular files, symlinks and directories can be committed)", relp, e.Type())
		}
	}
	return nil
}

// addFile writes one regular file or symlink from disk.
func addFile(t *repo.Txn, p string, f *Filter) (objects.Checksum, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return objects.Checksum{}, err
	}
	var xs objects.Xattrs
	var err error
	if !f.NoXattrs && !f.Canonical {
		if xs, err = repo.ReadXattrs(p); err != nil {
			return objects.Checksum{}, err
		}
	}
	uid, gid, mode, xs := f.apply(st.Uid, st.Gid, st.Mode, xs)
	h := &objects.FileHeader{UID: uid, GID: gid, Mode: mode, Xattrs: xs}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFLNK:
		if h.Target, err = os.Readlink(p); err != nil {
			return objects.Checksum{}, err
		}
		return t.WriteFile(h, nil)
	case syscall.S_IFREG:
		h.Size = uint64(st.Size)
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return objects.Checksum{}, &os.PathError{Op: "open", Path: p, Err: err}
		}
		defer unix.Close(fd)
		return t.WriteFile(h, fdReader(fd))
	}
	return objects.Checksum{}, fmt.Errorf("unsupported file type (mode %#o)", st.Mode)
}

// fdReader reads a raw file descriptor, avoiding os.File's poller set-up,
// which costs more than the read for small files.
type fdReader int

func (r fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(r), p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}
