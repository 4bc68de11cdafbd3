package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"syscall"
)

// Hostile trees at deploy: commits crafted as an attacker would (symlinks
// out of the tree, names that break boot entries, files that never end)
// must be refused with one clear error line, a non-zero exit, and nothing
// changed outside the sysroot (a sentinel directory, as desync's tests
// plant).

type hostileEnv struct {
	t       *testing.T
	bin     string
	sysroot string
	outside string // a directory outside the sysroot the trees point at
	n       int
}

func newHostileEnv(t *testing.T, bin string) *hostileEnv {
	t.Helper()
	base := t.TempDir()
	e := &hostileEnv{t: t, bin: bin, sysroot: filepath.Join(base, "sysroot"), outside: filepath.Join(base, "outside")}
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join(e.sysroot, "ostree/deploy/*/deploy/*"))
		for _, d := range dirs {
			clearImmutable(d)
		}
	})
	for p, c := range map[string]string{
		"sentinel":                    "do not touch\n",
		".updated":                    "",
		"passwd":                      "root:x:0:0::/root:/bin/sh\n",
		"vmlinuz":                     "host kernel\n",
		"initrd":                      "host initrd\n",
		"lib/modules/6.1.0/vmlinuz":   "host kernel via usr\n",
		"lib/os-release":              "PRETTY_NAME=host\n",
		"usr/lib/modules/6.1/vmlinuz": "host kernel\n",
	} {
		full := filepath.Join(e.outside, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(e.sysroot, 0o755); err != nil {
		t.Fatal(err)
	}
	e.ok("admin", "init-fs", e.sysroot)
	e.ok("admin", "os-init", "--sysroot="+e.sysroot, "testos")
	return e
}

func (e *hostileEnv) run(args ...string) (string, error) {
	out, err := exec.Command(e.bin, args...).CombinedOutput()
	return string(out), err
}

func (e *hostileEnv) ok(args ...string) string {
	e.t.Helper()
	out, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// goodTree is a bootable tree: kernel, initramfs, os-release, usr/etc.
func goodTree() map[string]string {
	return map[string]string{
		"usr/lib/modules/6.1.0/vmlinuz":       "kernel\n",
		"usr/lib/modules/6.1.0/initramfs.img": "initramfs\n",
		"usr/lib/os-release":                  "ID=testos\nPRETTY_NAME=\"Test OS\"\n",
		"usr/etc/hosts":                       "127.0.0.1 localhost\n",
	}
}

// commit commits a tree of files and symlinks ("@TARGET" as a value makes
// a symlink; "/" at the end of a name a directory) with ostree and
// returns the ref.
func (e *hostileEnv) commit(files map[string]string, extra ...string) string {
	e.t.Helper()
	dir := e.t.TempDir()
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		c := files[p]
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			e.t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(full, 0o755)
		case strings.HasPrefix(c, "@"):
			err = os.Symlink(c[1:], full)
		default:
			err = os.WriteFile(full, []byte(c), 0o644)
		}
		if err != nil {
			e.t.Fatal(err)
		}
	}
	e.n++
	ref := fmt.Sprintf("testos/hostile%d", e.n)
	args := append([]string{"commit", "--repo=" + filepath.Join(e.sysroot, "ostree/repo"), "-b", ref, "--tree=dir=" + dir, "-s", "hostile"}, extra...)
	if out, err := exec.Command("ostree", args...).CombinedOutput(); err != nil {
		e.t.Fatalf("ostree commit: %v\n%s", err, out)
	}
	return ref
}

// snapshot lists the outside directory: names, modes, sizes, contents,
// inode link counts (a hard link into /boot raises one).
func (e *hostileEnv) snapshot() string {
	e.t.Helper()
	var b strings.Builder
	err := filepath.Walk(e.outside, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(&b, "%s %v %d nlink=%d", strings.TrimPrefix(p, e.outside), fi.Mode(), fi.Size(), st.Nlink)
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %q", data)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return b.String()
}

// deployFails deploys ref, which must fail with one error line holding
// msg, leave the outside directory as it was and leave no deployment.
func (e *hostileEnv) deployFails(ref, msg string, args ...string) {
	e.t.Helper()
	before := e.snapshot()
	args = append([]string{"admin", "deploy", "--sysroot=" + e.sysroot, "--os=testos"}, append(args, ref)...)
	out, err := e.run(args...)
	if err == nil {
		e.t.Fatalf("deploy of %s succeeded:\n%s", ref, out)
	}
	if !strings.HasPrefix(out, "error: ") || strings.Count(out, "\n") != 1 || !strings.Contains(out, msg) {
		e.t.Fatalf("deploy of %s: want one error line with %q, got:\n%s", ref, msg, out)
	}
	if after := e.snapshot(); after != before {
		e.t.Fatalf("deploy of %s changed the outside directory:\nbefore:\n%safter:\n%s", ref, before, after)
	}
	if dirs, _ := filepath.Glob(filepath.Join(e.sysroot, "ostree/deploy/testos/deploy/*")); len(dirs) != 0 {
		e.t.Fatalf("deploy of %s left %v", ref, dirs)
	}
	if st := e.ok("admin", "status", "--sysroot="+e.sysroot); st != "No deployments.\n" {
		e.t.Fatalf("status after a refused deploy:\n%s", st)
	}
}

func TestHostileTreesDeploy(t *testing.T) {
	bin := buildCLI(t)
	legacyKernel := "boot/vmlinuz-6.1.0-" + strings.Repeat("ab", 32)

	t.Run("usr symlink out with etc", func(t *testing.T) {
		e := newHostileEnv(t, bin)
		// Before the fix, etc was renamed into OUTSIDE/etc through usr.
		ref := e.commit(map[string]string{"usr": "@" + e.outside, "etc/passwd": "evil\n", legacyKernel: "k\n"})
		e.deployFails(ref, "/usr is a symlink, not a directory")
	})
	t.Run("etc symlink out", func(t *testing.T) {
		e := newHostileEnv(t, bin)
		// Before the fix, OUTSIDE/.updated was deleted through etc.
		files := goodTree()
		delete(files, "usr/etc/hosts")
		files["etc"] = "@" + e.outside
		e.deployFails(e.commit(files), "/etc is a symlink, not a directory")
	})
	t.Run("usr/etc symlink out", func(t *testing.T) {
		e := newHostileEnv(t, bin)
		files := goodTree()
		delete(files, "usr/etc/hosts")
		files["usr/etc"] = "@../../outside"
		e.deployFails(e.commit(files), "/usr/etc is a symlink, not a directory")
	})
	t.Run("usr/etc a file", func(t *testing.T) {
		e := newHostileEnv(t, bin)
		files := goodTree()
		delete(files, "usr/etc/hosts")
		files["usr/etc"] = "not a directory\n"
		e.deployFails(e.commit(files), "/usr/etc is a regular file, not a directory")
	})
	t.Run("good tree deploys", func(t *testing.T) {
		e := newHostileEnv(t, bin)
		ref := e.commit(goodTree())
		e.ok("admin", "deploy", "--sysroot="+e.sysroot, "--os=testos", ref)
	})
}
