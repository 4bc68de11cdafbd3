package fsutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Helpers for trees strata does not trust (deployments, extracted
// layers): every name is resolved relative to an open directory and may
// not leave it. The *Beneath functions follow no symlink at all
// (openat2's RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS): they are for writes,
// renames and removals, where a symlink planted by the tree must never be
// crossed. OpenInRoot resolves symlinks as a chroot of the directory
// would (RESOLVE_IN_ROOT): for reading files a tree names through its own
// symlinks ("vmlinuz -> /boot/vmlinuz-6.1"), which then cannot reach
// outside it either. On kernels without openat2 (before 5.6, or a seccomp
// filter that refuses it) the same rules are applied component by
// component.

// ErrUnsafePath reports a name that crosses a symlink, or leaves (or
// names) something outside, the directory it is resolved in.
var ErrUnsafePath = errors.New("crosses a symlink or leaves its directory")

// ErrNotRegular reports a file that must be a regular file and is not (a
// directory, device, FIFO or socket).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge reports a file larger than its reader's limit.
var ErrTooLarge = errors.New("larger than allowed")

// noOpenat2 is set once openat2 turned out to be unavailable; tests set
// it to exercise the fallback.
var noOpenat2 atomic.Bool

const (
	resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS
	resolveInRoot  = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS
)

// OpenBeneath opens name relative to the directory dirfd without
// following any symlink (not even as the last component) and without
// leaving dirfd: "..", absolute names and symlinks fail with an error
// wrapping ErrUnsafePath. flags and mode are open(2)'s; O_CLOEXEC is
// added.
func OpenBeneath(dirfd int, name string, flags int, mode uint32) (int, error) {
	fd, err := openat2(dirfd, name, flags, mode, resolveBeneath)
	if err != nil {
		return -1, pathErr("open", name, err)
	}
	return fd, nil
}

// OpenInRoot opens name relative to dirfd as if dirfd were the root
// directory: absolute symlinks and ".." resolve inside it, so nothing
// outside can be reached. It follows a final symlink unless flags has
// O_NOFOLLOW.
func OpenInRoot(dirfd int, name string, flags int) (int, error) {
	fd, err := openat2(dirfd, name, flags, 0, resolveInRoot)
	if err != nil {
		return -1, pathErr("open", name, err)
	}
	return fd, nil
}

func pathErr(op, name string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		return fmt.Errorf("%s %s: %w", op, name, ErrUnsafePath)
	}
	return &os.PathError{Op: op, Path: name, Err: err}
}

func openat2(dirfd int, name string, flags int, mode uint32, resolve uint64) (int, error) {
	if name == "" {
		name = "."
	}
	flags |= unix.O_CLOEXEC
	inRoot := resolve&unix.RESOLVE_IN_ROOT != 0
	if !inRoot {
		flags |= unix.O_NOFOLLOW
	}
	if !noOpenat2.Load() {
		for {
			fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: resolve})
			switch err {
			case unix.EINTR, unix.EAGAIN:
				// EAGAIN: a rename raced RESOLVE_IN_ROOT's ".." check.
				continue
			case unix.ENOSYS:
				noOpenat2.Store(true)
			default:
				return fd, err
			}
			break
		}
	}
	return walk(dirfd, name, flags, mode, inRoot)
}

// maxSymlinks is the kernel's limit of symlinks followed in one lookup.
const maxSymlinks = 40

// walk resolves name one component at a time, for kernels without
// openat2: inRoot resolves symlinks inside dirfd (a final one unless
// flags has O_NOFOLLOW); otherwise any symlink, ".." or absolute name
// fails (ELOOP, EXDEV), except that O_PATH|O_NOFOLLOW opens a final
// symlink itself, as open(2) does.
func walk(dirfd int, name string, flags int, mode uint32, inRoot bool) (int, error) {
	if !inRoot && (strings.HasPrefix(name, "/") || hasDotDot(name)) {
		return -1, unix.EXDEV
	}
	// stack holds the directories opened so far (O_PATH); stack[0] is
	// a copy of dirfd, the root.
	root, err := unix.Openat(dirfd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	stack := []int{root}
	defer func() {
		for _, fd := range stack {
			unix.Close(fd)
		}
	}()
	here := func() (int, error) {
		return unix.Openat(stack[len(stack)-1], ".", flags&^unix.O_NOFOLLOW, mode)
	}
	rest := strings.Split(name, "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		last := len(rest) == 0
		switch c {
		case "", ".":
			if last {
				return here()
			}
			continue
		case "..":
			if len(stack) > 1 {
				unix.Close(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
			}
			if last {
				return here()
			}
			continue
		}
		cur := stack[len(stack)-1]
		var st unix.Stat_t
		if err := unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if last {
				return unix.Openat(cur, c, flags|unix.O_NOFOLLOW, mode) // O_CREAT
			}
			return -1, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if last && flags&unix.O_NOFOLLOW != 0 {
				return unix.Openat(cur, c, flags, mode) // ELOOP, or the link with O_PATH
			}
			if !inRoot {
				return -1, unix.ELOOP
			}
			target, err := readlinkat(cur, c)
			if err != nil {
				return -1, err
			}
			if links++; links > maxSymlinks {
				return -1, unix.ELOOP
			}
			if strings.HasPrefix(target, "/") {
				for _, fd := range stack[1:] {
					unix.Close(fd)
				}
				stack = stack[:1]
			}
			rest = append(strings.Split(target, "/"), rest...)
			continue
		}
		if last {
			return unix.Openat(cur, c, flags|unix.O_NOFOLLOW, mode)
		}
		fd, err := unix.Openat(cur, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		stack = append(stack, fd)
	}
	return here()
}

func hasDotDot(name string) bool {
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

func readlinkat(dirfd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		buf := make([]byte, n)
		m, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if m < n {
			return string(buf[:m]), nil
		}
	}
}

// parentBeneath opens the directory holding name (beneath dirfd, no
// symlinks) and returns it with name's last component. The caller closes
// the fd.
func parentBeneath(dirfd int, name string) (int, string, error) {
	name = strings.TrimRight(name, "/")
	dir, base := path.Split(name)
	if base == "" || base == "." || base == ".." {
		return -1, "", fmt.Errorf("%s: %w", name, ErrUnsafePath)
	}
	fd, err := OpenBeneath(dirfd, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", err
	}
	return fd, base, nil
}

// LstatBeneath stats name relative to dirfd without following symlinks
// (not even the last component), failing with ErrUnsafePath when a
// parent is a symlink.
func LstatBeneath(dirfd int, name string) (*unix.Stat_t, error) {
	pfd, base, err := parentBeneath(dirfd, name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: name, Err: err}
	}
	return &st, nil
}

// MkdirBeneath creates the directory name relative to dirfd; its parents
// must be real directories beneath dirfd.
func MkdirBeneath(dirfd int, name string, mode uint32) error {
	pfd, base, err := parentBeneath(dirfd, name)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, base, mode); err != nil {
		return &os.PathError{Op: "mkdir", Path: name, Err: err}
	}
	return nil
}

// RenameBeneath renames oldname to newname, both relative to dirfd, with
// their parents resolved beneath it and no symlink followed (the entries
// themselves are renamed, whatever they are).
func RenameBeneath(dirfd int, oldname, newname string) error {
	ofd, obase, err := parentBeneath(dirfd, oldname)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	nfd, nbase, err := parentBeneath(dirfd, newname)
	if err != nil {
		return err
	}
	defer unix.Close(nfd)
	if err := fail("rename:" + newname); err != nil {
		return err
	}
	if err := unix.Renameat(ofd, obase, nfd, nbase); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return nil
}

// RemoveBeneath removes the file, symlink or empty directory name
// relative to dirfd, its parents resolved beneath it. A missing name is
// an error satisfying errors.Is(err, os.ErrNotExist).
func RemoveBeneath(dirfd int, name string) error {
	pfd, base, err := parentBeneath(dirfd, name)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	err = unix.Unlinkat(pfd, base, 0)
	if err == unix.EISDIR {
		err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
	}
	if err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	return nil
}

// OpenRegular opens path for reading and fails unless it is a regular
// file. The open does not block (O_NONBLOCK: a FIFO would otherwise wait
// for a writer) and the check is made on the opened file (fstat), so a
// FIFO, device or directory is refused before a byte is read.
func OpenRegular(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return regularFile(fd, path)
}

// OpenRegularInRoot is OpenRegular for name resolved by OpenInRoot.
func OpenRegularInRoot(dirfd int, name string) (*os.File, error) {
	fd, err := OpenInRoot(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, err
	}
	return regularFile(fd, name)
}

func regularFile(fd int, name string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", name, ErrNotRegular)
	}
	// Reads of a regular file never block; clear the flag all the same.
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
		unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// ReadAllLimit reads f to EOF, failing with ErrTooLarge (naming the
// file) after max bytes.
func ReadAllLimit(f *os.File, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: %w (%d bytes)", f.Name(), ErrTooLarge, max)
	}
	return data, nil
}

// ReadFileLimit reads the regular file at path (OpenRegular), at most max
// bytes.
func ReadFileLimit(path string, max int64) ([]byte, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAllLimit(f, max)
}

// CopyContext copies src to dst like io.Copy, checking ctx between
// chunks, so that a long copy stops soon after ctx is cancelled.
func CopyContext(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			w, werr := dst.Write(buf[:m])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
			if w != m {
				return n, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// ContextReader returns a reader of r that fails with ctx's error, checked
// before each Read, so that a long copy through it stops soon after ctx
// is cancelled.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// SameContent reports whether a and b yield the same bytes up to their
// ends, reading both in step (never more than one buffer of each); a
// read error of either is returned.
func SameContent(a, b io.Reader) (bool, error) {
	ba, bb := make([]byte, 256<<10), make([]byte, 256<<10)
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(b, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		aEOF := ea == io.EOF || ea == io.ErrUnexpectedEOF
		bEOF := eb == io.EOF || eb == io.ErrUnexpectedEOF
		if ea != nil && !aEOF {
			return false, ea
		}
		if eb != nil && !bEOF {
			return false, eb
		}
		if aEOF || bEOF {
			return aEOF && bEOF, nil
		}
	}
}
