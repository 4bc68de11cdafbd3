// Package e2e boots real kernels in QEMU (TCG, no KVM) on sysroots written
// by strata and by ostree, and checks what the booted system sees. Every
// test runs in parallel with the others, up to go test's -parallel
// (GOMAXPROCS by default: two guests at a time on the 2-core machine);
// the lab (static strata, initramfs images, OS trees) is built once for
// the whole package.
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
	"time"

	"github.com/strata-os/strata/internal/demoos"
	"github.com/strata-os/strata/sysroot"
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
	v2       = demoos.Version{ID: "2"}
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

// deployer writes the sysroots of the tests of strata's deployments.
var deployer = demoos.ToolStrata

// crashSteps returns the deploy's failpoints the power-cut test stops
// at: with n cuts, 8 key steps (before and after the deployment is
// published, around the switch) and the instant after the deploy
// returned, or, for a soak of at least 50 cuts, every step of
// sysroot.Steps that a deploy passes and that instant.
func crashSteps(n int) []string {
	if n < 50 {
		return []string{"sysroot:checkout", "sysroot:etc-merge", "sysroot:syncfs-deployment", "sysroot:publish-deployment",
			"sysroot:origin", "sysroot:entries", "sysroot:swap", "sysroot:prune", demoos.AfterDeploy}
	}
	var steps []string
	for _, s := range sysroot.Steps {
		switch s {
		case "sysroot:init-fs", "sysroot:os-init", "sysroot:stage-state", "sysroot:unstage", "sysroot:boot-complete":
			continue
		}
		steps = append(steps, s)
	}
	return append(steps, demoos.AfterDeploy)
}

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
	t.Parallel()
	l := lab(t)
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "sysroot.img")
	if err := l.NewSysroot(ctx, img, 300, deployer); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CommitDeploy(ctx, img, deployer, v1, demoos.StrataPrepareRoot); err != nil {
		t.Fatal(err)
	}
	// v1 boots and marks its entry good.
	r := boot(t, img, demoos.BootOptions{})
	expectVersion(t, r, "1")
	expectLines(t, r, "STRATA-BOOT-COMPLETE")
	if _, err := l.CommitDeploy(ctx, img, deployer, v2broken, demoos.StrataPrepareRoot); err != nil {
		t.Fatal(err)
	}
	t.Logf("entries after deploying the broken v2: %v", entryNames(t, img))
	for try := 1; try <= 3; try++ {
		r := boot(t, img, demoos.BootOptions{})
		expectVersion(t, r, "2")
		expectLines(t, r, "STRATA-INIT-FAILED")
		if want := fmt.Sprintf("+%d-%d.conf", 3-try, try); !strings.HasSuffix(r.Boot.Renamed, want) {
			t.Fatalf("try %d: entry renamed to %q, want *%s", try, r.Boot.Renamed, want)
		}
	}
	r = boot(t, img, demoos.BootOptions{Script: "strata status && echo STATUS-OK\n"})
	expectVersion(t, r, "1")
	expectLines(t, r, "STRATA-BOOT-COMPLETE", "STATUS-OK")
	if !r.Boot.Entries[len(r.Boot.Entries)-1].Bad() {
		t.Fatalf("the broken entry does not sort last: %v", entryNames(t, img))
	}
}

// updateDisk makes a control-disk directory holding an archive repo with
// version v on demoos.Ref: the update medium of a guest without network.
func updateDisk(t *testing.T, v demoos.Version) string {
	t.Helper()
	l := lab(t)
	ctx := context.Background()
	dir := t.TempDir()
	repoPath := filepath.Join(dir, "repo")
	if _, err := l.Command(ctx, l.Strata, "--repo="+repoPath, "init", "--mode=archive"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit(ctx, demoos.ToolStrata, repoPath, demoos.Ref, v, demoos.StrataPrepareRoot); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestUpgradeAndRollbackFromGuest: inside the booted v1, local /etc
// edits and /var data are made, v2 is pulled from a repo on a second
// disk and deployed; the next boot is v2 with the local changes kept and
// untouched /etc files at v2's defaults; `strata rollback` makes the
// boot after that v1 again, with /var still there.
func TestUpgradeAndRollbackFromGuest(t *testing.T) {
	t.Parallel()
	l := lab(t)
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "sysroot.img")
	if err := l.NewSysroot(ctx, img, 400, demoos.ToolStrata); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CommitDeploy(ctx, img, demoos.ToolStrata, v1, demoos.StrataPrepareRoot); err != nil {
		t.Fatal(err)
	}
	r := boot(t, img, demoos.BootOptions{CtlDir: updateDisk(t, v2), Script: checkScript + `
echo my-device > /etc/hostname
echo answer=42 > /etc/local.conf
mkdir -p /var/lib/demo && echo kept > /var/lib/demo/data
strata pull-local /run/ctl/repo ` + demoos.Ref + ` && echo PULLED
strata admin deploy --os=demo ` + demoos.Ref + ` && echo DEPLOYED
strata status && echo STATUS-OK
`})
	expectVersion(t, r, "1")
	expectLines(t, r, "STRATA-BOOT-COMPLETE", "USR-READONLY", "ETC-WRITABLE", "VAR-WRITABLE", "VAR-IS-STATEROOT", "OSTREE-BOOTED", "PULLED", "DEPLOYED", "STATUS-OK", "STRATA-SCRIPT-DONE rc=0")

	r = boot(t, img, demoos.BootOptions{Script: `echo "HOSTNAME=$(cat /etc/hostname)"
echo "LOCAL=$(cat /etc/local.conf)"
echo "MOTD=$(cat /etc/motd)"
echo "DATA=$(cat /var/lib/demo/data)"
touch /usr/x 2>/dev/null || echo USR-READONLY
strata status && echo STATUS-OK
strata rollback && echo ROLLED-BACK
`})
	expectVersion(t, r, "2")
	expectLines(t, r, "STRATA-BOOT-COMPLETE", "HOSTNAME=my-device", "LOCAL=answer=42", "MOTD=strata demo OS version 2", "DATA=kept", "USR-READONLY", "STATUS-OK", "ROLLED-BACK")

	r = boot(t, img, demoos.BootOptions{Script: `echo "HOSTNAME=$(cat /etc/hostname)"
echo "DATA=$(cat /var/lib/demo/data)"
strata status && echo STATUS-OK
strata fsck >/dev/null && echo FSCK-OK
`})
	expectVersion(t, r, "1")
	expectLines(t, r, "HOSTNAME=my-device", "DATA=kept", "STATUS-OK", "FSCK-OK")
}

// TestPowerCut cuts the power while the guest deploys an update: first at
// each durable step of the deploy (STRATA_CRASH_AT, then a power-off
// without sync), then at random instants. After every cut the system
// must boot the old or the new version with clean fsck and status, and
// deploy again. STRATA_POWERCUTS sets the number of cuts (default 20;
// `make soak` runs 100).
func TestPowerCut(t *testing.T) {
	t.Parallel()
	l := lab(t)
	n := 20
	if s := os.Getenv("STRATA_POWERCUTS"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			t.Fatalf("STRATA_POWERCUTS=%q: want a positive number", s)
		}
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rep, err := l.PowerCuts(context.Background(), demoos.PowerCutOptions{
		Cuts: n, CrashSteps: crashSteps(n), Seed: seed, Log: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("power cuts survived: %d of %d (an uninterrupted deploy takes %s)", rep.Survived, n, rep.Deploy.Round(time.Millisecond))
	for _, o := range rep.Outcomes {
		if strings.Contains(o.How, "step not reached") && n < 50 {
			t.Errorf("cut %d: %s: the deploy never reached this failpoint", o.N, o.How)
		}
	}
	if rep.Survived != n {
		t.Fatalf("survived %d of %d power cuts", rep.Survived, n)
	}
}

// testWriter sends lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
