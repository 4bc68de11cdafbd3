package repo

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
)

// TestFlushPublishesAndKeepsOpen: Flush moves what is staged into objects/
// and leaves the transaction usable; refs and detached metadata wait for
// Commit, which publishes the rest.
func TestFlushPublishesAndKeepsOpen(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			tx := begin(t, r)
			c := writeTree(t, tx, objects.Checksum{}, "first", sampleFiles("one"))
			if err := tx.WriteCommitMeta(c, objects.Metadata{{Key: "k", Value: gvariant.Variant{Type: gvariant.MustParseType("s"), Value: "v"}}}); err != nil {
				t.Fatal(err)
			}
			if err := tx.SetRef("heads/main", &c); err != nil {
				t.Fatal(err)
			}
			if err := tx.Flush(); err != nil {
				t.Fatal(err)
			}
			published := objectSet(t, r)
			if !slices.Contains(published, ObjectName(objects.KindCommit, c)) {
				t.Errorf("commit not published by Flush: %v", published)
			}
			if slices.Contains(published, ObjectName(objects.KindCommitMeta, c)) {
				t.Error("detached metadata published by Flush")
			}
			if _, err := r.ReadRef("heads/main"); err == nil {
				t.Error("ref written by Flush")
			}
			if n := len(stagedFiles(t, tx)); n != 1 {
				t.Errorf("%d files left staged after Flush, want 1 (the commitmeta)", n)
			}
			// A second Flush with nothing new is a no-op.
			if err := tx.Flush(); err != nil {
				t.Fatal(err)
			}
			d := []byte("after the flush")
			fc, err := tx.WriteFile(regular(len(d)), bytes.NewReader(d))
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := r.HasObject(objects.KindFile, fc); ok {
				t.Error("object published before Flush or Commit")
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if ok, _ := r.HasObject(objects.KindFile, fc); !ok {
				t.Error("object staged after Flush not published by Commit")
			}
			if got, err := r.ReadRef("heads/main"); err != nil || got != c {
				t.Errorf("ref = %v, %v", got, err)
			}
			if _, err := r.ReadCommitMeta(c); err != nil {
				t.Errorf("commitmeta: %v", err)
			}
			if err := tx.Flush(); err == nil {
				t.Error("Flush after Commit succeeded")
			}
			checkIntegrity(t, r)
			if left := tmpEntries(t, r); len(left) != 0 {
				t.Errorf("tmp/ holds %v", left)
			}
		})
	}
}

// TestFlushConcurrentWithWrites: Flush running in a loop while workers
// write (small and streamed objects) never publishes a partial object, and
// Commit publishes whatever is left.
func TestFlushConcurrentWithWrites(t *testing.T) {
	for _, mode := range []Mode{ModeBareUser, ModeArchive} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			tx := begin(t, r)
			const workers, each = 6, 30
			var wg sync.WaitGroup
			errs := make(chan error, workers+1)
			want := make([][]objects.Checksum, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						d := []byte(fmt.Sprintf("w%d object %d", w, i))
						if i%10 == 0 {
							d = bytes.Repeat(d, smallFile/len(d)+1)
						}
						c, err := tx.WriteFile(regular(len(d)), bytes.NewReader(d))
						if err != nil {
							errs <- err
							return
						}
						want[w] = append(want[w], c)
					}
				}()
			}
			stop := make(chan struct{})
			var flushes atomic.Int32
			var fwg sync.WaitGroup
			fwg.Add(1)
			go func() {
				defer fwg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := tx.Flush(); err != nil {
						errs <- err
						return
					}
					flushes.Add(1)
					// What is published verifies whole.
					if err := r.ListObjects(func(o ObjectRef) error { return verifyObject(r, o) }, nil); err != nil {
						errs <- err
						return
					}
				}
			}()
			wg.Wait()
			close(stop)
			fwg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			for _, cs := range want {
				for _, c := range cs {
					if ok, _ := r.HasObject(objects.KindFile, c); !ok {
						t.Errorf("object %s not published", c)
					}
				}
			}
			if flushes.Load() == 0 {
				t.Error("no Flush ran")
			}
			checkIntegrity(t, r)
			if left := tmpEntries(t, r); len(left) != 0 {
				t.Errorf("tmp/ holds %v", left)
			}
		})
	}
}

// TestFlushFaultInjection: a Flush that fails at a rename leaves the
// objects it did not move staged; Commit publishes them.
func TestFlushFaultInjection(t *testing.T) {
	r := newRepo(t, ModeBareUser)
	tx := begin(t, r)
	c := writeTree(t, tx, objects.Checksum{}, "s", sampleFiles("f"))
	var renames atomic.Int32
	setFailpoint(t, r.path, func(step string) error {
		if strings.HasPrefix(step, "rename:") && renames.Add(1) == 3 {
			return errInjected
		}
		return nil
	})
	if err := tx.Flush(); err == nil {
		t.Fatal("Flush with a failing rename succeeded")
	}
	clearFailpoint()
	if err := tx.SetRef("heads/main", &c); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := walkCommit(r, c); err != nil {
		t.Errorf("after a failed Flush and a Commit: %v", err)
	}
	checkIntegrity(t, r)
}

// TestSpreadStaging: the staging directory gets FS_TOPDIR_FL where the
// filesystem has it, and staging works the same either way.
func TestSpreadStaging(t *testing.T) {
	r := newRepo(t, ModeBareUser)
	tx := begin(t, r)
	tx.SpreadStaging()
	fd, err := unix.Open(tx.staging, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fl, gerr := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	unix.Close(fd)
	if gerr == nil && fl&fsTopDirFL == 0 {
		// Only acceptable when this filesystem refuses the flag.
		probe := filepath.Join(t.TempDir(), "probe")
		if err := unix.Mkdir(probe, 0o755); err != nil {
			t.Fatal(err)
		}
		pfd, err := unix.Open(probe, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(pfd)
		if err := unix.IoctlSetPointerInt(pfd, unix.FS_IOC_SETFLAGS, int(fl|fsTopDirFL)); err == nil {
			t.Errorf("staging flags %#x: FS_TOPDIR_FL not set, though the filesystem takes it", fl)
		}
	}
	c := writeTree(t, tx, objects.Checksum{}, "s", sampleFiles("spread"))
	if err := tx.SetRef("heads/main", &c); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	checkIntegrity(t, r)
}
