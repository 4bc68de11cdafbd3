package prepareroot

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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

// TestRunInMountNamespace runs Run for real in a private mount namespace
// (the test re-executes itself) and checks the resulting root.
func TestRunInMountNamespace(t *testing.T) {
	if os.Getenv("PREPAREROOT_CHILD") != "" {
		childRun(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (CI runs as root)")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunInMountNamespace$", "-test.v")
	cmd.Env = append(os.Environ(), "PREPAREROOT_CHILD=1", "PREPAREROOT_DIR="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CHILD-OK") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func childRun(t *testing.T) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""))
	s := filepath.Join(os.Getenv("PREPAREROOT_DIR"), "sysroot")
	must(os.MkdirAll(s, 0o755))
	must(unix.Mount("tmpfs", s, "tmpfs", 0, ""))
	arg := makeSysroot(t, s)
	if _, err := Run(s, Options{Cmdline: "console=ttyS0 ostree=" + arg + " quiet"}); err != nil {
		t.Fatal(err)
	}
	// /usr is read-only.
	if err := os.WriteFile(filepath.Join(s, "usr/x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("writing /usr: %v, want EROFS", err)
	}
	if _, err := os.Stat(filepath.Join(s, "usr/bin/tool")); err != nil {
		t.Fatal(err)
	}
	// /etc is writable.
	must(os.WriteFile(filepath.Join(s, "etc/hostname"), []byte("h"), 0o644))
	// /var is the stateroot's var.
	must(os.WriteFile(filepath.Join(s, "var/data"), []byte("d"), 0o644))
	if _, err := os.Stat(filepath.Join(s, "sysroot/ostree/deploy/demo/var/data")); err != nil {
		t.Fatalf("/var is not the stateroot's: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s, "var/lib")); err != nil {
		t.Fatal(err)
	}
	// The physical root is at /sysroot; the booted mark is in /run.
	if _, err := os.Stat(filepath.Join(s, "sysroot/ostree/boot.1")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s, "run/ostree-booted")); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("CHILD-OK\n")
}

// TestReadonlySysroot: with sysroot.readonly=true the physical root is
// mounted read-only at /sysroot, while /etc stays writable.
func TestReadonlySysroot(t *testing.T) {
	if os.Getenv("PREPAREROOT_CHILD_RO") != "" {
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""))
		s := filepath.Join(os.Getenv("PREPAREROOT_DIR"), "sysroot")
		must(os.MkdirAll(s, 0o755))
		must(unix.Mount("tmpfs", s, "tmpfs", 0, ""))
		arg := makeSysroot(t, s)
		must(os.MkdirAll(filepath.Join(s, "ostree/repo"), 0o755))
		must(os.WriteFile(filepath.Join(s, "ostree/repo/config"), []byte("[core]\nrepo_version=1\nmode=bare\n\n[sysroot]\nreadonly=true\n"), 0o644))
		if _, err := Run(s, Options{Cmdline: "ostree=" + arg}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s, "sysroot/x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Fatalf("writing /sysroot: %v, want EROFS", err)
		}
		must(os.WriteFile(filepath.Join(s, "etc/x"), nil, 0o644))
		os.Stdout.WriteString("CHILD-OK\n")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReadonlySysroot$", "-test.v")
	cmd.Env = append(os.Environ(), "PREPAREROOT_CHILD_RO=1", "PREPAREROOT_DIR="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CHILD-OK") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func TestMissingDeploymentFailsBeforeMounting(t *testing.T) {
	s := t.TempDir()
	makeSysroot(t, s)
	rec := &recorder{}
	_, err := Run(s, Options{Cmdline: "ostree=/ostree/boot.0/demo/nope/0", Mounter: rec})
	if !errors.Is(err, ErrNoDeployment) || len(rec.calls) != 0 {
		t.Fatalf("err %v, %d mounts", err, len(rec.calls))
	}
	if _, err := Run(s, Options{Cmdline: "quiet", Mounter: rec}); !errors.Is(err, ErrNoDeployment) {
		t.Fatalf("no ostree=: %v", err)
	}
}

type recorder struct{ calls []string }

func (r *recorder) Mount(source, target, fstype string, flags uintptr, data string) error {
	r.calls = append(r.calls, source+"->"+target)
	return nil
}
