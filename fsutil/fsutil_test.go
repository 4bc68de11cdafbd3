package fsutil

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dirEntries lists the names in dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// withFailpoint makes the step equal to fail return errFail until the test
// ends, and records every step.
func withFailpoint(t *testing.T, failStep string) *[]string {
	t.Helper()
	var steps []string
	f := func(step string) error {
		steps = append(steps, step)
		if step == failStep {
			return errFail
		}
		return nil
	}
	Failpoint.Store(&f)
	t.Cleanup(func() { Failpoint.Store(nil) })
	return &steps
}

var errFail = errors.New("injected")

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	if err := WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 despite the umask", st.Mode())
	}
	if err := WriteFile(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(p); string(data) != "two" {
		t.Errorf("content %q", data)
	}
	if got := dirEntries(t, dir); !reflect.DeepEqual(got, []string{"f"}) {
		t.Errorf("dir holds %v", got)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o644); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("write into a missing dir: %v", err)
	}
}

func TestWriteFileFillErrorKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteFileFunc(p, 0o644, func(w io.Writer) error {
		w.Write([]byte("partial new"))
		return syscall.ENOSPC
	})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), p) {
		t.Errorf("err = %v, want ENOSPC naming the path", err)
	}
	if data, _ := os.ReadFile(p); string(data) != "old content" {
		t.Errorf("content %q after a failed fill", data)
	}
	if got := dirEntries(t, dir); !reflect.DeepEqual(got, []string{"f"}) {
		t.Errorf("temporary left: %v", got)
	}
}

// TestWriteFileFailpoints fails each durable step of WriteFile: before the
// rename the old content stays and no temporary is left; a failing
// directory sync comes after the rename, so the new content is in place
// but the caller is told it may not be durable.
func TestWriteFileFailpoints(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := withFailpoint(t, "")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []string{"write:" + p, "fsync:" + p, "rename:" + p, "syncdir:" + dir}
	if !reflect.DeepEqual(*steps, want) {
		t.Fatalf("steps = %q, want %q", *steps, want)
	}
	for _, step := range want {
		withFailpoint(t, step)
		err := WriteFile(p, []byte("new"), 0o644)
		if !errors.Is(err, errFail) {
			t.Errorf("%s: err = %v", step, err)
		}
		Failpoint.Store(nil)
		data, _ := os.ReadFile(p)
		wantData := "old"
		if strings.HasPrefix(step, "syncdir:") {
			wantData = "new"
		}
		if string(data) != wantData {
			t.Errorf("after failing %s: content %q, want %q", step, data, wantData)
		}
		if got := dirEntries(t, dir); !reflect.DeepEqual(got, []string{"f"}) {
			t.Errorf("after failing %s: dir holds %v", step, got)
		}
		WriteFile(p, []byte("old"), 0o644)
	}
}

func TestSymlinkReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "link")
	if err := Symlink("a", p); err != nil {
		t.Fatal(err)
	}
	if err := Symlink("b", p); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(p); got != "b" {
		t.Errorf("link -> %q", got)
	}
	withFailpoint(t, "rename:"+p)
	if err := Symlink("c", p); !errors.Is(err, errFail) {
		t.Errorf("err = %v", err)
	}
	Failpoint.Store(nil)
	if got, _ := os.Readlink(p); got != "b" {
		t.Errorf("after a failed replace link -> %q", got)
	}
	if got := dirEntries(t, dir); !reflect.DeepEqual(got, []string{"link"}) {
		t.Errorf("dir holds %v", got)
	}
}

func TestRenameAcrossDirs(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(a, "x"), []byte("x"), 0o644)
	steps := withFailpoint(t, "")
	if err := Rename(filepath.Join(a, "x"), filepath.Join(b, "y")); err != nil {
		t.Fatal(err)
	}
	want := []string{"rename:" + filepath.Join(b, "y"), "syncdir:" + b, "syncdir:" + a}
	if !reflect.DeepEqual(*steps, want) {
		t.Errorf("steps = %q, want both directories synced: %q", *steps, want)
	}
}

func TestMkdirAllSync(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "a", "b", "c")
	steps := withFailpoint(t, "")
	if err := MkdirAllSync(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || !st.IsDir() {
		t.Fatalf("not created: %v", err)
	}
	want := []string{"syncdir:" + root, "syncdir:" + filepath.Join(root, "a"), "syncdir:" + filepath.Join(root, "a", "b")}
	if !reflect.DeepEqual(*steps, want) {
		t.Errorf("steps = %q, want each changed parent synced: %q", *steps, want)
	}
	*steps = nil
	if err := MkdirAllSync(p, 0o755); err != nil || len(*steps) != 0 {
		t.Errorf("existing dir: %v, steps %q", err, *steps)
	}
	os.WriteFile(filepath.Join(root, "file"), nil, 0o644)
	if err := MkdirAllSync(filepath.Join(root, "file", "sub"), 0o755); err == nil {
		t.Error("MkdirAllSync under a file succeeded")
	}
}

func TestSyncfs(t *testing.T) {
	if err := Syncfs(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := Syncfs(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Syncfs of a missing dir: %v", err)
	}
}

func TestLockFileSameProcess(t *testing.T) {
	// flock locks belong to open file descriptions, so two LockFile calls
	// in one process conflict as two processes would.
	p := filepath.Join(t.TempDir(), "lock")
	ctx := context.Background()
	ex, err := LockFile(ctx, p, LockOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockFile(ctx, p, LockOptions{Exclusive: true}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), p) {
		t.Errorf("second exclusive: %v, want ErrLocked naming the file", err)
	}
	if _, err := LockFile(ctx, p, LockOptions{}); !errors.Is(err, ErrLocked) {
		t.Errorf("shared while exclusive: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 120*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := LockFile(tctx, p, LockOptions{Wait: true}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting past the deadline: %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("gave up after %v, before the deadline", d)
	}
	// A waiter gets the lock once it is released.
	go func() {
		time.Sleep(100 * time.Millisecond)
		ex.Unlock()
	}()
	sh1, err := LockFile(ctx, p, LockOptions{Wait: true})
	if err != nil {
		t.Fatalf("waiting for release: %v", err)
	}
	sh2, err := LockFile(ctx, p, LockOptions{})
	if err != nil {
		t.Errorf("two shared locks: %v", err)
	}
	if _, err := LockFile(ctx, p, LockOptions{Exclusive: true}); !errors.Is(err, ErrLocked) {
		t.Errorf("exclusive while shared: %v", err)
	}
	sh1.Unlock()
	sh2.Unlock()
	if err := sh2.Unlock(); err != nil {
		t.Errorf("double Unlock: %v", err)
	}
	var nilLock *Lock
	if err := nilLock.Unlock(); err != nil {
		t.Errorf("nil Unlock: %v", err)
	}
	ex2, err := LockFile(ctx, p, LockOptions{Exclusive: true})
	if err != nil {
		t.Errorf("exclusive after all released: %v", err)
	}
	ex2.Unlock()
}

// TestHelperLockChild is not a test: run by TestLockFileTwoProcesses as a
// child process, it takes the lock named in its environment, says so on
// stdout and holds it until killed.
func TestHelperLockChild(t *testing.T) {
	p := os.Getenv("FSUTIL_LOCK_CHILD")
	if p == "" {
		return
	}
	l, err := LockFile(context.Background(), p, LockOptions{Exclusive: os.Getenv("FSUTIL_LOCK_EXCLUSIVE") == "1", Wait: true})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	l.Unlock()
	os.Exit(0)
}

func TestLockFileTwoProcesses(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	ctx := context.Background()
	child := func(exclusive bool) *exec.Cmd {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLockChild$")
		ex := "0"
		if exclusive {
			ex = "1"
		}
		cmd.Env = append(os.Environ(), "FSUTIL_LOCK_CHILD="+p, "FSUTIL_LOCK_EXCLUSIVE="+ex)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if line != "locked\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child: %q", line)
		}
		return cmd
	}
	cmd := child(true)
	if _, err := LockFile(ctx, p, LockOptions{}); !errors.Is(err, ErrLocked) {
		t.Errorf("shared while another process holds it exclusively: %v", err)
	}
	// The lock dies with its process: a crashed holder blocks nobody.
	cmd.Process.Kill()
	cmd.Wait()
	l, err := LockFile(ctx, p, LockOptions{Exclusive: true})
	if err != nil {
		t.Fatalf("exclusive after the holder was killed: %v", err)
	}
	l.Unlock()

	cmd = child(false)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	sh, err := LockFile(ctx, p, LockOptions{})
	if err != nil {
		t.Errorf("shared beside another process's shared lock: %v", err)
	}
	sh.Unlock()
	if _, err := LockFile(ctx, p, LockOptions{Exclusive: true}); !errors.Is(err, ErrLocked) {
		t.Errorf("exclusive while another process holds it shared: %v", err)
	}
}

func TestLockHolds(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	l, err := LockFile(context.Background(), p, LockOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Holds(p) {
		t.Error("Holds = false on the locked file")
	}
	os.Remove(p)
	if l.Holds(p) {
		t.Error("Holds = true after the file was removed")
	}
	os.WriteFile(p, nil, 0o644)
	if l.Holds(p) {
		t.Error("Holds = true on a replacement file")
	}
	l.Unlock()
	if l.Holds(p) {
		t.Error("Holds = true after Unlock")
	}
}

func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	alive := exec.Command("sleep", "30")
	if err := alive.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { alive.Process.Kill(); alive.Wait() }()
	names := map[string]bool{ // name: kept
		fmt.Sprintf(".main.tmp-%d-3", dead.Process.Pid):  false,
		fmt.Sprintf(".main.tmp-%d-4", os.Getpid()):       true,
		fmt.Sprintf(".main.tmp-%d-5", alive.Process.Pid): true,
		"main":                true,
		".main.tmp-notapid-1": true,
		"main.tmp-1-1":        true,
		fmt.Sprintf("x.tmp-%d-3", dead.Process.Pid): true,
	}
	for n := range names {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	RemoveStaleTemps(dir)
	RemoveStaleTemps(filepath.Join(dir, "missing")) // no panic, no error
	for n, kept := range names {
		_, err := os.Lstat(filepath.Join(dir, n))
		if (err == nil) != kept {
			t.Errorf("%s: kept=%v, want %v", n, err == nil, kept)
		}
	}
}

func TestXattrs(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, nil, 0o644)
	vals, names, err := ListXattrs(p)
	if err != nil || len(names) != 0 || len(vals) != 0 {
		t.Errorf("no xattrs: %v %v %v", vals, names, err)
	}
	big := bytes.Repeat([]byte{0xAB}, 3000) // larger than the first buffer
	want := map[string][]byte{"user.z": []byte("last"), "user.a": {0, 1, 2}, "user.big": big, "user.empty": {}}
	for n, v := range want {
		if err := unix.Lsetxattr(p, n, v, 0); err != nil {
			t.Fatal(err)
		}
	}
	vals, names, err = ListXattrs(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(names, []string{"user.a", "user.big", "user.empty", "user.z"}) {
		t.Errorf("names = %q, want sorted", names)
	}
	for n, v := range want {
		if !bytes.Equal(vals[n], v) {
			t.Errorf("%s = %d bytes, want %d", n, len(vals[n]), len(v))
		}
	}
	if v, err := Lgetxattr(p, "user.big"); err != nil || !bytes.Equal(v, big) {
		t.Errorf("Lgetxattr big: %d bytes, %v", len(v), err)
	}
	if _, err := Lgetxattr(p, "user.none"); !errors.Is(err, unix.ENODATA) {
		t.Errorf("missing xattr: %v", err)
	}
	// A symlink's own xattrs are read, not its target's.
	l := filepath.Join(dir, "link")
	os.Symlink("f", l)
	if _, names, err := ListXattrs(l); err != nil || len(names) != 0 {
		t.Errorf("symlink xattrs: %q, %v (followed the link?)", names, err)
	}
	if _, _, err := ListXattrs(filepath.Join(dir, "missing")); err == nil {
		t.Error("ListXattrs of a missing file succeeded")
	}
}

// A durable write beside a 255-byte name works: the temporary name stays
// within NAME_MAX, and a stale one of that shape is still recognised.
func TestWriteFileLongName(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, strings.Repeat("n", 255))
	if err := WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(TempName(p)) > 255 {
		t.Fatalf("temp name of %d bytes", len(TempName(p)))
	}
	stale := filepath.Join(dir, "."+strings.Repeat("n", 200)+".tmp-999999999-1")
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	RemoveStaleTemps(dir)
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temporary kept: %v", err)
	}
}

// A temporary named with a live PID but written before that process
// started (the PID came back after a reboot) is stale; one written since
// is not.
func TestRemoveStaleTempsReusedPID(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, fmt.Sprintf(".ref.tmp-%d-5", os.Getpid()))
	live := filepath.Join(dir, filepath.Base(TempName("ref")))
	for _, p := range []string{old, live} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-240 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	RemoveStaleTemps(dir)
	if _, err := os.Lstat(old); !os.IsNotExist(err) {
		t.Errorf("temporary from before this process started kept: %v", err)
	}
	if _, err := os.Lstat(live); err != nil {
		t.Errorf("this process's temporary removed: %v", err)
	}
	if a, b := TempName("x"), TempName("x"); a == b {
		t.Errorf("same temporary name twice: %s", a)
	}
}

// A stale temporary that cannot be removed is reported, named, in the
// returned error; the others are still removed.
func TestRemoveStaleTempsReportsFailures(t *testing.T) {
	dir := t.TempDir()
	stuck := filepath.Join(dir, ".a.tmp-2147483646-1-00000000")
	if err := os.MkdirAll(filepath.Join(stuck, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, ".b.tmp-2147483646-2-00000000")
	if err := os.WriteFile(gone, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := RemoveStaleTemps(dir)
	if err == nil || !strings.Contains(err.Error(), stuck) {
		t.Fatalf("RemoveStaleTemps: %v, want an error naming %s", err, stuck)
	}
	if _, err := os.Lstat(gone); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removable stale temporary kept: %v", err)
	}
}
