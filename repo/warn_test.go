package repo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"golang.org/x/sys/unix"
)

// warnings collects what a Warner receives.
type warnings struct {
	mu   sync.Mutex
	errs []error
}

func (w *warnings) Warn(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, err)
}

func (w *warnings) find(sub string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.errs {
		if strings.Contains(e.Error(), sub) {
			return true
		}
	}
	return false
}

var _ progress.Warner = (*warnings)(nil)

// A stale temporary in refs/ that cannot be removed (a non-empty directory
// with a dead writer's name) does not fail Commit: it reaches the Warner.
func TestTxnWarnsStaleTempNotRemoved(t *testing.T) {
	r := newRepo(t, ModeArchive)
	// PID 0x7ffffffe does not exist: the temporary is stale.
	stale := filepath.Join(r.Path(), "refs/heads", ".main.tmp-2147483646-1-00000000")
	if err := os.MkdirAll(filepath.Join(stale, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	var w warnings
	tx, err := r.BeginWith(context.Background(), TxnOptions{Warner: &w})
	if err != nil {
		t.Fatal(err)
	}
	c := writeTestCommit(t, tx)
	if err := tx.SetRef("heads/main", &c); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit failed on a housekeeping error: %v", err)
	}
	if !w.find("stale temporary not removed") || !w.find(stale) {
		t.Fatalf("warnings %v: want the stale temporary %s named", w.errs, stale)
	}
}

// A dead transaction's staging directory that cannot be removed is
// reported by the next Begin, which goes on.
func TestBeginWarnsStaleStagingNotRemoved(t *testing.T) {
	r := newRepo(t, ModeArchive)
	dead := filepath.Join(r.Path(), "tmp", "staging-strata-dead")
	if err := os.MkdirAll(filepath.Join(dead, "ab"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An immutable file inside it (chattr +i): RemoveAll cannot remove it,
	// not even as root.
	p := filepath.Join(dead, "ab", "cdef.commit")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	setImmutable(t, p)
	var w warnings
	tx, err := r.BeginWith(context.Background(), TxnOptions{Warner: &w})
	if err != nil {
		t.Fatalf("begin failed on a housekeeping error: %v", err)
	}
	tx.Abort()
	if !w.find("staging directory of a dead transaction not removed") {
		t.Fatalf("warnings %v: want the dead staging directory reported", w.errs)
	}
}

// On a filesystem without FS_TOPDIR_FL (tmpfs), SpreadStaging's refused
// ioctl reaches the Warner and the transaction goes on.
func TestSpreadStagingWarns(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "strata-repo-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	r, err := Init(filepath.Join(shm, "repo"), ModeArchive, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var w warnings
	tx, err := r.BeginWith(context.Background(), TxnOptions{Warner: &w})
	if err != nil {
		t.Fatal(err)
	}
	tx.SpreadStaging()
	c := writeTestCommit(t, tx)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.HasObject(objects.KindCommit, c); err != nil || !ok {
		t.Fatalf("commit not stored after a refused SpreadStaging (%v)", err)
	}
	if !w.find("FS_TOPDIR_FL") {
		t.Fatalf("warnings %v: want the refused FS_TOPDIR_FL ioctl", w.errs)
	}
}

// writeTestCommit stages a commit of an empty tree and returns it.
func writeTestCommit(t *testing.T, tx *Txn) objects.Checksum {
	t.Helper()
	meta, err := tx.WriteMetadata(objects.KindDirMeta, (&objects.DirMeta{Mode: objects.ModeDir | 0o755}).Marshal())
	if err != nil {
		t.Fatal(err)
	}
	tree, err := tx.WriteMetadata(objects.KindDirTree, (&objects.DirTree{}).Marshal())
	if err != nil {
		t.Fatal(err)
	}
	cm := &objects.Commit{Subject: "s", RootTree: tree, RootMeta: meta}
	data, err := cm.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tx.WriteMetadata(objects.KindCommit, data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// setImmutable sets FS_IMMUTABLE_FL on p (chattr +i) until the test ends.
func setImmutable(t *testing.T, p string) {
	t.Helper()
	set := func(on bool) error {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		fl, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		if err != nil {
			return err
		}
		if on {
			fl |= fsImmutableFL
		} else {
			fl &^= fsImmutableFL
		}
		return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(fl))
	}
	if err := set(true); err != nil {
		t.Fatalf("chattr +i %s: %v", p, err)
	}
	t.Cleanup(func() {
		if err := set(false); err != nil {
			t.Errorf("chattr -i %s: %v", p, err)
		}
	})
}

// fsImmutableFL is FS_IMMUTABLE_FL (linux/fs.h), which x/sys/unix lacks.
const fsImmutableFL = 0x00000010
