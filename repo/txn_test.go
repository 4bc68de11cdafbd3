package repo

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
)

func begin(t testing.TB, r *Repo) *Txn {
	t.Helper()
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

func regular(size int) *objects.FileHeader {
	return &objects.FileHeader{Mode: objects.ModeRegular | 0o644, Size: uint64(size)}
}

// stagedFiles lists every file in the transaction's staging directory.
func stagedFiles(t testing.TB, tx *Txn) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(tx.staging, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestWriteReadBackAllModes(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			files := sampleFiles("rb")
			c := commitTo(t, r, "main", "read back", files)
			checkIntegrity(t, r)
			if left := tmpEntries(t, r); len(left) != 0 {
				t.Errorf("tmp/ holds %v after Commit", left)
			}
			cm, err := r.ReadCommit(c)
			if err != nil {
				t.Fatal(err)
			}
			dt, err := r.ReadDirTree(cm.RootTree)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range dt.Files {
				var want testFile
				for _, sf := range files {
					if sf.name == f.Name {
						want = sf
					}
				}
				h, rc, err := r.OpenFileVerified(f.Checksum)
				if err != nil {
					t.Fatal(err)
				}
				data, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatalf("%s: %v", f.Name, err)
				}
				if string(data) != want.data || h.Target != want.target {
					t.Errorf("%s: read %d bytes, target %q", f.Name, len(data), h.Target)
				}
				if want.target == "" && h.Size != uint64(len(want.data)) {
					t.Errorf("%s: header size %d", f.Name, h.Size)
				}
			}
			// ostree accepts what was written.
			if out, err := exec.Command("ostree", "--repo="+r.Path(), "fsck").CombinedOutput(); err != nil {
				t.Errorf("ostree fsck: %v\n%s", err, out)
			}
		})
	}
}

func TestReadMetadataRefusesCorrupt(t *testing.T) {
	r := newRepo(t, ModeArchive)
	c := commitTo(t, r, "main", "s", sampleFiles("c"))
	cm, err := r.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(p string) {
		t.Helper()
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0x20
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flip(r.ObjectPath(objects.KindDirTree, cm.RootTree))
	if _, err := r.ReadMetadata(objects.KindDirTree, cm.RootTree); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadMetadata of a corrupt dirtree: %v", err)
	}
	if _, err := r.ReadDirTree(cm.RootTree); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), cm.RootTree.String()) {
		t.Errorf("ReadDirTree of a corrupt dirtree: %v", err)
	}
	flip(r.ObjectPath(objects.KindCommit, c))
	if _, err := r.ReadCommit(c); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadCommit of a corrupt commit: %v", err)
	}
	// Truncated to nothing.
	if err := os.Truncate(r.ObjectPath(objects.KindDirMeta, cm.RootMeta), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadDirMeta(cm.RootMeta); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadDirMeta of an empty dirmeta: %v", err)
	}
	missing := objects.Sum([]byte("missing"))
	if _, err := r.ReadMetadata(objects.KindCommit, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadMetadata of a missing object: %v", err)
	}
	if _, _, err := r.OpenFile(missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenFile of a missing object: %v", err)
	}
	if md, err := r.ReadCommitMeta(c); md != nil || err != nil {
		t.Errorf("ReadCommitMeta without detached metadata = %v, %v", md, err)
	}
}

// corruptFileObject changes one content byte of a stored regular file
// object, keeping its size and header.
func corruptFileObject(t *testing.T, r *Repo, c objects.Checksum) {
	t.Helper()
	p := r.ObjectPath(objects.KindFile, c)
	h, rc, err := r.OpenFile(c)
	if err != nil {
		t.Fatal(err)
	}
	content, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	content[len(content)-1] ^= 1
	if r.Mode() != ModeArchive {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(content[len(content)-1:], int64(len(content)-1)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return
	}
	var buf bytes.Buffer
	buf.Write(h.MarshalArchive())
	zw, _ := flate.NewWriter(&buf, 6)
	zw.Write(content)
	zw.Close()
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFileVerifiedFailsAtEOF(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			tx := begin(t, r)
			small, err := tx.WriteFile(regular(5), strings.NewReader("hello"))
			if err != nil {
				t.Fatal(err)
			}
			bigData := bytes.Repeat([]byte("big!"), smallFile/2)
			big, err := tx.WriteFile(regular(len(bigData)), bytes.NewReader(bigData))
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			for _, c := range []objects.Checksum{small, big} {
				corruptFileObject(t, r, c)
				_, rc, err := r.OpenFileVerified(c)
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.ReadAll(rc)
				rc.Close()
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.String()) {
					t.Errorf("reading a corrupt object to EOF: %v, want ErrCorrupt naming it", err)
				}
				// The unverified reader is documented not to notice.
				_, rc, err = r.OpenFile(c)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadAll(rc); err != nil {
					t.Errorf("OpenFile (unverified) of a same-size corruption: %v", err)
				}
				rc.Close()
			}
			if mode == ModeArchive {
				// A truncated compressed stream fails too.
				p := r.ObjectPath(objects.KindFile, big)
				st, _ := os.Stat(p)
				os.Truncate(p, st.Size()/2)
				_, rc, err := r.OpenFileVerified(big)
				if err == nil {
					_, err = io.ReadAll(rc)
					rc.Close()
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("reading a truncated .filez: %v", err)
				}
			}
			if mode == ModeBareUser {
				// A changed user.ostreemeta (the mode) fails verification.
				tx := begin(t, r)
				c, err := tx.WriteFile(regular(3), strings.NewReader("abc"))
				if err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				h := regular(3)
				h.Mode = objects.ModeRegular | 0o755
				if err := unix.Setxattr(r.ObjectPath(objects.KindFile, c), "user.ostreemeta", objects.BareUserMeta(h), 0); err != nil {
					t.Fatal(err)
				}
				_, rc, err := r.OpenFileVerified(c)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadAll(rc); !errors.Is(err, ErrCorrupt) {
					t.Errorf("object with a changed user.ostreemeta: %v", err)
				}
				rc.Close()
			}
		})
	}
}

func TestWriteVerifiedWrongChecksumStoresNothing(t *testing.T) {
	for _, mode := range []Mode{ModeBareUser, ModeArchive} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			tx := begin(t, r)
			wrong := objects.Sum([]byte("something else"))
			for _, size := range []int{0, 10, smallFile + 1} {
				data := bytes.Repeat([]byte{'v'}, size)
				err := tx.WriteFileVerified(regular(size), bytes.NewReader(data), wrong)
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), wrong.String()) {
					t.Errorf("size %d: WriteFileVerified with a wrong checksum: %v", size, err)
				}
				// The same content under the right checksum is accepted.
				right, _ := objects.FileChecksum(regular(size), bytes.NewReader(data))
				if size == 10 {
					if err := tx.WriteFileVerified(regular(size), bytes.NewReader(data), right); err != nil {
						t.Errorf("WriteFileVerified with the right checksum: %v", err)
					}
				}
			}
			dm := (&objects.DirMeta{Mode: objects.ModeDir | 0o755}).Marshal()
			if err := tx.WriteMetadataVerified(objects.KindDirMeta, dm, wrong); !errors.Is(err, ErrCorrupt) {
				t.Errorf("WriteMetadataVerified with a wrong checksum: %v", err)
			}
			if err := tx.WriteMetadataVerified(objects.KindDirMeta, dm, objects.Sum(dm)); err != nil {
				t.Errorf("WriteMetadataVerified: %v", err)
			}
			if got := len(stagedFiles(t, tx)); got != 2 {
				t.Errorf("%d files staged, want the 2 verified objects: %v", got, stagedFiles(t, tx))
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := objectSet(t, r); len(got) != 2 {
				t.Errorf("objects after commit: %v", got)
			}
			checkIntegrity(t, r)
		})
	}
}

func TestWriteFileSizeMismatchStoresNothing(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			tx := begin(t, r)
			for _, size := range []int{1, 100, smallFile, smallFile + 1, 2*smallFile + 3} {
				for _, delta := range []int{-1, +1} {
					if size+delta < 0 {
						continue
					}
					data := bytes.Repeat([]byte{'s'}, size+delta)
					_, err := tx.WriteFile(regular(size), bytes.NewReader(data))
					if !errors.Is(err, ErrCorrupt) {
						t.Errorf("header size %d, content %d: err = %v", size, size+delta, err)
					}
				}
			}
			// A symlink header with content is refused too.
			if _, err := tx.WriteFile(&objects.FileHeader{Mode: objects.ModeSymlink | 0o777, Target: "x", Size: 3}, strings.NewReader("abc")); err == nil {
				t.Error("symlink with a size accepted")
			}
			if got := stagedFiles(t, tx); len(got) != 0 {
				t.Errorf("staged after refused writes: %v", got)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := objectSet(t, r); len(got) != 0 {
				t.Errorf("objects stored: %v", got)
			}
		})
	}
}

// failingReader returns n bytes, then err.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = 'f'
	}
	f.n -= k
	return k, nil
}

func TestWriteFileReaderErrorStoresNothing(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			tx := begin(t, r)
			for _, size := range []int{10, smallFile + 10, 4 * smallFile} {
				for _, after := range []int{0, size / 2, size - 1} {
					_, err := tx.WriteFile(regular(size), &failingReader{n: after, err: syscall.ENOSPC})
					if !errors.Is(err, syscall.ENOSPC) {
						t.Errorf("size %d, failing after %d: err = %v, want ENOSPC", size, after, err)
					}
					err = tx.WriteFileVerified(regular(size), &failingReader{n: after, err: syscall.EIO}, objects.Sum(nil))
					if !errors.Is(err, syscall.EIO) {
						t.Errorf("verified, size %d, failing after %d: err = %v, want EIO", size, after, err)
					}
				}
			}
			if got := stagedFiles(t, tx); len(got) != 0 {
				t.Errorf("staged after failed reads: %v", got)
			}
			// The transaction is still usable, and the same object can be
			// written once the reader works.
			c, err := tx.WriteFile(regular(10), strings.NewReader("0123456789"))
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := objectSet(t, r); !reflect.DeepEqual(got, []string{ObjectName(objects.KindFile, c)}) {
				t.Errorf("objects = %v", got)
			}
		})
	}
}

func TestCanceledContext(t *testing.T) {
	r := newRepo(t, ModeBareUser)
	ctx, cancel := context.WithCancel(context.Background())
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := writeTree(t, tx, objects.Checksum{}, "s", sampleFiles("ctx"))
	tx.SetRef("heads/main", &c)
	cancel()
	if _, err := tx.WriteFile(regular(1), strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteFile after cancel: %v", err)
	}
	if err := tx.Commit(); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit after cancel: %v", err)
	}
	if got := objectSet(t, r); len(got) != 0 {
		t.Errorf("a canceled transaction published %v", got)
	}
	if _, err := r.ReadRef("heads/main"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a canceled transaction wrote a ref: %v", err)
	}
	if left := tmpEntries(t, r); len(left) != 0 {
		t.Errorf("tmp/ holds %v", left)
	}
}

func TestConcurrentWriteFile(t *testing.T) {
	for _, mode := range []Mode{ModeBare, ModeArchive} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			tx := begin(t, r)
			const workers, shared, own = 12, 40, 10
			content := func(tag string, i int) []byte {
				if i%10 == 0 { // some large, streamed objects
					return bytes.Repeat([]byte(fmt.Sprintf("%s-%d;", tag, i)), smallFile/4)
				}
				return []byte(fmt.Sprintf("%s object %d", tag, i))
			}
			want := map[string]bool{}
			for i := range shared {
				d := content("shared", i)
				c, _ := objects.FileChecksum(regular(len(d)), bytes.NewReader(d))
				want[ObjectName(objects.KindFile, c)] = true
			}
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			var mu sync.Mutex
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range shared + own {
						var d []byte
						if i < shared {
							d = content("shared", (i+w)%shared)
						} else {
							d = content(fmt.Sprintf("w%d", w), i)
						}
						c, err := tx.WriteFile(regular(len(d)), bytes.NewReader(d))
						if err != nil {
							errs <- err
							return
						}
						exp, _ := objects.FileChecksum(regular(len(d)), bytes.NewReader(d))
						if c != exp {
							errs <- fmt.Errorf("checksum %s, want %s", c, exp)
							return
						}
						if i >= shared {
							mu.Lock()
							want[ObjectName(objects.KindFile, c)] = true
							mu.Unlock()
						}
						if ok, err := tx.Has(objects.KindFile, c); !ok || err != nil {
							errs <- fmt.Errorf("Has after WriteFile = %v, %v", ok, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			got := objectSet(t, r)
			if len(got) != len(want) {
				t.Errorf("%d objects stored, want %d", len(got), len(want))
			}
			for _, n := range got {
				if !want[n] {
					t.Errorf("unexpected object %s", n)
				}
			}
			checkIntegrity(t, r)
			if left := tmpEntries(t, r); len(left) != 0 {
				t.Errorf("tmp/ holds %v", left)
			}
		})
	}
}

func TestConcurrentTransactions(t *testing.T) {
	r := newRepo(t, ModeBareUser)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			commitTo(t, r, fmt.Sprintf("b%d", i), "s", sampleFiles(fmt.Sprintf("%d", i%2)))
		}()
	}
	wg.Wait()
	checkIntegrity(t, r)
	refs, err := r.ListRefs()
	if err != nil || len(refs) != 4 {
		t.Errorf("refs = %v, %v", refs, err)
	}
	if left := tmpEntries(t, r); len(left) != 0 {
		t.Errorf("tmp/ holds %v", left)
	}
}

func TestAbortPublishesNothing(t *testing.T) {
	r := newRepo(t, ModeBareUser)
	base := commitTo(t, r, "main", "base", sampleFiles("base"))
	before := objectSet(t, r)
	tx := begin(t, r)
	c := writeTree(t, tx, base, "aborted", sampleFiles("aborted"))
	if err := tx.SetRef("heads/main", &c); err != nil {
		t.Fatal(err)
	}
	if err := tx.SetRef("heads/new", &c); err != nil {
		t.Fatal(err)
	}
	if len(stagedFiles(t, tx)) == 0 {
		t.Fatal("nothing staged")
	}
	if err := tx.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if err := tx.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	if _, err := tx.WriteMetadata(objects.KindDirMeta, []byte("late")); err == nil {
		t.Error("WriteMetadata after Abort succeeded")
	}
	if got := objectSet(t, r); !reflect.DeepEqual(got, before) {
		t.Errorf("objects changed by an aborted transaction: %v", got)
	}
	if got, _ := r.ReadRef("heads/main"); got != base {
		t.Errorf("main moved to %v", got)
	}
	if _, err := r.ReadRef("heads/new"); !errors.Is(err, ErrNotFound) {
		t.Errorf("heads/new written: %v", err)
	}
	if left := tmpEntries(t, r); len(left) != 0 {
		t.Errorf("tmp/ holds %v after Abort", left)
	}
	// Abort after Commit is a no-op.
	tx = begin(t, r)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
}

func TestTxnSetRefToMissingCommitRefused(t *testing.T) {
	r := newRepo(t, ModeArchive)
	base := commitTo(t, r, "main", "base", sampleFiles("b"))
	tx := begin(t, r)
	missing := objects.Sum([]byte("never written"))
	c := writeTree(t, tx, base, "ok", sampleFiles("ok"))
	tx.SetRef("heads/other", &c)
	tx.SetRef("heads/main", &missing)
	if err := tx.Commit(); !errors.Is(err, ErrNotFound) {
		t.Errorf("Commit with a ref to a missing commit: %v", err)
	}
	if got, _ := r.ReadRef("heads/main"); got != base {
		t.Errorf("main = %v", got)
	}
	if _, err := r.ReadRef("heads/other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("other refs were written before the check: %v", err)
	}
	checkIntegrity(t, r)
	if err := begin(t, r).SetRef("heads/../x", &c); !errors.Is(err, ErrInvalid) {
		t.Errorf("Txn.SetRef of an invalid ref: %v", err)
	}
}

func TestStaleStagingCleanedByBegin(t *testing.T) {
	r := newRepo(t, ModeBareUser)
	tmp := filepath.Join(r.Path(), "tmp")
	// A dead transaction: staging dir with objects, its lock file unlocked.
	dead := filepath.Join(tmp, "staging-strata-0123456789abcdef")
	if err := os.MkdirAll(filepath.Join(dead, "ab"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dead, "ab", "cdef.file"), []byte("half"), 0o644)
	os.WriteFile(dead+".lock", nil, 0o644)
	// A dead transaction that died before creating its lock file.
	nolock := filepath.Join(tmp, "staging-strata-fedcba9876543210")
	os.Mkdir(nolock, 0o755)
	// A live transaction of this process.
	live := begin(t, r)
	// A live transaction of another process: its lock is held through
	// another open file description.
	other := filepath.Join(tmp, "staging-strata-1111111111111111")
	os.Mkdir(other, 0o755)
	l, err := fsutil.LockFile(context.Background(), other+".lock", fsutil.LockOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	// Not ours at all.
	foreign := filepath.Join(tmp, "something-else")
	os.Mkdir(foreign, 0o755)
	// A transaction that died between locking and making its directory,
	// and one that is at that point now.
	loneDead := filepath.Join(tmp, "staging-strata-2222222222222222.lock")
	os.WriteFile(loneDead, nil, 0o644)
	loneLive := filepath.Join(tmp, "staging-strata-3333333333333333.lock")
	l2, err := fsutil.LockFile(context.Background(), loneLive, fsutil.LockOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Unlock()

	tx := begin(t, r)
	for _, p := range []string{dead, dead + ".lock", nolock, loneDead} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived Begin: %v", filepath.Base(p), err)
		}
	}
	for _, p := range []string{live.staging, live.staging + ".lock", other, other + ".lock", foreign, tx.staging, loneLive} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
	// The live transaction still commits, and removes the temporaries of
	// dead ref writers in the ref directories it touches.
	deadPid := exec.Command("true")
	if err := deadPid.Run(); err != nil {
		t.Fatal(err)
	}
	heads := filepath.Join(r.Path(), "refs", "heads")
	staleRef := filepath.Join(heads, fmt.Sprintf(".live.tmp-%d-1", deadPid.Process.Pid))
	ownRef := filepath.Join(heads, fmt.Sprintf(".other.tmp-%d-1", os.Getpid()))
	os.WriteFile(staleRef, []byte("x"), 0o644)
	os.WriteFile(ownRef, []byte("x"), 0o644)
	c := writeTree(t, live, objects.Checksum{}, "live", sampleFiles("live"))
	live.SetRef("heads/live", &c)
	if err := live.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(staleRef); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dead writer's ref temporary survived a commit: %v", err)
	}
	if _, err := os.Lstat(ownRef); err != nil {
		t.Errorf("a live process's ref temporary was removed: %v", err)
	}
	os.Remove(ownRef)
	tx.Abort()
	checkIntegrity(t, r)
}

func TestMinFreeSpace(t *testing.T) {
	r := newRepo(t, ModeBareUser)
	var st unix.Statfs_t
	if err := unix.Statfs(r.Path(), &st); err != nil {
		t.Fatal(err)
	}
	freePct := st.Bavail * 100 / st.Blocks
	if freePct >= 99 {
		t.Fatalf("the test filesystem is %d%% free; cannot test the reserve", freePct)
	}
	kf := r.Config()
	kf.Set("core", "min-free-space-percent", "99")
	if err := r.WriteConfig(kf); err != nil {
		t.Fatal(err)
	}
	r2, err := Open(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	_, err = r2.Begin(context.Background())
	if err == nil || !strings.Contains(err.Error(), "free space") || !strings.Contains(err.Error(), "min-free-space-percent 99%") {
		t.Fatalf("Begin with a 99%% reserve: %v", err)
	}
	if left := tmpEntries(t, r2); len(left) != 0 {
		t.Errorf("a refused Begin left %v", left)
	}
	// The lock was released: an exclusive lock is free.
	l, err := fsutil.LockFile(context.Background(), filepath.Join(r.Path(), ".lock"), fsutil.LockOptions{Exclusive: true})
	if err != nil {
		t.Errorf("repo lock still held after a refused Begin: %v", err)
	} else {
		l.Unlock()
	}
	kf.Set("core", "min-free-space-percent", "0")
	if err := r.WriteConfig(kf); err != nil {
		t.Fatal(err)
	}
	r3, err := Open(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	commitTo(t, r3, "main", "ok", sampleFiles("ok"))
}

func TestFsyncDisabled(t *testing.T) {
	r := newRepo(t, ModeArchive)
	kf := r.Config()
	kf.Set("core", "fsync", "false")
	if err := r.WriteConfig(kf); err != nil {
		t.Fatal(err)
	}
	r2, err := Open(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	setFailpoint(t, r2.Path(), func(step string) error {
		steps = append(steps, step)
		return nil
	})
	commitTo(t, r2, "main", "nosync", sampleFiles("n"))
	for _, s := range steps {
		if strings.HasPrefix(s, "syncfs:") {
			t.Errorf("core.fsync=false still ran %s", s)
		}
	}
	checkIntegrity(t, r2)
}

func TestLockExclusiveWaitsForTransactions(t *testing.T) {
	r := newRepo(t, ModeBareUser)
	tx := begin(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 200e6)
	defer cancel()
	if l, err := r.LockExclusive(ctx); err == nil {
		l.Unlock()
		t.Fatal("exclusive lock taken during a transaction")
	}
	tx.Abort()
	l, err := r.LockExclusive(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200e6)
	defer cancel2()
	if _, err := r.Begin(ctx2); err == nil {
		t.Error("Begin while the repo is locked exclusively")
	}
	l.Unlock()
}

// setFailpoint installs f as fsutil.Failpoint for the steps that concern
// paths under dir, until the test ends.
func setFailpoint(t testing.TB, dir string, f func(step string) error) {
	t.Helper()
	fn := func(step string) error {
		if !strings.Contains(step, dir) {
			return nil
		}
		return f(step)
	}
	fsutil.Failpoint.Store(&fn)
	t.Cleanup(func() { fsutil.Failpoint.Store(nil) })
}

func clearFailpoint() { fsutil.Failpoint.Store(nil) }

var errInjected = errors.New("injected failure")

// normStep hides the parts of a step that differ between runs.
func normStep(step, repoDir string) string {
	step = strings.ReplaceAll(step, repoDir, "<repo>")
	if i := strings.Index(step, "staging-strata-"); i >= 0 {
		step = step[:i] + "<staging>" + step[i+len("staging-strata-")+16:]
	}
	if i := strings.Index(step, ".tmp-"); i >= 0 {
		step = step[:i] + ".tmp-*"
	}
	return step
}

// TestCommitFaultInjection fails each durable step of Txn.Commit in turn
// (fsync, syncfs, object renames, ref writes, renames and directory
// syncs) and checks after each that the repository is consistent (no ref
// to an incomplete commit, no object that fails verification, nothing left
// in tmp/) and that a retry succeeds.
func TestCommitFaultInjection(t *testing.T) {
	for _, mode := range []Mode{ModeBareUser, ModeArchive} {
		t.Run(mode.String(), func(t *testing.T) {
			setup := func() (*Repo, objects.Checksum) {
				r := newRepo(t, mode)
				base := commitTo(t, r, "main", "base", sampleFiles("base"))
				if err := r.SetRef("heads/old", &base); err != nil {
					t.Fatal(err)
				}
				return r, base
			}
			// The transaction under test: a new commit on main, a new
			// nested branch, a deleted ref.
			run := func(r *Repo, base objects.Checksum) (objects.Checksum, error) {
				tx := begin(t, r)
				c := writeTree(t, tx, base, "next", sampleFiles("next"))
				tx.SetRef("heads/main", &c)
				tx.SetRef("heads/os/new/branch", &c)
				tx.SetRef("heads/old", nil)
				return c, tx.Commit()
			}
			r, base := setup()
			var steps []string
			setFailpoint(t, r.Path(), func(step string) error {
				steps = append(steps, normStep(step, r.Path()))
				return nil
			})
			want, err := run(r, base)
			clearFailpoint()
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			for _, s := range steps {
				kind, _, _ := strings.Cut(s, ":")
				kinds[kind]++
			}
			for _, k := range []string{"syncfs", "rename", "write", "fsync", "syncdir"} {
				if kinds[k] == 0 {
					t.Errorf("no %s step in Commit: %q", k, steps)
				}
			}
			for i, step := range steps {
				r, base := setup()
				n := 0
				var hit string
				setFailpoint(t, r.Path(), func(s string) error {
					n++
					if n-1 == i {
						hit = normStep(s, r.Path())
						return fmt.Errorf("%s: %w", s, errInjected)
					}
					return nil
				})
				c, err := run(r, base)
				clearFailpoint()
				if hit != step {
					t.Fatalf("step %d: failed %q, recorded %q (steps are not deterministic)", i, hit, step)
				}
				if !errors.Is(err, errInjected) {
					t.Errorf("failing %s: Commit returned %v", step, err)
				}
				if c != want {
					t.Fatalf("commit checksum changed: %v", c)
				}
				for _, e := range integrityErrors(r) {
					t.Errorf("after failing %s: %v", step, e)
				}
				if left := tmpEntries(t, r); len(left) != 0 {
					t.Errorf("after failing %s: tmp/ holds %v", step, left)
				}
				if got, err := r.ReadRef("heads/main"); err != nil || (got != base && got != want) {
					t.Errorf("after failing %s: main = %v, %v", step, got, err)
				}
				// Retry.
				if _, err := run(r, base); err != nil {
					t.Errorf("retry after failing %s: %v", step, err)
					continue
				}
				for _, ref := range []string{"heads/main", "heads/os/new/branch"} {
					if got, err := r.ReadRef(ref); err != nil || got != want {
						t.Errorf("after retry (failed %s): %s = %v, %v", step, ref, got, err)
					}
				}
				if _, err := r.ReadRef("heads/old"); !errors.Is(err, ErrNotFound) {
					t.Errorf("after retry (failed %s): heads/old: %v", step, err)
				}
				checkIntegrity(t, r)
				if left := tmpEntries(t, r); len(left) != 0 {
					t.Errorf("after retry (failed %s): tmp/ holds %v", step, left)
				}
			}
			t.Logf("%d durable steps failed in turn", len(steps))
		})
	}
}

// TestCommitDurableOrder records the durable steps of Txn.Commit, in every
// mode, and holds their order as docs/design.md §3 rule 4 states it:
// (a) one syncfs of the staging directory before any object is renamed,
// (b) every staged object renamed into objects/, (c) then one syncfs of
// objects/, (d) only then the refs, each written, fsynced, renamed and its
// directory synced in that order. Moving or dropping a sync fails it.
func TestCommitDurableOrder(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			base := commitTo(t, r, "main", "base", sampleFiles("base"))
			tx := begin(t, r)
			c := writeTree(t, tx, base, "next", sampleFiles("next"))
			tx.SetRef("heads/main", &c)
			tx.SetRef("heads/os/new/branch", &c)
			var staged []string
			filepath.WalkDir(tx.staging, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(tx.staging, p)
					staged = append(staged, rel)
				}
				return nil
			})
			var steps []string
			setFailpoint(t, r.Path(), func(step string) error {
				steps = append(steps, normStep(step, r.Path()))
				return nil
			})
			err := tx.Commit()
			clearFailpoint()
			if err != nil {
				t.Fatal(err)
			}
			// Each step's position by class; -1 when absent.
			first := map[string]int{}
			last := map[string]int{}
			count := map[string]int{}
			renamed := map[string]bool{}
			refSteps := map[string][]string{}
			for i, s := range steps {
				kind, path, _ := strings.Cut(s, ":")
				var class string
				switch {
				case kind == "syncfs" && strings.HasPrefix(path, "<repo>/tmp/<staging>"):
					class = "syncfs-staging"
				case kind == "rename" && strings.HasPrefix(path, "<repo>/objects/"):
					class = "rename-object"
					rel, _ := filepath.Rel("<repo>/objects", path)
					renamed[rel] = true
				case kind == "syncfs" && path == "<repo>/objects":
					class = "syncfs-objects"
				case strings.HasPrefix(path, "<repo>/refs/"):
					class = "ref"
					ref := strings.TrimSuffix(path, ".tmp-*")
					if kind == "write" || kind == "fsync" {
						// The temporary's name: its ref is the name
						// without the leading dot and suffix.
						ref = filepath.Join(filepath.Dir(ref), strings.TrimPrefix(filepath.Base(ref), "."))
					}
					if kind == "syncdir" {
						ref = "dir " + ref
					}
					refSteps[ref] = append(refSteps[ref], kind)
				default:
					t.Errorf("unexpected durable step in Commit: %s", s)
					continue
				}
				if _, ok := first[class]; !ok {
					first[class] = i
				}
				last[class] = i
				count[class]++
			}
			if count["syncfs-staging"] != 1 || count["syncfs-objects"] != 1 || count["rename-object"] == 0 || count["ref"] == 0 {
				t.Fatalf("steps %q: want one syncfs of staging, renames, one syncfs of objects/, refs", steps)
			}
			if !(last["syncfs-staging"] < first["rename-object"]) {
				t.Errorf("an object was renamed before staging was synced: %q", steps)
			}
			if !(last["rename-object"] < first["syncfs-objects"]) {
				t.Errorf("an object was renamed after objects/ was synced: %q", steps)
			}
			if !(last["syncfs-objects"] < first["ref"]) {
				t.Errorf("a ref was written before the renames were synced: %q", steps)
			}
			for _, o := range staged {
				if !renamed[o] {
					t.Errorf("staged object %s published without its rename step: %q", o, steps)
				}
			}
			for _, ref := range []string{"<repo>/refs/heads/main", "<repo>/refs/heads/os/new/branch"} {
				if got := strings.Join(refSteps[ref], " "); got != "write fsync rename" {
					t.Errorf("ref %s: steps %q, want write fsync rename", ref, got)
				}
				dir := "dir " + filepath.Dir(ref)
				if len(refSteps[dir]) == 0 {
					t.Errorf("ref %s: its directory is never synced: %q", ref, steps)
				}
			}
			// The syncdir of a ref's directory comes after that ref's rename.
			for i, s := range steps {
				if !strings.HasPrefix(s, "rename:<repo>/refs/") {
					continue
				}
				dir := filepath.Dir(strings.TrimPrefix(s, "rename:"))
				synced := false
				for _, s2 := range steps[i+1:] {
					if s2 == "syncdir:"+dir {
						synced = true
					}
				}
				if !synced {
					t.Errorf("%s is not followed by a sync of %s: %q", s, dir, steps)
				}
			}
		})
	}
}

// TestSetRefFaultInjection fails each durable step of Repo.SetRef (an
// update, a new nested ref, a delete): the ref then reads as its old or
// its new value, never as garbage, no temporary is left, and a retry
// succeeds.
func TestSetRefFaultInjection(t *testing.T) {
	type op struct {
		ref  string
		to   func(a, b objects.Checksum) *objects.Checksum
		name string
	}
	ops := []op{
		{"heads/main", func(a, b objects.Checksum) *objects.Checksum { return &b }, "update"},
		{"heads/deep/new/ref", func(a, b objects.Checksum) *objects.Checksum { return &b }, "create nested"},
		{"remotes/origin/main", func(a, b objects.Checksum) *objects.Checksum { return &b }, "create remote"},
		{"heads/main", func(a, b objects.Checksum) *objects.Checksum { return nil }, "delete"},
	}
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			setup := func() (*Repo, objects.Checksum, objects.Checksum) {
				r := newRepo(t, ModeBareUser)
				a := commitTo(t, r, "main", "a", sampleFiles("a"))
				b := commitTo(t, r, "side", "b", sampleFiles("b"))
				return r, a, b
			}
			r, a, b := setup()
			var steps []string
			setFailpoint(t, r.Path(), func(s string) error { steps = append(steps, s); return nil })
			if err := r.SetRef(o.ref, o.to(a, b)); err != nil {
				t.Fatal(err)
			}
			clearFailpoint()
			if len(steps) == 0 {
				t.Fatal("SetRef took no durable step")
			}
			for i := range steps {
				r, a, b := setup()
				old, oldErr := r.ReadRef(o.ref)
				n := 0
				setFailpoint(t, r.Path(), func(s string) error {
					n++
					if n-1 == i {
						return errInjected
					}
					return nil
				})
				err := r.SetRef(o.ref, o.to(a, b))
				clearFailpoint()
				if !errors.Is(err, errInjected) {
					t.Errorf("step %d (%s): SetRef = %v", i, steps[i], err)
				}
				got, gerr := r.ReadRef(o.ref)
				newVal := o.to(a, b)
				isOld := (oldErr != nil && errors.Is(gerr, ErrNotFound)) || (oldErr == nil && gerr == nil && got == old)
				isNew := (newVal == nil && errors.Is(gerr, ErrNotFound)) || (newVal != nil && gerr == nil && got == *newVal)
				if !isOld && !isNew {
					t.Errorf("step %d (%s): ref reads %v, %v", i, steps[i], got, gerr)
				}
				checkIntegrity(t, r)
				if err := r.SetRef(o.ref, o.to(a, b)); err != nil {
					t.Errorf("retry after step %d: %v", i, err)
				}
				got, gerr = r.ReadRef(o.ref)
				if (newVal == nil) != errors.Is(gerr, ErrNotFound) || (newVal != nil && got != *newVal) {
					t.Errorf("after retry: ref reads %v, %v", got, gerr)
				}
			}
		})
	}
}

// TestFailedStagingWriteFailsCommit makes the staging write of an object
// fail after it was claimed (its fan-out directory is a file): another
// goroutine writing the same object at that moment would have been told it
// is staged, so the transaction must refuse to commit.
func TestFailedStagingWriteFailsCommit(t *testing.T) {
	for _, size := range []int{10, smallFile + 10} {
		r := newRepo(t, ModeBareUser)
		tx := begin(t, r)
		data := bytes.Repeat([]byte{'q'}, size)
		c, _ := objects.FileChecksum(regular(size), bytes.NewReader(data))
		if err := os.WriteFile(filepath.Join(tx.staging, c.String()[:2]), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.WriteFile(regular(size), bytes.NewReader(data)); err == nil {
			t.Fatalf("size %d: staging into a blocked directory succeeded", size)
		}
		os.Remove(filepath.Join(tx.staging, c.String()[:2]))
		os.Mkdir(filepath.Join(tx.staging, c.String()[:2]), 0o755)
		ok := writeTree(t, tx, objects.Checksum{}, "after the failure", sampleFiles("ok"))
		tx.SetRef("heads/main", &ok)
		if err := tx.Commit(); err == nil || !strings.Contains(err.Error(), c.String()) {
			t.Errorf("size %d: Commit after a failed staging write: %v", size, err)
		}
		if got := objectSet(t, r); len(got) != 0 {
			t.Errorf("size %d: published %v", size, got)
		}
		if _, err := r.ReadRef("heads/main"); !errors.Is(err, ErrNotFound) {
			t.Errorf("size %d: ref written: %v", size, err)
		}
		if left := tmpEntries(t, r); len(left) != 0 {
			t.Errorf("size %d: tmp/ holds %v", size, left)
		}
	}
}
