package sysroot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// LockPath is the sysroot lock, relative to the sysroot. ostree takes the
// same lock, so strata and ostree exclude each other.
const LockPath = "ostree/lock"

// sysLock is the sysroot lock with ostree's protocol (libglnx's
// glnx_make_lock_file, from systemd): an open file description (OFD)
// write lock on ostree/lock, created 0600; after taking the lock, a file
// that has been unlinked meanwhile does not count and is locked again; the
// exclusive holder unlinks the file when it lets go. OFD locks do not
// conflict with flock(2) locks, so fsutil.LockFile would not exclude ostree.
type sysLock struct {
	f    *os.File
	path string
}

// lock takes the sysroot lock, waiting unless NoLockWait is set.
func (s *Sysroot) lock(ctx context.Context) (*sysLock, error) {
	p := filepath.Join(s.path, LockPath)
	told, tries := false, 0
	for {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NOCTTY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("sysroot lock %s: %w", p, err)
		}
		fl := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
		err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &fl)
		if errors.Is(err, unix.EINVAL) {
			// A kernel without OFD locks: libglnx falls back to flock.
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		}
		if err != nil {
			f.Close()
			if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("sysroot lock %s: %w", p, err)
			}
			if s.opts.NoLockWait {
				holder, _ := lockHolder(p)
				return nil, fmt.Errorf("%w: %s holds %s", ErrLocked, holder, p)
			}
			if s.opts.OnLockWait != nil && !told {
				// strata writes its pid just after locking: an empty file
				// may be a strata holder that has not written yet, so
				// look again for a few tries before calling it ostree.
				holder, known := lockHolder(p)
				if known || tries >= 4 {
					s.opts.OnLockWait(fmt.Sprintf("%s (held by %s)", p, holder))
					told = true
				}
			}
			tries++
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("waiting for sysroot lock %s: %w", p, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return nil, fmt.Errorf("sysroot lock %s: %w", p, err)
		}
		if st.Nlink == 0 {
			f.Close() // the previous holder unlinked it: lock the new file
			continue
		}
		// Say who holds it, for a waiting process's message; ostree
		// ignores the content.
		if f.Truncate(0) == nil {
			f.WriteAt([]byte(fmt.Sprintf("strata %d\n", os.Getpid())), 0)
		}
		return &sysLock{f: f, path: p}, nil
	}
}

// lockHolder names the process holding the lock at p, as far as known:
// strata writes "strata PID" into the lock file, ostree writes nothing.
// known is false when the file names no holder.
func lockHolder(p string) (holder string, known bool) {
	data, err := os.ReadFile(p)
	if err == nil {
		var pid int
		if _, err := fmt.Sscanf(string(data), "strata %d", &pid); err == nil {
			return fmt.Sprintf("strata (pid %d)", pid), true
		}
	}
	return "another process (ostree?)", false
}

// unlock unlinks the lock file (we hold it exclusively) and releases it.
func (l *sysLock) unlock() {
	if l == nil || l.f == nil {
		return
	}
	os.Remove(l.path)
	l.f.Close()
	l.f = nil
}

// withLock runs fn under the sysroot lock, with the state reloaded after
// the lock is taken and again after fn.
func (s *Sysroot) withLock(ctx context.Context, fn func() error) error {
	l, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer l.unlock()
	if err := s.load(); err != nil {
		return err
	}
	ferr := fn()
	if err := s.load(); ferr == nil && err != nil {
		ferr = err
	}
	return ferr
}
