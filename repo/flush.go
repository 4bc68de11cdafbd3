package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
)

// flushState is what Flush needs on top of a Txn: the objects whose
// staging is complete and not yet published, and the objects/XX
// directories known to exist. ready is guarded by Txn.mu.
type flushState struct {
	ready   []ObjectRef
	objDirs [256]atomic.Bool
}

// stagedDone records that ref's staged file is complete, for Flush. Detached
// metadata is left to Commit: it may be rewritten in place within a
// transaction, so it is never published while writes may be running.
func (t *Txn) stagedDone(ref ObjectRef) {
	if ref.Kind == objects.KindCommitMeta {
		return
	}
	t.mu.Lock()
	t.fl.ready = append(t.fl.ready, ref)
	t.mu.Unlock()
}

// Flush publishes the objects staged so far and keeps the transaction open,
// so that a long transaction (a pull) publishes as it goes without creating
// a new staging directory each time. It follows Commit's order: the staged
// objects are made durable (syncfs), renamed into objects/ (an existing
// object is kept), and the renames made durable (syncfs); queued refs and
// detached metadata wait for Commit.
//
// Flush may run concurrently with the Write methods (not with Commit or
// Abort, nor with another Flush): an object whose write is still under way
// is left in staging, for the next Flush or for Commit. After a failed
// Flush the objects it did not move stay staged and Commit publishes them.
func (t *Txn) Flush() error {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return errors.New("transaction already finished")
	}
	refs := t.fl.ready
	t.fl.ready = nil
	t.mu.Unlock()
	return t.publish(refs)
}

// publish is the one way staged objects reach objects/, for Flush and
// Commit alike, in the order of docs/design.md §3 rule 4: (a) the staged
// objects are made durable (syncfs of the staging directory's filesystem),
// (b) each is renamed into objects/ with RENAME_NOREPLACE (an existing
// object is kept: it is identical; detached metadata alone is replaced),
// (c) the renames are made durable (syncfs). The caller writes refs only
// after publish returned nil. When a step fails, the objects not yet moved
// are queued again, so that a later Flush or Commit publishes them.
func (t *Txn) publish(refs []ObjectRef) (err error) {
	if len(refs) == 0 {
		return nil
	}
	moved := 0
	defer func() {
		if err != nil && moved < len(refs) {
			t.mu.Lock()
			t.fl.ready = append(t.fl.ready, refs[moved:]...)
			t.mu.Unlock()
		}
	}()
	if t.r.fsync {
		if err := fsutil.Syncfs(t.staging); err != nil {
			return err
		}
	}
	objDir := filepath.Join(t.r.path, "objects")
	for _, ref := range refs {
		if !t.fl.objDirs[ref.Checksum[0]].Load() {
			err := os.Mkdir(filepath.Join(objDir, ref.Checksum.String()[:2]), 0o755)
			if err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
			t.fl.objDirs[ref.Checksum[0]].Store(true)
		}
		rel := t.r.objectRel(ref.Kind, ref.Checksum)
		from, to := filepath.Join(t.staging, rel), filepath.Join(objDir, rel)
		if ref.Kind == objects.KindCommitMeta {
			err = fsutil.RenameNoSync(from, to)
		} else {
			_, err = fsutil.RenameNoReplace(from, to)
		}
		if err != nil {
			return fmt.Errorf("publish %s: %w", ObjectName(ref.Kind, ref.Checksum), err)
		}
		moved++
	}
	if t.r.fsync {
		return fsutil.Syncfs(objDir)
	}
	return nil
}

// fsTopDirFL is FS_TOPDIR_FL (chattr +T): ext4 places the subdirectories of
// such a directory as it places top-level ones (Orlov: spread to the
// emptiest block groups) instead of beside their parent.
const fsTopDirFL = 0x00020000

// SpreadStaging asks the filesystem to place the transaction's staging
// subdirectories, and so the objects staged in them, in its emptiest block
// groups instead of beside the repository. Call it right after Begin, for a
// transaction that will stage thousands of objects (a pull).
//
// Why: ext4 allocates a directory's new inodes from the first block group
// of its flex group that has free inodes, and without a journal it skips
// every inode freed in the last minute (five when not yet written back),
// testing each on the way. Beside a repository from which thousands of
// objects were just removed (a prune, a deleted repository), each new
// object costs a scan over all of them. Best effort: on filesystems
// without the flag (xfs, btrfs, tmpfs) the ioctl fails, the failure goes to
// the transaction's Warner (TxnOptions), and nothing else changes.
func (t *Txn) SpreadStaging() {
	fd, err := unix.Open(t.staging, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.warn.Warn(fmt.Errorf("spreading staging directory %s: %w", t.staging, err))
		return
	}
	defer unix.Close(fd)
	fl, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err == nil && fl&fsTopDirFL == 0 {
		err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(fl|fsTopDirFL))
	}
	if err != nil {
		t.warn.Warn(fmt.Errorf("FS_TOPDIR_FL on staging directory %s (objects are placed beside the repository): %w", t.staging, err))
	}
}
