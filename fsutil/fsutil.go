// Package fsutil holds the one durable-write helper that every piece of
// repository and sysroot state goes through, and small filesystem helpers
// (xattrs, syncfs, locks). It imports nothing from strata.
package fsutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Failpoint, when set (tests only), is called with a step name before each
// durable step; returning an error makes the step fail as a crash would.
// Steps: "write:<path>", "fsync:<path>", "rename:<path>", "syncdir:<dir>".
var Failpoint atomic.Pointer[func(step string) error]

func fail(step string) error {
	if f := Failpoint.Load(); f != nil {
		return (*f)(step)
	}
	return nil
}

// CheckFailpoint runs Failpoint for a durable step taken outside this
// package (a renameat2, say), so fault-injection tests reach it too. It is
// nil whenever Failpoint is unset.
func CheckFailpoint(step string) error { return fail(step) }

var tmpCounter atomic.Uint64

// maxTempBase is how much of a name TempName keeps: 1 + 200 + ".tmp-" +
// two decimal numbers and 8 hex digits stays under NAME_MAX.
const maxTempBase = 200

// TempName returns a unique temporary name for a file beside name.
func TempName(name string) string {
	base := filepath.Base(name)
	if len(base) > maxTempBase {
		// Keep the temporary within NAME_MAX (255) beside a long name.
		base = base[:maxTempBase]
	}
	// The random part keeps names apart across boots, where the same PID
	// and counter come back (a temporary left by a power cut would
	// otherwise block the same write after the reboot).
	var rnd [4]byte
	rand.Read(rnd[:])
	return fmt.Sprintf(".%s.tmp-%d-%d-%x", base, os.Getpid(), tmpCounter.Add(1), rnd)
}

// RemoveStaleTemps removes, from dir, the temporaries (TempName) left by
// processes that died between creating and renaming them. A temporary is
// stale when the process named in it no longer exists, or started after
// the temporary was last written (its PID was reused, as after a reboot);
// a process in another PID namespace may be judged dead, which at worst
// makes its rename fail. This is housekeeping: nothing stops on its error,
// which joins one error per stale temporary that could not be removed (the
// caller passes it to a progress.Warner); an unreadable dir is no error.
func RemoveStaleTemps(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var errs []error
	remove := func(name string) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("stale temporary not removed: %w", err))
		}
	}
	for _, e := range ents {
		i := strings.LastIndex(e.Name(), ".tmp-")
		if i < 0 || !strings.HasPrefix(e.Name(), ".") {
			continue
		}
		rest := e.Name()[i+len(".tmp-"):]
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			continue
		}
		if errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			remove(e.Name())
			continue
		}
		start, ok := processStart(pid)
		if fi, err := e.Info(); err == nil && ok && fi.ModTime().Before(start.Add(-time.Second)) {
			remove(e.Name())
		}
	}
	return errors.Join(errs...)
}

// processStart returns when process pid started, from /proc (field 22 of
// /proc/PID/stat, in clock ticks of 1/100 s since boot, plus btime of
// /proc/stat).
func processStart(pid int) (time.Time, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return time.Time{}, false
	}
	// The command name (field 2) may hold spaces: fields count from ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return time.Time{}, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64) // field 22
	if err != nil {
		return time.Time{}, false
	}
	procStat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(procStat), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			btime, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(btime, 0).Add(time.Duration(ticks) * 10 * time.Millisecond), true
		}
	}
	return time.Time{}, false
}

// WriteFile durably replaces path with data: it writes a temporary file in
// the same directory, fsyncs it, renames it over path and fsyncs the
// directory. On an error before the rename path is unchanged and the
// temporary is removed; when only the final directory sync fails, path
// already holds data but may not survive a crash.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFileFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFileFunc is WriteFile with the content produced by fill.
func WriteFileFunc(path string, perm os.FileMode, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp := filepath.Join(dir, TempName(path))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = fail("write:" + path); err != nil {
		return err
	}
	if err = fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil { // undo the umask
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = fail("fsync:" + path); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = fail("rename:" + path); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return SyncDir(dir)
}

// Rename renames old to new and fsyncs new's directory (and old's, when it
// differs), so the rename survives a crash.
func Rename(oldpath, newpath string) error {
	if err := fail("rename:" + newpath); err != nil {
		return err
	}
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	if err := SyncDir(filepath.Dir(newpath)); err != nil {
		return err
	}
	if od := filepath.Dir(oldpath); od != filepath.Dir(newpath) {
		return SyncDir(od)
	}
	return nil
}

// RenameNoReplace renames old to new unless new exists, in which case old
// is left in place and existed is true (RENAME_NOREPLACE: two writers of the
// same content-addressed name keep the first). It does not fsync: callers
// that rename many files make them durable at once (Syncfs) before they
// publish anything that names them.
func RenameNoReplace(oldpath, newpath string) (existed bool, err error) {
	if err := fail("rename:" + newpath); err != nil {
		return false, err
	}
	err = unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		return true, nil
	}
	if err != nil {
		return false, &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return false, nil
}

// RenameNoSync renames old over new without an fsync, for callers that make
// many renames durable at once (Syncfs). The failpoint step is
// "rename:<new>", as for Rename.
func RenameNoSync(oldpath, newpath string) error {
	if err := fail("rename:" + newpath); err != nil {
		return err
	}
	return os.Rename(oldpath, newpath)
}

// Symlink durably creates or replaces the symlink path pointing at target:
// a temporary link, a rename over path, an fsync of the directory.
func Symlink(target, path string) error {
	tmp := filepath.Join(filepath.Dir(path), TempName(path))
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// SyncDir fsyncs a directory so that entries created or renamed in it are
// durable.
func SyncDir(dir string) error {
	if err := fail("syncdir:" + dir); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// Syncfs flushes the whole filesystem holding path (syncfs(2)): the cheap
// way to make many freshly written files durable at once.
func Syncfs(path string) error {
	if err := fail("syncfs:" + path); err != nil {
		return err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}

// MkdirAllSync creates dir and missing parents, fsyncing each parent whose
// entries changed.
func MkdirAllSync(dir string, perm os.FileMode) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAllSync(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return SyncDir(parent)
}

// Lock is an flock(2) lock on a file.
type Lock struct{ f *os.File }

// LockOptions say how LockFile locks.
type LockOptions struct {
	// Exclusive takes an exclusive lock; the zero value a shared one.
	Exclusive bool
	// Wait waits (until ctx is done) for a conflicting lock to go; the
	// zero value fails at once with ErrLocked.
	Wait bool
}

// LockFile takes an flock on path (created if missing), shared or
// exclusive as o says. With o.Wait it waits until ctx is done; otherwise it
// fails at once with ErrLocked when another process holds a conflicting
// lock.
func LockFile(ctx context.Context, path string, o LockOptions) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	how := unix.LOCK_SH
	if o.Exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return &Lock{f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !o.Wait {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-after(50):
		}
	}
}

// ErrLocked reports a lock held by another process.
var ErrLocked = errors.New("locked by another process")

// Holds reports whether the lock is on the file now at path: false when
// that file was removed or replaced after LockFile opened it, in which
// case the lock protects nothing and the caller should lock again.
func (l *Lock) Holds(path string) bool {
	if l == nil || l.f == nil {
		return false
	}
	a, err := l.f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// ListXattrs returns all extended attributes of path (not following a final
// symlink), sorted by name.
func ListXattrs(path string) (map[string][]byte, []string, error) {
	size, err := unix.Llistxattr(path, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("listxattr %s: %w", path, err)
	}
	if size == 0 {
		return nil, nil, nil
	}
	buf := make([]byte, size)
	for {
		n, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*2)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("listxattr %s: %w", path, err)
		}
		buf = buf[:n]
		break
	}
	vals := map[string][]byte{}
	var names []string
	for _, name := range strings.Split(strings.TrimRight(string(buf), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v, err := Lgetxattr(path, name)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return nil, nil, err
		}
		vals[name] = v
		names = append(names, name)
	}
	sort.Strings(names) // the kernel lists them in no defined order
	return vals, names, nil
}

// Lgetxattr reads one extended attribute of path without following a final
// symlink.
func Lgetxattr(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err2 := unix.Lgetxattr(path, name, nil)
			if err2 != nil {
				return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err2)
			}
			buf = make([]byte, sz)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err)
		}
		return buf[:n], nil
	}
}

func after(ms int) <-chan time.Time { return time.After(time.Duration(ms) * time.Millisecond) }

// FileSHA256 is the hex SHA-256 of the file at path (a build input's
// identity: a cached .deb, a strata binary).
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
