package checkout_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-os/strata/checkout"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/internal/testtree"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

var strataBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "checkout-test-")
	if err != nil {
		panic(err)
	}
	strataBin = filepath.Join(dir, "strata")
	if out, err := exec.Command("go", "build", "-o", strataBin, "github.com/strata-os/strata/cmd/strata").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// describe lists every entry of a tree: type, mode, owner, size, content
// hash or link target, xattrs, and which entries share an inode.
func describe(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	inodes := map[uint64][]string{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st := info.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s mode=%o uid=%d gid=%d", rel, st.Mode, st.Uid, st.Gid)
		switch {
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" size=%d sha=%x", len(data), sha256.Sum256(data))
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		case info.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		vals, names, err := fsutil.ListXattrs(p)
		if err != nil {
			return err
		}
		for _, n := range names {
			line += fmt.Sprintf(" %s=%x", n, vals[n])
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, names := range inodes {
		if len(names) > 1 {
			sort.Strings(names)
			lines = append(lines, "linked "+strings.Join(names, " "))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestMatchesOstree checks out the fixture tree with strata and with
// ostree from bare and archive repos, normal and -U, whole and by subpath,
// and compares the results entry by entry.
func TestMatchesOstree(t *testing.T) {
	src := testtree.Build(t, t.TempDir())
	for _, mode := range []string{"bare", "archive", "bare-user-only", "bare-user"} {
		r := filepath.Join(t.TempDir(), "repo")
		run(t, "ostree", "--repo="+r, "init", "--mode="+mode)
		run(t, strataBin, "--repo="+r, "commit", "-b", "main", "--tree=dir="+src, "--timestamp=@0")
		for _, args := range [][]string{nil, {"-U"}, {"--subpath=/usr"}, {"--subpath=/hello.txt"}, {"-U", "--force-copy"}} {
			if mode == "bare-user" && len(args) == 0 {
				continue // bare-user checkouts need -U when not root-owned objects
			}
			name := mode + " " + strings.Join(args, " ")
			d := t.TempDir()
			run(t, "ostree", append(append([]string{"--repo=" + r, "checkout"}, args...), "main", d+"/o")...)
			run(t, strataBin, append(append([]string{"--repo=" + r, "checkout"}, args...), "main", d+"/s")...)
			if a, b := describe(t, d+"/o"), describe(t, d+"/s"); a != b {
				t.Errorf("%s: checkouts differ\nostree:\n%s\nstrata:\n%s", name, a, b)
			}
		}
	}
}

func TestHardlinksFromBare(t *testing.T) {
	src := testtree.Build(t, t.TempDir())
	r := filepath.Join(t.TempDir(), "repo")
	run(t, strataBin, "--repo="+r, "init", "--mode=bare")
	c := run(t, strataBin, "--repo="+r, "commit", "-b", "main", "--tree=dir="+src)
	d := filepath.Join(t.TempDir(), "co")
	run(t, strataBin, "--repo="+r, "checkout", "-H", "main", d)
	var a, b syscall.Stat_t
	sum, _ := objects.ParseChecksum(c)
	rp, _ := repo.Open(r)
	cm, _ := rp.ReadCommit(sum)
	dt, _ := rp.ReadDirTree(cm.RootTree)
	for _, f := range dt.Files {
		if f.Name == "hello.txt" {
			syscall.Stat(rp.ObjectPath(objects.KindFile, f.Checksum), &a)
		}
	}
	syscall.Stat(filepath.Join(d, "hello.txt"), &b)
	if a.Ino == 0 || a.Ino != b.Ino {
		t.Fatalf("hello.txt is not a hard link of its object (%d vs %d)", a.Ino, b.Ino)
	}
	// Empty files are copied, as ostree copies them.
	var e syscall.Stat_t
	if err := syscall.Stat(filepath.Join(d, "empty"), &e); err != nil || e.Nlink != 1 {
		t.Fatalf("empty file: %v, %d links; want a copy", err, e.Nlink)
	}
	// -H from an archive repo cannot be satisfied.
	ra := filepath.Join(t.TempDir(), "repo")
	run(t, strataBin, "--repo="+ra, "init", "--mode=archive")
	run(t, strataBin, "--repo="+ra, "commit", "-b", "main", "--tree=dir="+src)
	out, err := exec.Command(strataBin, "--repo="+ra, "checkout", "-H", "main", filepath.Join(t.TempDir(), "x")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "require-hardlinks") {
		t.Fatalf("-H from archive: %v %s", err, out)
	}
}

func TestUnionAndExisting(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a"), []byte("new"), 0o644)
	os.WriteFile(filepath.Join(src, "b"), []byte("new"), 0o644)
	r := filepath.Join(t.TempDir(), "repo")
	run(t, strataBin, "--repo="+r, "init", "--mode=archive")
	run(t, strataBin, "--repo="+r, "commit", "-b", "main", "--tree=dir="+src)
	rp, err := repo.Open(r)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := rp.ResolveRev("main")
	ctx := context.Background()
	d := t.TempDir() // exists
	if err := checkout.Checkout(ctx, rp, c, d, checkout.Options{}); !errors.Is(err, checkout.ErrExists) {
		t.Fatalf("existing destination: %v", err)
	}
	os.WriteFile(filepath.Join(d, "a"), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(d, "keep"), []byte("keep"), 0o644)
	if err := checkout.Checkout(ctx, rp, c, d, checkout.Options{UnionAdd: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(d, "a")); string(b) != "old" {
		t.Errorf("union-add replaced a: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(d, "b")); string(b) != "new" {
		t.Errorf("union-add did not add b: %q", b)
	}
	if err := checkout.Checkout(ctx, rp, c, d, checkout.Options{Union: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(d, "a")); string(b) != "new" {
		t.Errorf("union did not replace a: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(d, "keep")); string(b) != "keep" {
		t.Errorf("union removed keep")
	}
	// A symlink planted where a directory goes is not followed.
	d2 := t.TempDir()
	outside := t.TempDir()
	src2 := t.TempDir()
	os.MkdirAll(filepath.Join(src2, "sub"), 0o755)
	os.WriteFile(filepath.Join(src2, "sub/f"), []byte("x"), 0o644)
	run(t, strataBin, "--repo="+r, "commit", "-b", "two", "--tree=dir="+src2)
	c2, _ := rp.ResolveRev("two")
	os.Symlink(outside, filepath.Join(d2, "sub"))
	if err := checkout.Checkout(ctx, rp, c2, d2, checkout.Options{Union: true}); !errors.Is(err, checkout.ErrExists) {
		t.Fatalf("symlink in the way: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("checkout wrote through a symlink: %v", ents)
	}
}

// bareCommitOfA commits a tree of one file, a, to main of a new bare
// repository (with the CLI) and returns the repository, the commit and
// a's file object.
func bareCommitOfA(t *testing.T) (*repo.Repo, objects.Checksum, objects.Checksum) {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a"), []byte("content of a"), 0o644)
	r := filepath.Join(t.TempDir(), "repo")
	run(t, strataBin, "--repo="+r, "init", "--mode=bare")
	run(t, strataBin, "--repo="+r, "commit", "-b", "main", "--tree=dir="+src)
	rp, _ := repo.Open(r)
	c, _ := rp.ResolveRev("main")
	cm, _ := rp.ReadCommit(c)
	dt, _ := rp.ReadDirTree(cm.RootTree)
	return rp, c, dt.Files[0].Checksum
}

func TestCorruptObjectNotCheckedOut(t *testing.T) {
	rp, c, file := bareCommitOfA(t)
	obj := rp.ObjectPath(objects.KindFile, file)
	os.WriteFile(obj, []byte("CONTENT of a"), 0o644)
	d := filepath.Join(t.TempDir(), "co")
	err := checkout.Checkout(context.Background(), rp, c, d, checkout.Options{ForceCopy: true})
	if !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("copy of a corrupt object: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d, "a")); err == nil {
		t.Fatal("corrupt content left in the checkout")
	}
}

func TestCancelled(t *testing.T) {
	src := testtree.Build(t, t.TempDir())
	r := filepath.Join(t.TempDir(), "repo")
	run(t, strataBin, "--repo="+r, "init", "--mode=archive")
	run(t, strataBin, "--repo="+r, "commit", "-b", "main", "--tree=dir="+src)
	rp, _ := repo.Open(r)
	c, _ := rp.ResolveRev("main")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := checkout.Checkout(ctx, rp, c, filepath.Join(t.TempDir(), "co"), checkout.Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled checkout: %v", err)
	}
}

// TestCancelledMidFile cancels a checkout while it copies a 256 MiB file
// (from an archive repo: inflated, never linked): Checkout returns
// context.Canceled within a second and the partial file is gone.
func TestCancelledMidFile(t *testing.T) {
	src := t.TempDir()
	big := filepath.Join(src, "big")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 256<<20); err != nil {
		t.Fatal(err)
	}
	r := filepath.Join(t.TempDir(), "repo")
	run(t, strataBin, "--repo="+r, "init", "--mode=archive")
	run(t, strataBin, "--repo="+r, "commit", "-b", "main", "--tree=dir="+src)
	rp, _ := repo.Open(r)
	c, _ := rp.ResolveRev("main")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dst := filepath.Join(t.TempDir(), "co")
	cancelled := make(chan time.Time, 1)
	go func() {
		for {
			if st, err := os.Stat(filepath.Join(dst, "big")); err == nil && st.Size() > 0 {
				cancelled <- time.Now()
				cancel()
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	err := checkout.Checkout(ctx, rp, c, dst, checkout.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("checkout cancelled mid-file: %v", err)
	}
	if d := time.Since(<-cancelled); d > time.Second {
		t.Errorf("checkout returned %v after the cancel", d)
	}
	if _, err := os.Lstat(filepath.Join(dst, "big")); err == nil {
		t.Error("partial file left")
	}
}

// corruptSymlink commits a tree holding the symlink l -> target-of-l into a
// new repo of mode and changes the stored target of l's object to
// target-of-X, as each mode stores it: a symlink (bare), a file holding
// the target (bare-user), a header inside the .filez (archive).
func corruptSymlink(t *testing.T, mode string) (*repo.Repo, objects.Checksum) {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a"), []byte("content of a"), 0o644)
	os.Symlink("target-of-l", filepath.Join(src, "l"))
	r := filepath.Join(t.TempDir(), "repo")
	run(t, strataBin, "--repo="+r, "init", "--mode="+mode)
	run(t, strataBin, "--repo="+r, "commit", "-b", "main", "--tree=dir="+src)
	rp, err := repo.Open(r)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := rp.ResolveRev("main")
	cm, _ := rp.ReadCommit(c)
	dt, _ := rp.ReadDirTree(cm.RootTree)
	var sum objects.Checksum
	for _, f := range dt.Files {
		if f.Name == "l" {
			sum = f.Checksum
		}
	}
	obj := rp.ObjectPath(objects.KindFile, sum)
	switch mode {
	case "bare":
		if err := os.Remove(obj); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("target-of-X", obj); err != nil {
			t.Fatal(err)
		}
	case "bare-user":
		// Rewritten in place, so that user.ostreemeta stays.
		f, err := os.OpenFile(obj, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("target-of-X\x00"))
		f.Close()
	case "archive":
		data, err := os.ReadFile(obj)
		if err != nil || !strings.Contains(string(data), "target-of-l") {
			t.Fatalf("%s: no target in the header: %v", obj, err)
		}
		os.WriteFile(obj, []byte(strings.Replace(string(data), "target-of-l", "target-of-X", 1)), 0o644)
	}
	h, err := rp.ReadFileHeader(sum)
	if err != nil || h.Target != "target-of-X" {
		t.Fatalf("%s: the corruption did not take: %+v %v", mode, h, err)
	}
	return rp, c
}

// TestCorruptSymlinkNotCheckedOut: a symlink object whose target does not
// hash to its name is refused wherever checkout copies it (bare with
// --force-copy, bare-user, archive), as a regular file is.
func TestCorruptSymlinkNotCheckedOut(t *testing.T) {
	for _, c := range []struct {
		mode, name string
		o          checkout.Options
	}{
		{"bare", "force-copy", checkout.Options{ForceCopy: true}},
		{"bare", "user", checkout.Options{UserMode: true}},
		{"bare-user", "user", checkout.Options{UserMode: true}},
		{"archive", "", checkout.Options{}},
		{"archive", "user", checkout.Options{UserMode: true}},
	} {
		t.Run(c.mode+" "+c.name, func(t *testing.T) {
			rp, cs := corruptSymlink(t, c.mode)
			d := filepath.Join(t.TempDir(), "co")
			err := checkout.Checkout(context.Background(), rp, cs, d, c.o)
			if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), "file") {
				t.Fatalf("checkout of a corrupt symlink object: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(d, "l")); err == nil {
				t.Fatal("corrupt symlink left in the checkout")
			}
		})
	}
}

// TestDeviceNodeObjectRefused: a bare repo's .file replaced by a device
// node or a fifo is refused by a hard-link checkout (nothing of it in the
// destination) and reported by fsck, as ostree refuses it.
func TestDeviceNodeObjectRefused(t *testing.T) {
	for _, kind := range []string{"chardev", "fifo"} {
		t.Run(kind, func(t *testing.T) {
			rp, c, file := bareCommitOfA(t)
			obj := rp.ObjectPath(objects.KindFile, file)
			os.Remove(obj)
			var err error
			if kind == "chardev" {
				err = syscall.Mknod(obj, syscall.S_IFCHR|0o644, 1<<8|3) // /dev/null's 1,3
			} else {
				err = syscall.Mkfifo(obj, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			d := filepath.Join(t.TempDir(), "co")
			err = checkout.Checkout(context.Background(), rp, c, d, checkout.Options{})
			if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), file.String()) {
				t.Fatalf("checkout of a %s object: %v", kind, err)
			}
			if _, err := os.Lstat(filepath.Join(d, "a")); err == nil {
				t.Fatalf("the %s object is in the checkout", kind)
			}
			rep, err := rp.Fsck(context.Background(), repo.FsckOptions{})
			if err != nil || len(rep.Problems) != 1 || !errors.Is(rep.Problems[0].Err, repo.ErrCorrupt) {
				t.Fatalf("fsck: %v %v", rep.Problems, err)
			}
			out, err := exec.Command("ostree", "--repo="+rp.Path(), "checkout", "main", filepath.Join(t.TempDir(), "o")).CombinedOutput()
			if err == nil {
				t.Errorf("ostree checked out a %s object:\n%s", kind, out)
			}
		})
	}
}
