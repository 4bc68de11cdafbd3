// Package e2e boots real kernels in QEMU (TCG, no KVM) on sysroots written
// by strata and by ostree, and checks what the booted system sees. Boots
// run one at a time (the machine is small); the lab (static strata,
// initramfs images, OS trees) is built once for the whole package.
package e2e

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-os/strata/internal/demoos"
)

var (
	labOnce sync.Once
	theLab  *demoos.Lab
	labErr  error
	labDir  string
)

// lab returns the shared lab, building it on first use.
func lab(t *testing.T) *demoos.Lab {
	t.Helper()
	labOnce.Do(func() {
		labDir, labErr = os.MkdirTemp("", "strata-e2e-")
		if labErr != nil {
			return
		}
		theLab, labErr = demoos.NewLab(context.Background(), labDir)
	})
	if labErr != nil {
		t.Fatalf("building the lab: %v", labErr)
	}
	return theLab
}

func TestMain(m *testing.M) {
	code := m.Run()
	if labDir != "" {
		os.RemoveAll(labDir)
	}
	os.Exit(code)
}

var (
	v1       = demoos.Version{ID: "1"}
	v2broken = demoos.Version{ID: "2", Broken: true}
)

// boot boots img once and fails the test when the boot does not end with
// a power-off (or the asked-for cut); the console goes to the test log on
// failure.
func boot(t *testing.T, img string, o demoos.BootOptions) *demoos.BootResult {
	t.Helper()
	r, err := lab(t).Boot(context.Background(), img, o)
	if err != nil {
		if r != nil {
			t.Logf("console:\n%s", r.Console)
		}
		t.Fatalf("boot: %v", err)
	}
	return r
}

func expectLines(t *testing.T, r *demoos.BootResult, want ...string) {
	t.Helper()
	for _, w := range want {
		if !r.Has(w) {
			t.Errorf("console lacks %q:\n%s", w, r.Console)
		}
	}
}

func expectVersion(t *testing.T, r *demoos.BootResult, want string) {
	t.Helper()
	if got := r.BootedVersion(); got != want {
		t.Fatalf("booted version %q (entry %s), want %q:\n%s", got, r.Boot.Entry.File, want, r.Console)
	}
}

// checkScript checks, inside the booted system, the mounts prepare-root
// made.
const checkScript = `touch /usr/x 2>/dev/null && echo USR-WRITABLE || echo USR-READONLY
touch /etc/x && echo ETC-WRITABLE
echo data > /var/x && echo VAR-WRITABLE
[ -f /sysroot/ostree/deploy/demo/var/x ] && echo VAR-IS-STATEROOT
[ -f /run/ostree-booted ] && echo OSTREE-BOOTED
[ -d /sysroot/ostree/repo ] && echo SYSROOT-VISIBLE
touch /sysroot/x 2>/dev/null && echo SYSROOT-WRITABLE || echo SYSROOT-READONLY
[ -d /boot/loader/entries ] && echo BOOT-VISIBLE
`

// TestOstreeDeployedBootsWithStrataPrepareRoot: a sysroot written
// entirely by the real ostree (admin init-fs, os-init, commit, admin
// deploy) boots through strata's prepare-root in the initramfs; then,
// with sysroot.readonly=true set by ostree, /sysroot is read-only while
// /etc and /var stay writable.
func TestOstreeDeployedBootsWithStrataPrepareRoot(t *testing.T) {
	l := lab(t)
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "sysroot.img")
	if err := l.NewSysroot(ctx, img, 300, demoos.ToolOstree); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CommitDeploy(ctx, img, demoos.ToolOstree, v1, demoos.StrataPrepareRoot); err != nil {
		t.Fatal(err)
	}
	r := boot(t, img, demoos.BootOptions{Script: checkScript})
	expectVersion(t, r, "1")
	expectLines(t, r, "running strata prepare-root", "USR-READONLY", "ETC-WRITABLE", "VAR-WRITABLE", "VAR-IS-STATEROOT", "OSTREE-BOOTED", "SYSROOT-VISIBLE", "SYSROOT-WRITABLE", "BOOT-VISIBLE", "STRATA-SCRIPT-DONE rc=0")

	t.Run("readonly", func(t *testing.T) {
		err := l.Mounted(img, func(mnt string) error {
			_, err := l.Command(ctx, "ostree", "--repo="+filepath.Join(mnt, "ostree/repo"), "config", "set", "sysroot.readonly", "true")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		r := boot(t, img, demoos.BootOptions{Script: checkScript + "touch /sysroot/ostree/deploy/demo/var/y && echo STATEROOT-VAR-WRITABLE\n"})
		expectVersion(t, r, "1")
		expectLines(t, r, "USR-READONLY", "ETC-WRITABLE", "VAR-WRITABLE", "SYSROOT-READONLY", "STATEROOT-VAR-WRITABLE", "OSTREE-BOOTED", "STRATA-SCRIPT-DONE rc=0")
	})
}

// TestMissingDeploymentFailsClearly: an ostree= that names no deployment
// stops in the initramfs with one line on the console that says why.
func TestMissingDeploymentFailsClearly(t *testing.T) {
	l := lab(t)
	initrd, err := l.Initramfs(demoos.StrataPrepareRoot)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "sysroot.img")
	if err := demoos.MakeDisk(img, 64, ""); err != nil {
		t.Fatal(err)
	}
	q := demoos.QEMU{Kernel: l.Kernel.Image, Initrd: initrd, Append: "ostree=/ostree/boot.1/demo/nope/0 quiet", Disks: []string{img}}
	r, err := q.Run(context.Background())
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	if !r.Has("STRATA-INITRAMFS: prepare-root failed") || r.Has("STRATA-BOOTED") {
		t.Fatalf("expected a failed prepare-root and no boot:\n%s", r.Console)
	}
	want := "error: prepare-root: cannot boot: deployment not found: ostree=/ostree/boot.1/demo/nope/0 does not exist under /sysroot (/ostree: no such file or directory)"
	if !r.Has(want) {
		t.Errorf("console lacks the line %q:\n%s", want, r.Console)
	}
}

// TestStrataIsStatic: the strata that runs in the initramfs is built with
// CGO_ENABLED=0 and needs no dynamic loader or shared library.
func TestStrataIsStatic(t *testing.T) {
	l := lab(t)
	f, err := elf.Open(l.Strata)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s has an ELF interpreter: not static", l.Strata)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Fatalf("%s needs shared libraries %v", l.Strata, libs)
	}
}

// TestDeployedBootsWithOstreePrepareRoot: a deployment boots through
// OSTree's own ostree-prepare-root (Debian's ostree-boot, dynamically
// linked, copied into the initramfs with its libraries).
func TestDeployedBootsWithOstreePrepareRoot(t *testing.T) {
	l := lab(t)
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "sysroot.img")
	if err := l.NewSysroot(ctx, img, 300, deployer); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CommitDeploy(ctx, img, deployer, v1, demoos.OstreePrepareRoot); err != nil {
		t.Fatal(err)
	}
	r := boot(t, img, demoos.BootOptions{Script: checkScript})
	expectVersion(t, r, "1")
	expectLines(t, r, "running ostree-prepare-root", "USR-READONLY", "ETC-WRITABLE", "VAR-WRITABLE", "VAR-IS-STATEROOT", "OSTREE-BOOTED", "SYSROOT-VISIBLE", "STRATA-SCRIPT-DONE rc=0")
}

// deployer writes the sysroots of the tests that stand for strata's
// deployments.
var deployer = demoos.ToolOstree

// entryNames lists the BLS entry files of a sysroot image.
func entryNames(t *testing.T, img string) []string {
	t.Helper()
	var names []string
	err := lab(t).Mounted(img, func(mnt string) error {
		es, err := os.ReadDir(filepath.Join(mnt, "boot/loader/entries"))
		for _, e := range es {
			names = append(names, e.Name())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestBootCountingFallsBack: a new version whose init fails never reaches
// boot-complete; the loader counts its tries down (+3, +2-1, +1-2, +0-3)
// and then boots the previous version.
func TestBootCountingFallsBack(t *testing.T) {
	l := lab(t)
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "sysroot.img")
	if err := l.NewSysroot(ctx, img, 300, deployer); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CommitDeploy(ctx, img, deployer, v1, demoos.StrataPrepareRoot); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CommitDeploy(ctx, img, deployer, v2broken, demoos.StrataPrepareRoot); err != nil {
		t.Fatal(err)
	}
	if deployer == demoos.ToolOstree {
		countNewest(t, img, 3)
	}
	for try := 1; try <= 3; try++ {
		r := boot(t, img, demoos.BootOptions{})
		expectVersion(t, r, "2")
		expectLines(t, r, "STRATA-INIT-FAILED")
		if want := fmt.Sprintf("+%d-%d.conf", 3-try, try); !strings.HasSuffix(r.Boot.Renamed, want) {
			t.Fatalf("try %d: entry renamed to %q, want *%s", try, r.Boot.Renamed, want)
		}
	}
	r := boot(t, img, demoos.BootOptions{Script: "strata status\n"})
	expectVersion(t, r, "1")
	if !r.Boot.Entries[len(r.Boot.Entries)-1].Bad() {
		t.Fatalf("the broken entry does not sort last: %v", entryNames(t, img))
	}
}

// countNewest gives the default (highest version) entry of an image a
// boot counter of n tries, as strata's deploy names new entries; it
// stands in while ostree writes the sysroot.
func countNewest(t *testing.T, img string, n int) {
	t.Helper()
	err := lab(t).Mounted(img, func(mnt string) error {
		es, err := demoos.Entries(mnt)
		if err != nil {
			return err
		}
		dir := filepath.Join(mnt, "boot/loader/entries")
		return os.Rename(filepath.Join(dir, es[0].File), filepath.Join(dir, fmt.Sprintf("%s+%d.conf", strings.TrimSuffix(es[0].File, ".conf"), n)))
	})
	if err != nil {
		t.Fatal(err)
	}
}
