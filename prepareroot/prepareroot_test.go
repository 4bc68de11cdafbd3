package prepareroot

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// makeSysroot lays out a physical root with one deployment, as a deploy
// writes it, and returns the ostree= argument for it.
func makeSysroot(t testing.TB, s string) string {
	t.Helper()
	dep := filepath.Join(s, "ostree/deploy/demo/deploy/abc123.0")
	for _, d := range []string{"usr/bin", "etc", "var", "sysroot", "run", "proc"} {
		if err := os.MkdirAll(filepath.Join(dep, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dep, "usr/bin/tool"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s, "ostree/deploy/demo/var/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s, "ostree/boot.1/demo/bootcsum"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../deploy/demo/deploy/abc123.0", filepath.Join(s, "ostree/boot.1/demo/bootcsum/0")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("boot.1", filepath.Join(s, "ostree/boot.1.1")); err != nil {
		t.Fatal(err)
	}
	return "/ostree/boot.1/demo/bootcsum/0"
}

func TestResolve(t *testing.T) {
	s := t.TempDir()
	arg := makeSysroot(t, s)
	d, err := Resolve(s, arg)
	if err != nil {
		t.Fatal(err)
	}
	if d.OS != "demo" || d.Path != filepath.Join(s, "ostree/deploy/demo/deploy/abc123.0") {
		t.Fatalf("resolved %+v", d)
	}
	// An absolute symlink is taken relative to the sysroot, not the host.
	if err := os.Symlink("/ostree/deploy/demo/deploy/abc123.0", filepath.Join(s, "ostree/boot.1/demo/bootcsum/1")); err != nil {
		t.Fatal(err)
	}
	if d, err := Resolve(s, "/ostree/boot.1/demo/bootcsum/1"); err != nil || d.OS != "demo" {
		t.Fatalf("absolute link: %v %+v", err, d)
	}
	for _, bad := range []string{"", "relative", "/ostree/boot.1/demo/bootcsum/9", "/ostree/boot.1/demo", "/../../etc"} {
		if _, err := Resolve(s, bad); !errors.Is(err, ErrNoDeployment) {
			t.Errorf("Resolve(%q) = %v, want ErrNoDeployment", bad, err)
		}
	}
}

func TestKernelArg(t *testing.T) {
	v, ok := KernelArg("quiet ostree=/ostree/boot.0/x/y/0 rw", "ostree")
	if !ok || v != "/ostree/boot.0/x/y/0" {
		t.Fatalf("got %q %v", v, ok)
	}
	if _, ok := KernelArg("ostreex=1", "ostree"); ok {
		t.Fatal("matched a longer key")
	}
}

// inNamespace re-executes the test binary to run only test in a private
// mount namespace with PREPAREROOT_CHILD set; the child reports CHILD-OK.
func inNamespace(t *testing.T, test string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (CI runs as root)")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), "PREPAREROOT_CHILD=1", "PREPAREROOT_DIR="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CHILD-OK") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func isChild() bool { return os.Getenv("PREPAREROOT_CHILD") != "" }

// childSysroot makes / private in the child's namespace and mounts a
// tmpfs physical root holding one deployment; it returns the sysroot, the
// run directory and the ostree= argument.
func childSysroot(t *testing.T, repoConfig string) (s, run, arg string) {
	t.Helper()
	dir := os.Getenv("PREPAREROOT_DIR")
	mustDo(t, unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""))
	s = filepath.Join(dir, "sysroot")
	mustDo(t, os.MkdirAll(s, 0o755))
	mustDo(t, unix.Mount("tmpfs", s, "tmpfs", 0, ""))
	arg = makeSysroot(t, s)
	if repoConfig != "" {
		mustDo(t, os.MkdirAll(filepath.Join(s, "ostree/repo"), 0o755))
		mustDo(t, os.WriteFile(filepath.Join(s, "ostree/repo/config"), []byte(repoConfig), 0o644))
	}
	return s, filepath.Join(dir, "run"), arg
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mountsUnder lists the mount points below dir in /proc/self/mountinfo,
// relative to dir ("." for dir itself); a point mounted twice appears
// twice.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	mustDo(t, err)
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := strings.ReplaceAll(f[4], `\040`, " ")
		if rel, err := filepath.Rel(dir, mp); err == nil && !strings.HasPrefix(rel, "..") {
			out = append(out, rel)
		}
	}
	return out
}

func writeErr(p string) error { return os.WriteFile(p, []byte("x"), 0o644) }

// TestRunInMountNamespace runs Run for real in a private mount namespace
// and checks the resulting root: read-only /usr, writable /etc, the
// stateroot's /var, the physical root moved (not copied) to /sysroot,
// /boot from the physical root, the ostree-booted mark in the run dir.
func TestRunInMountNamespace(t *testing.T) {
	if !isChild() {
		inNamespace(t, "TestRunInMountNamespace")
		return
	}
	s, run, arg := childSysroot(t, "[core]\nrepo_version=1\nmode=bare\n")
	mustDo(t, os.MkdirAll(filepath.Join(s, "boot/loader.0/entries"), 0o755))
	mustDo(t, os.Symlink("loader.0", filepath.Join(s, "boot/loader")))
	mustDo(t, os.MkdirAll(filepath.Join(s, "ostree/deploy/demo/deploy/abc123.0/boot"), 0o755))
	d, err := Run(s, Options{Cmdline: "console=ttyS0 ostree=" + arg + " quiet", RunDir: run})
	mustDo(t, err)
	if d.OS != "demo" {
		t.Fatalf("deployment %+v", d)
	}
	if err := writeErr(filepath.Join(s, "usr/x")); !errors.Is(err, unix.EROFS) {
		t.Fatalf("writing /usr: %v, want EROFS", err)
	}
	if _, err := os.Stat(filepath.Join(s, "usr/bin/tool")); err != nil {
		t.Fatal(err)
	}
	mustDo(t, writeErr(filepath.Join(s, "etc/hostname")))
	mustDo(t, writeErr(filepath.Join(s, "var/data")))
	if _, err := os.Stat(filepath.Join(s, "sysroot/ostree/deploy/demo/var/data")); err != nil {
		t.Fatalf("/var is not the stateroot's: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s, "var/lib")); err != nil {
		t.Fatal(err)
	}
	// The physical root is writable at /sysroot (no readonly config).
	mustDo(t, writeErr(filepath.Join(s, "sysroot/x")))
	if _, err := os.Stat(filepath.Join(s, "boot/loader/entries")); err != nil {
		t.Fatalf("/boot is not the physical root's: %v", err)
	}
	if _, err := os.Stat(filepath.Join(run, "ostree-booted")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(run, "ostree-sysroot-ro.stamp")); err == nil {
		t.Fatal("read-only stamp without sysroot.readonly")
	}
	if _, err := os.Stat(s + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s.tmp left behind: %v", s, err)
	}
	// The physical root was moved, so each point is mounted exactly once.
	mounts := mountsUnder(t, s)
	sort.Strings(mounts)
	got := strings.Join(mounts, " ")
	if want := ". boot sysroot usr var"; got != want {
		t.Fatalf("mounts under the sysroot: %q, want %q", got, want)
	}
	os.Stdout.WriteString("CHILD-OK\n")
}

// TestReadonlySysroot: with sysroot.readonly=true the physical root is
// read-only at /sysroot, while /etc, /var and the stateroot's var seen
// through /sysroot stay writable, and the read-only stamp is written.
func TestReadonlySysroot(t *testing.T) {
	if !isChild() {
		inNamespace(t, "TestReadonlySysroot")
		return
	}
	s, run, arg := childSysroot(t, "[core]\nrepo_version=1\nmode=bare\n\n[sysroot]\nreadonly=true\n")
	_, err := Run(s, Options{Cmdline: "ostree=" + arg, RunDir: run})
	mustDo(t, err)
	for _, p := range []string{"sysroot/x", "sysroot/ostree/x", "usr/x"} {
		if err := writeErr(filepath.Join(s, p)); !errors.Is(err, unix.EROFS) {
			t.Fatalf("writing %s: %v, want EROFS", p, err)
		}
	}
	for _, p := range []string{"etc/x", "var/x", "sysroot/ostree/deploy/demo/var/y"} {
		mustDo(t, writeErr(filepath.Join(s, p)))
	}
	if _, err := os.Stat(filepath.Join(run, "ostree-sysroot-ro.stamp")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(run, "ostree-booted")); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("CHILD-OK\n")
}

// TestReadonlySysrootNeedsWritableMount: as ostree-prepare-root, a
// read-only configuration on a sysroot that is already mounted read-only
// is refused before anything is mounted.
func TestReadonlySysrootNeedsWritableMount(t *testing.T) {
	if !isChild() {
		inNamespace(t, "TestReadonlySysrootNeedsWritableMount")
		return
	}
	s, run, arg := childSysroot(t, "[sysroot]\nreadonly=true\n")
	mustDo(t, unix.Mount("", s, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""))
	before := mountsUnder(t, s)
	_, err := Run(s, Options{Cmdline: "ostree=" + arg, RunDir: run})
	if err == nil || !strings.Contains(err.Error(), "sysroot.readonly=true requires") {
		t.Fatalf("got %v", err)
	}
	if after := mountsUnder(t, s); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Fatalf("mounts changed: %v -> %v", before, after)
	}
	os.Stdout.WriteString("CHILD-OK\n")
}

func TestReadonlySysrootConfig(t *testing.T) {
	for _, c := range []struct {
		name, config string
		want, err    bool
	}{
		{"no config", "", false, false},
		{"no key", "[core]\nmode=bare\n", false, false},
		{"true", "[core]\nmode=bare\n\n[sysroot]\nreadonly=true\n", true, false},
		{"one", "[sysroot]\nreadonly = 1\n", true, false},
		{"false", "[sysroot]\nreadonly=false\n", false, false},
		{"other group", "[core]\nreadonly=true\n", false, false},
		{"invalid", "[sysroot]\nreadonly=yes\n", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := t.TempDir()
			if c.config != "" {
				mustDo(t, os.MkdirAll(filepath.Join(s, "ostree/repo"), 0o755))
				mustDo(t, os.WriteFile(filepath.Join(s, "ostree/repo/config"), []byte(c.config), 0o644))
			}
			got, err := ReadonlySysroot(s)
			if got != c.want || (err != nil) != c.err {
				t.Fatalf("got %v, %v; want %v, error %v", got, err, c.want, c.err)
			}
		})
	}
}

// TestMissingDeploymentFailsBeforeMounting: every way ostree= can miss
// gives ErrNoDeployment in one line naming the argument, with no mount.
func TestMissingDeploymentFailsBeforeMounting(t *testing.T) {
	s := t.TempDir()
	makeSysroot(t, s)
	for _, cmdline := range []string{"ostree=/ostree/boot.0/demo/nope/0", "ostree=/ostree/boot.1/demo/bootcsum/7", "ostree=/ostree/boot.1/demo", "quiet", "ostree=relative/0"} {
		rec := &recorder{}
		_, err := Run(s, Options{Cmdline: cmdline, Mounter: rec, RunDir: filepath.Join(s, "run")})
		if !errors.Is(err, ErrNoDeployment) || len(rec.calls) != 0 {
			t.Fatalf("%s: err %v, %d mounts", cmdline, err, len(rec.calls))
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Errorf("%s: message is not one line: %q", cmdline, msg)
		}
		if v, ok := KernelArg(cmdline, "ostree"); ok && !strings.Contains(msg, v) {
			t.Errorf("%s: message %q does not name the argument", cmdline, msg)
		}
		if _, err := os.Stat(filepath.Join(s, "run")); err == nil {
			t.Fatalf("%s: run dir written", cmdline)
		}
	}
}

type recorder struct{ calls []string }

func (r *recorder) Mount(source, target, fstype string, flags uintptr, data string) error {
	r.calls = append(r.calls, source+"->"+target)
	return nil
}
