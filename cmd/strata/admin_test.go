package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// adminFixture builds the CLI and a sysroot with stateroot "testos" and a
// commit of a small OS tree on testos/stable.
type adminFixture struct {
	t       *testing.T
	bin     string
	sysroot string
	tree    string
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	f := &adminFixture{t: t, bin: buildCLI(t), sysroot: filepath.Join(t.TempDir(), "sysroot")}
	if err := os.MkdirAll(f.sysroot, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Deployment directories are immutable, as ostree makes them.
		dirs, _ := filepath.Glob(filepath.Join(f.sysroot, "ostree/deploy/*/deploy/*"))
		for _, d := range dirs {
			clearImmutable(d)
		}
	})
	f.ok("admin", "init-fs", f.sysroot)
	if out := f.ok("admin", "os-init", "--sysroot="+f.sysroot, "testos"); out != "ostree/deploy/testos initialized as OSTree root\n" {
		t.Fatalf("os-init: %q", out)
	}
	f.ok("admin", "status", "--sysroot="+f.sysroot)
	f.tree = t.TempDir()
	files := map[string]string{
		"usr/lib/modules/6.1.0/vmlinuz":       "kernel\n",
		"usr/lib/modules/6.1.0/initramfs.img": "initramfs\n",
		"usr/lib/os-release":                  "ID=testos\nPRETTY_NAME=\"Test OS\"\n",
		"usr/etc/hosts":                       "127.0.0.1 localhost\n",
		"usr/bin/true":                        "v1\n",
	}
	for p, c := range files {
		full := filepath.Join(f.tree, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.commit("1.0", "2024-01-01 00:00:00")
	return f
}

// commit commits the tree (with usr/bin/true changed) at a timestamp.
func (f *adminFixture) commit(version, ts string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.tree, "usr/bin/true"), []byte(version+"\n"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	out, err := exec.Command("ostree", "commit", "--repo="+filepath.Join(f.sysroot, "ostree/repo"), "-b", "testos/stable",
		"--tree=dir="+f.tree, "-s", version, "--add-metadata-string=version="+version, "--timestamp="+ts).CombinedOutput()
	if err != nil {
		f.t.Fatalf("ostree commit: %v\n%s", err, out)
	}
}

func (f *adminFixture) run(env []string, args ...string) (string, error) {
	cmd := exec.Command(f.bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (f *adminFixture) ok(args ...string) string {
	f.t.Helper()
	out, err := f.run(nil, args...)
	if err != nil {
		f.t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// fail runs a command that must fail with a one-line error containing msg.
func (f *adminFixture) fail(msg string, args ...string) {
	f.t.Helper()
	out, err := f.run(nil, args...)
	if err == nil {
		f.t.Fatalf("strata %s succeeded:\n%s", strings.Join(args, " "), out)
	}
	if !strings.HasPrefix(out, "error: ") || strings.Count(out, "\n") != 1 || !strings.Contains(out, msg) {
		f.t.Fatalf("strata %s: want one error line with %q, got:\n%s", strings.Join(args, " "), msg, out)
	}
}

func ostreeOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ostree", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestAdminVerbs(t *testing.T) {
	f := newAdminFixture(t)
	sr := "--sysroot=" + f.sysroot
	if out := f.ok("admin", "status", sr); out != "No deployments.\n" {
		t.Fatalf("status of an empty sysroot: %q", out)
	}
	f.fail("no --os=", "admin", "deploy", sr, "testos/stable")
	f.ok("admin", "deploy", sr, "--os=testos", "--karg=root=/dev/vda1", "testos/stable")
	f.commit("2.0", "2024-01-02 00:00:00")
	f.ok("admin", "deploy", sr, "--os=testos", "testos/stable")
	status := f.ok("admin", "status", sr)
	if want := ostreeOut(t, "admin", "status", sr); status != want {
		t.Fatalf("admin status:\n%s\nostree admin status:\n%s", status, want)
	}
	var doc struct {
		Rollback    *struct{ Version string } `json:"rollback"`
		Deployments []struct {
			Index      int    `json:"index"`
			Version    string `json:"version"`
			KernelArgs string `json:"kernel_args"`
			Date       string `json:"date"`
		} `json:"deployments"`
	}
	if err := json.Unmarshal([]byte(f.ok("status", "--json", sr)), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Deployments) != 2 || doc.Deployments[0].Version != "2.0" || doc.Rollback == nil || doc.Rollback.Version != "1.0" ||
		!strings.HasPrefix(doc.Deployments[0].KernelArgs, "root=/dev/vda1 ostree=") || doc.Deployments[1].Date != "2024-01-01T00:00:00Z" {
		t.Fatalf("status --json: %+v", doc)
	}
	if out := f.ok("status", sr); !strings.Contains(out, "Default:  testos 2.0") || !strings.Contains(out, "Rollback: testos 1.0") {
		t.Fatalf("status:\n%s", out)
	}
	if out := f.ok("admin", "kargs", sr, "--append=quiet", "--replace=root=/dev/vda2"); out != "root=/dev/vda2 quiet\n" {
		t.Fatalf("kargs: %q", out)
	}
	if out := f.ok("admin", "kargs", sr); out != "root=/dev/vda2 quiet\n" {
		t.Fatalf("kargs: %q", out)
	}
	if out := f.ok("admin", "pin", sr, "1"); out != "Deployment 1 is now pinned\n" {
		t.Fatalf("pin: %q", out)
	}
	if out := f.ok("admin", "pin", sr, "1"); out != "Deployment 1 is already pinned\n" {
		t.Fatalf("pin again: %q", out)
	}
	if !strings.Contains(ostreeOut(t, "admin", "status", sr), "Pinned: yes") {
		t.Fatal("ostree does not see the pin")
	}
	f.ok("rollback", sr)
	if out := f.ok("status", "--json", sr); !strings.Contains(out, `"version": "1.0"`) {
		t.Fatal(out)
	}
	json.Unmarshal([]byte(f.ok("status", "--json", sr)), &doc)
	if doc.Deployments[0].Version != "1.0" {
		t.Fatalf("rollback: %+v", doc.Deployments)
	}
	f.ok("admin", "set-default", sr, "1")
	f.fail("out of range deployment index 5", "admin", "undeploy", sr, "5")
	f.fail("invalid index", "admin", "pin", sr, "x")
	if out := f.ok("admin", "undeploy", sr, "1"); !strings.HasPrefix(out, "Deleted deployment ") {
		t.Fatalf("undeploy: %q", out)
	}
	f.ok("admin", "cleanup", sr)
	if want := ostreeOut(t, "admin", "status", sr); f.ok("admin", "status", sr) != want {
		t.Fatalf("after undeploy: ostree says\n%s", want)
	}
	f.fail("no --os= argument", "admin", "config-diff", sr)
	dirs, _ := filepath.Glob(filepath.Join(f.sysroot, "ostree/deploy/testos/deploy/*.0"))
	os.WriteFile(filepath.Join(dirs[0], "etc/hosts"), []byte("edited\n"), 0o644)
	if out := f.ok("admin", "config-diff", sr, "--os=testos"); out != "M    hosts\n" {
		t.Fatalf("config-diff: %q", out)
	}
	f.fail("not booted", "admin", "boot-complete", sr)
	ostreeOut(t, "fsck", "--repo="+filepath.Join(f.sysroot, "ostree/repo"))
}

// TestAdminCrashAt kills deploy at the boot-loader switch and elsewhere
// (STRATA_CRASH_AT) and checks that the sysroot still shows the old
// deployment, and that deploying again succeeds.
func TestAdminCrashAt(t *testing.T) {
	f := newAdminFixture(t)
	f.bin = buildCrashCLI(t)
	sr := "--sysroot=" + f.sysroot
	f.ok("admin", "deploy", sr, "--os=testos", "testos/stable")
	before := f.ok("admin", "status", sr)
	f.commit("2.0", "2024-01-02 00:00:00")
	for _, step := range []string{"sysroot:checkout", "sysroot:publish-deployment", "sysroot:entries", "sysroot:swap"} {
		out, err := f.run([]string{"STRATA_CRASH_AT=" + step}, "admin", "deploy", sr, "--os=testos", "testos/stable")
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("%s: not killed: %v\n%s", step, err, out)
		}
		if got := f.ok("admin", "status", sr); got != before {
			t.Fatalf("after a crash at %s:\n%s\nwant\n%s", step, got, before)
		}
		if got := ostreeOut(t, "admin", "status", sr); got != before {
			t.Fatalf("ostree after a crash at %s:\n%s", step, got)
		}
	}
	f.ok("admin", "deploy", sr, "--os=testos", "testos/stable")
	if got := f.ok("admin", "status", sr); got == before || !strings.Contains(got, "Version: 2.0") {
		t.Fatalf("re-run: %s", got)
	}
	left, _ := filepath.Glob(filepath.Join(f.sysroot, "ostree/deploy/testos/.strata-*"))
	loaders, _ := filepath.Glob(filepath.Join(f.sysroot, "boot/loader.*"))
	if len(left) != 0 || len(loaders) != 1 {
		t.Fatalf("left behind: %v %v", left, loaders)
	}
}

// clearImmutable clears the immutable flag (FS_IMMUTABLE_FL) of a
// directory, so that the test's temporary directory can be removed.
func clearImmutable(dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if flags, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS); err == nil && flags&0x10 != 0 {
		unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, flags&^0x10)
	}
}
