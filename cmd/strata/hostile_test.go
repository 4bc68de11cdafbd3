package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// run runs strata; a run that does not end within a minute (a deploy
// reading /dev/zero) is killed and fails the test.
func (e *hostileEnv) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, e.bin, args...).CombinedOutput()
	if ctx.Err() != nil {
		e.t.Fatalf("strata %s did not finish in a minute", strings.Join(args, " "))
	}
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
	// Variants of the good tree: each deletes some paths and sets others
	// ("@TARGET" a symlink, a name ending in "/" a directory; $OUT in a
	// value is the outside directory, $RELOUT the same without its
	// leading "/").
	kernelDir := "usr/lib/modules/6.1.0/"
	for _, c := range []struct {
		name string
		del  []string
		set  map[string]string
		msg  string
	}{
		// Before the fix, OUTSIDE/.updated was deleted through etc.
		{"etc symlink out", []string{"usr/etc/hosts"}, map[string]string{"etc": "@$OUT"}, "/etc is a symlink, not a directory"},
		{"usr/etc symlink out", []string{"usr/etc/hosts"}, map[string]string{"usr/etc": "@../../outside"}, "/usr/etc is a symlink, not a directory"},
		{"var symlink out", nil, map[string]string{"var": "@$OUT"}, "/var is a symlink, not a directory"},
		{"sysroot symlink out", nil, map[string]string{"sysroot": "@$OUT"}, "/sysroot is a symlink, not a directory"},
		{"usr/etc a file", []string{"usr/etc/hosts"}, map[string]string{"usr/etc": "not a directory\n"}, "/usr/etc is a regular file, not a directory"},

		// Boot files: a symlink of the tree resolves inside the tree
		// only; before the fix, strata hard-linked the host's file into
		// /boot (the snapshot's nlink catches that) or read /dev/zero
		// forever.
		{"kernel symlink out", nil, map[string]string{kernelDir + "vmlinuz": "@$OUT/vmlinuz"}, "failed to find kernel"},
		{"initramfs symlink out", nil, map[string]string{kernelDir + "initramfs.img": "@$OUT/initrd"}, "/usr/lib/modules/6.1.0/initramfs.img is a symlink that leads to no file inside the tree"},
		{"devicetree relative symlink out", nil, map[string]string{kernelDir + "devicetree": "@" + strings.Repeat("../", 40) + "$RELOUT/initrd"}, "/usr/lib/modules/6.1.0/devicetree is a symlink that leads to no file inside the tree"},
		{"initramfs to /dev/zero", nil, map[string]string{kernelDir + "initramfs.img": "@/dev/zero"}, "initramfs.img is a symlink that leads to no file inside the tree"},
		{"os-release to /dev/zero", nil, map[string]string{"usr/lib/os-release": "@/dev/zero"}, "/usr/lib/os-release is a symlink that leads to no file inside the tree"},
		{"os-release a directory", []string{"usr/lib/os-release"}, map[string]string{"usr/lib/os-release/": ""}, "/usr/lib/os-release is not a regular file"},

		// Names that go into boot entries: a newline would add lines to
		// the entry, after which every admin verb failed on the sysroot.
		{"kernel version with a newline", []string{kernelDir + "vmlinuz", kernelDir + "initramfs.img"}, map[string]string{"usr/lib/modules/6.1.0\ninitrd evil/vmlinuz": "k\n"}, `contains the control character '\n'`},
		{"legacy kernel name with a space", []string{kernelDir + "vmlinuz", kernelDir + "initramfs.img"}, map[string]string{"boot/vmlinuz-6.1 x-" + strings.Repeat("ab", 32): "k\n"}, "contains white space"},
		{"os-release name with a carriage return", nil, map[string]string{"usr/lib/os-release": "ID=x\nPRETTY_NAME=\"Evil\rlinux /evil\"\n"}, "os-release name"},
		{"kargs.d with a newline", nil, map[string]string{"usr/lib/bootc/kargs.d/10-evil.toml": "kargs = [\"quiet\\ninitrd /evil\"]\n"}, `/usr/lib/bootc/kargs.d: kernel argument "quiet\ninitrd /evil"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newHostileEnv(t, bin)
			files := goodTree()
			for _, p := range c.del {
				delete(files, p)
			}
			expand := strings.NewReplacer("$OUT", e.outside, "$RELOUT", e.outside[1:])
			for p, v := range c.set {
				files[p] = expand.Replace(v)
			}
			e.deployFails(e.commit(files), c.msg)
		})
	}
	t.Run("version with a newline", func(t *testing.T) {
		e := newHostileEnv(t, bin)
		e.deployFails(e.commit(goodTree(), "--add-metadata-string=version=1.0\nlinux /evil"), `version "1.0\nlinux /evil"`)
	})
	t.Run("karg with a newline", func(t *testing.T) {
		e := newHostileEnv(t, bin)
		e.deployFails(e.commit(goodTree()), `kernel argument "quiet\ninitrd /evil"`, "--karg=quiet\ninitrd /evil")
		e.deployFails(e.commit(goodTree()), `kernel argument "x\ry"`, "--karg-append=x\ry")
	})
	t.Run("admin kargs with a newline", func(t *testing.T) {
		e := newHostileEnv(t, bin)
		ref := e.commit(goodTree())
		e.ok("admin", "deploy", "--sysroot="+e.sysroot, "--os=testos", ref)
		entries, _ := filepath.Glob(filepath.Join(e.sysroot, "boot/loader/entries/*.conf"))
		out, err := e.run("admin", "kargs", "--sysroot="+e.sysroot, "--append=x\ninitrd /evil")
		if err == nil || strings.Count(out, "\n") != 1 || !strings.Contains(out, `kernel argument "x\ninitrd /evil"`) {
			t.Fatalf("admin kargs --append with a newline: %v\n%s", err, out)
		}
		if after, _ := filepath.Glob(filepath.Join(e.sysroot, "boot/loader/entries/*.conf")); strings.Join(after, " ") != strings.Join(entries, " ") {
			t.Fatalf("entries changed: %v -> %v", entries, after)
		}
		e.ok("admin", "status", "--sysroot="+e.sysroot)
	})
	t.Run("stateroot with a newline", func(t *testing.T) {
		e := newHostileEnv(t, bin)
		out, err := e.run("admin", "os-init", "--sysroot="+e.sysroot, "evil\nos")
		if err == nil || strings.Count(out, "\n") != 1 || !strings.Contains(out, "invalid stateroot name") {
			t.Fatalf("os-init of a name with a newline: %v\n%s", err, out)
		}
	})

	t.Run("good tree deploys", func(t *testing.T) {
		e := newHostileEnv(t, bin)
		files := goodTree()
		// Symlinks inside the tree, relative or absolute, are followed
		// inside it: the kernel in /boot is the tree's.
		files["usr/lib/modules/6.1.0/vmlinuz"] = "@/boot/vmlinuz-6.1.0"
		files["boot/vmlinuz-6.1.0"] = "tree kernel\n"
		files["usr/lib/modules/6.1.0/initramfs.img"] = "@../../../../boot/initrd.img-6.1.0"
		files["boot/initrd.img-6.1.0"] = "tree initramfs\n"
		files["usr/lib/modules/6.1.0/dtb/a.dtb"] = "A"
		files["usr/lib/modules/6.1.0/dtb/sub/b.dtb"] = "B"
		files["usr/lib/modules/6.1.0/dtb/link.dtb"] = "@/usr/lib/modules/6.1.0/dtb/a.dtb"
		ref := e.commit(files)
		before := e.snapshot()
		e.ok("admin", "deploy", "--sysroot="+e.sysroot, "--os=testos", ref)
		if after := e.snapshot(); after != before {
			t.Fatalf("deploy changed the outside directory:\n%s", after)
		}
		for name, want := range map[string]string{"vmlinuz-6.1.0": "tree kernel\n", "initramfs-6.1.0.img": "tree initramfs\n", "dtb/sub/b.dtb": "B", "dtb/link.dtb": "A"} {
			got, err := filepath.Glob(filepath.Join(e.sysroot, "boot/ostree/testos-*", name))
			if err != nil || len(got) != 1 {
				t.Fatalf("%s in /boot: %v %v", name, got, err)
			}
			if data, err := os.ReadFile(got[0]); err != nil || string(data) != want {
				t.Errorf("%s in /boot: %q %v, want %q", name, data, err, want)
			}
		}
		e.ok("admin", "status", "--sysroot="+e.sysroot)
	})
}

// TestHostilePullLocalSource plants FIFOs in a pull-local source (an
// object, a dirtree, the ref, the config): the pull fails at once with
// one error line (before the fix it blocked forever in open) and the
// destination gets no ref.
func TestHostilePullLocalSource(t *testing.T) {
	bin := buildCLI(t)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	tree := filepath.Join(base, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "usr/bin/tool"), []byte("a file\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "--repo=" + src, "--mode=archive"},
		{"commit", "--repo=" + src, "-b", "main", "--tree=dir=" + tree, "-s", "x"},
	} {
		if out, err := exec.Command("ostree", args...).CombinedOutput(); err != nil {
			t.Fatalf("ostree %v: %v\n%s", args, err, out)
		}
	}
	objectOf := func(ext string) string {
		m, _ := filepath.Glob(filepath.Join(src, "objects/*/*."+ext))
		if len(m) == 0 {
			t.Fatalf("no .%s object", ext)
		}
		return strings.TrimPrefix(m[0], src+"/")
	}
	for _, victim := range []string{objectOf("filez"), objectOf("dirtree"), "refs/heads/main", "config"} {
		t.Run(victim, func(t *testing.T) {
			s := filepath.Join(t.TempDir(), "src")
			if out, err := exec.Command("cp", "-a", src, s).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v\n%s", err, out)
			}
			if err := os.Remove(filepath.Join(s, victim)); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mkfifo(filepath.Join(s, victim), 0o644); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "dst")
			e := &hostileEnv{t: t, bin: bin}
			e.ok("init", "--repo="+dst, "--mode=archive")
			out, err := e.run("pull-local", "--repo="+dst, s, "main")
			if err == nil || !strings.HasPrefix(out, "error: ") || strings.Count(out, "\n") != 1 || !strings.Contains(out, "not a regular file") {
				t.Fatalf("pull-local from a source with a FIFO at %s: %v\n%s", victim, err, out)
			}
			if refs, _ := filepath.Glob(filepath.Join(dst, "refs/heads/*")); len(refs) != 0 {
				t.Fatalf("refs written: %v", refs)
			}
		})
	}
}

// TestSIGTERMStopsStrata: SIGTERM (and Ctrl-C) cancel the context every
// long wait and loop checks: a deploy waiting for the sysroot lock ends
// within a second, with "error: interrupted" and no deployment.
func TestSIGTERMStopsStrata(t *testing.T) {
	bin := buildCLI(t)
	e := newHostileEnv(t, bin)
	ref := e.commit(goodTree())
	p := filepath.Join(e.sysroot, "ostree/lock")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		cmd := exec.Command(bin, "admin", "deploy", "--sysroot="+e.sysroot, "--os=testos", ref)
		proc := crashStart(t, cmd)
		proc.waitOutput(t, "Waiting for sysroot lock")
		start := time.Now()
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-proc.done:
			if d := time.Since(start); d > time.Second {
				t.Errorf("%v: strata took %v to stop", sig, d)
			}
			if err == nil || !strings.Contains(proc.output(), "error: interrupted") {
				t.Errorf("%v: %v\n%s", sig, err, proc.output())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%v: strata still running after 10 s", sig)
		}
	}
	if dirs, _ := filepath.Glob(filepath.Join(e.sysroot, "ostree/deploy/testos/deploy/*")); len(dirs) != 0 {
		t.Fatalf("interrupted deploys left %v", dirs)
	}
}
