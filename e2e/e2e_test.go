// Package e2e boots real kernels in QEMU (TCG, no KVM) on sysroots written
// by strata and by ostree, and checks what the booted system sees.
package e2e

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-os/strata/internal/demoos"
)

// env is what every boot test needs, built once: a static strata, the
// initramfs, and the demo OS trees.
type env struct {
	dir, strata, initramfs string
	kernel                 *demoos.Kernel
	trees                  map[string]string // version -> tree
}

var (
	envOnce sync.Once
	theEnv  *env
	envErr  error
)

func getEnv(t *testing.T) *env {
	t.Helper()
	envOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-e2e-")
		if err != nil {
			envErr = err
			return
		}
		e := &env{dir: dir, strata: filepath.Join(dir, "strata"), initramfs: filepath.Join(dir, "initramfs.img"), trees: map[string]string{}}
		build := exec.Command("go", "build", "-o", e.strata, "github.com/strata-os/strata/cmd/strata")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			envErr = err
			t.Logf("%s", out)
			return
		}
		if e.kernel, envErr = demoos.FindKernel(); envErr != nil {
			return
		}
		if envErr = demoos.BuildInitramfs(e.initramfs, e.kernel, "/bin/busybox", e.strata); envErr != nil {
			return
		}
		for _, v := range []string{"1", "2"} {
			tree := filepath.Join(dir, "os"+v)
			if envErr = demoos.BuildTree(tree, demoos.Version{ID: v}, e.kernel, "/bin/busybox", e.strata, e.initramfs); envErr != nil {
				return
			}
			e.trees[v] = tree
		}
		theEnv = e
	})
	if envErr != nil {
		t.Fatalf("building the demo OS: %v", envErr)
	}
	return theEnv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if theEnv != nil {
		os.RemoveAll(theEnv.dir)
	}
	os.Exit(code)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// controlDisk makes the second disk whose run.sh the demo OS runs at boot.
func controlDisk(t *testing.T, script string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "ctl.img")
	if err := demoos.MakeDisk(img, 16, dir); err != nil {
		t.Fatal(err)
	}
	return img
}

// bootDefault reads the default BLS entry from the sysroot image, as a
// boot loader would, and boots it with the control disk attached.
func bootDefault(t *testing.T, img, ctl string) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	umount, err := demoos.MountImage(img, mnt)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := demoos.Entries(mnt)
	if err != nil {
		umount()
		t.Fatal(err)
	}
	kernel, initrd, err := demoos.BootFiles(mnt, entries[0], t.TempDir())
	if uerr := umount(); err == nil {
		err = uerr
	}
	if err != nil {
		t.Fatal(err)
	}
	q := demoos.QEMU{Kernel: kernel, Initrd: initrd, Append: entries[0].Options + " quiet", Disks: []string{img, ctl}}
	out, err := q.Run(context.Background())
	if err != nil {
		t.Fatalf("boot: %v\n%s", err, out)
	}
	return out
}

const checkScript = `touch /usr/x 2>/dev/null && echo USR-WRITABLE || echo USR-READONLY
touch /etc/x && echo ETC-WRITABLE
echo data > /var/x && echo VAR-WRITABLE
[ -f /run/ostree-booted ] && echo OSTREE-BOOTED
[ -d /sysroot/ostree/repo ] && echo SYSROOT-VISIBLE
`

func expectLines(t *testing.T, console string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(console, w) {
			t.Errorf("console lacks %q:\n%s", w, console)
		}
	}
}

// TestOstreeDeployedBootsWithStrataPrepareRoot: a sysroot written entirely
// by the real ostree (admin init-fs, os-init, commit, admin deploy) boots
// through strata's prepare-root in the initramfs.
func TestOstreeDeployedBootsWithStrataPrepareRoot(t *testing.T) {
	e := getEnv(t)
	img := filepath.Join(t.TempDir(), "sysroot.img")
	if err := demoos.MakeDisk(img, 600, ""); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	umount, err := demoos.MountImage(img, mnt)
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if err := umount(); err != nil {
				t.Fatal(err)
			}
		}()
		run(t, "ostree", "admin", "init-fs", mnt)
		run(t, "ostree", "admin", "os-init", "demo", "--sysroot="+mnt)
		repo := "--repo=" + filepath.Join(mnt, "ostree/repo")
		run(t, "ostree", repo, "config", "set", "sysroot.bootloader", "none")
		run(t, "ostree", repo, "commit", "-b", "demo", "--tree=dir="+e.trees["1"], "-s", "v1")
		run(t, "ostree", "admin", "deploy", "--sysroot="+mnt, "--os=demo", "demo")
	}()
	out := bootDefault(t, img, controlDisk(t, checkScript))
	expectLines(t, out, "STRATA-BOOTED version=1", "USR-READONLY", "ETC-WRITABLE", "VAR-WRITABLE", "OSTREE-BOOTED", "SYSROOT-VISIBLE", "STRATA-SCRIPT-DONE rc=0")
}

// TestMissingDeploymentFailsClearly: an ostree= that names no deployment
// stops in the initramfs with a message on the console.
func TestMissingDeploymentFailsClearly(t *testing.T) {
	e := getEnv(t)
	img := filepath.Join(t.TempDir(), "sysroot.img")
	if err := demoos.MakeDisk(img, 64, ""); err != nil {
		t.Fatal(err)
	}
	q := demoos.QEMU{Kernel: e.kernel.Image, Initrd: e.initramfs, Append: "ostree=/ostree/boot.1/demo/nope/0 quiet", Disks: []string{img}}
	out, err := q.Run(context.Background())
	if err != nil {
		t.Fatalf("boot: %v\n%s", err, out)
	}
	expectLines(t, out, "STRATA-INITRAMFS: prepare-root failed")
	// One line on the console says why, naming the ostree= argument.
	want := "error: prepare-root: cannot boot: deployment not found: ostree=/ostree/boot.1/demo/nope/0 does not exist under /sysroot"
	found := false
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, want) {
			found = true
		}
	}
	if !found {
		t.Errorf("console lacks a line with %q:\n%s", want, out)
	}
	if strings.Contains(out, "STRATA-BOOTED") {
		t.Error("booted without a deployment")
	}
}

// TestStrataIsStatic: the strata that runs in the initramfs is built with
// CGO_ENABLED=0 and needs no dynamic loader or shared library.
func TestStrataIsStatic(t *testing.T) {
	e := getEnv(t)
	f, err := elf.Open(e.strata)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s has an ELF interpreter: not static", e.strata)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Fatalf("%s needs shared libraries %v", e.strata, libs)
	}
}
