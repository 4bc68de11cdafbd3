package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/demoos"
	"github.com/strata-os/strata/internal/testos"
)

// The Debian end-to-end tests boot the composed test OS (internal/testos:
// Debian 12 with systemd, built by strata compose) from a disk written by
// `strata install to-disk`, through the real boot loaders, under QEMU.
// The test OS's agent (strata-e2e.service) reports the booted version on
// the console and runs the control disk's run.sh; updates reach the guest
// on a read-only third disk (/dev/vdc) holding an archive repository with
// the ref e2e/os.

// debianRef is the branch v2 and v3 are committed on (their ref
// binding), which the update disks carry.
const debianRef = "testos/e2e"

// failingCheck is the required health check v3 carries, which fails.
const failingCheck = "/usr/lib/greenboot/check/required.d/50-e2e-fails.sh"

type debianOS struct {
	v1, v2, v3 *testos.Image
	mu         sync.Mutex
	updates    map[string]string // version -> update disk image
	dir        string
}

var (
	debOnce sync.Once
	deb     *debianOS
	debErr  error
)

// debian composes (or takes from the cache) the test OS v1, and v2 and v3
// derived from it: v2 changes nothing but its version, v3 adds a required
// health check that fails.
func debian(t *testing.T) *debianOS {
	t.Helper()
	lab(t)
	debOnce.Do(func() {
		ctx := context.Background()
		o := testos.Options{}
		od := testos.Options{Branch: debianRef}
		d := &debianOS{updates: map[string]string{}, dir: filepath.Join(labDir, "debian")}
		if debErr = os.MkdirAll(d.dir, 0o755); debErr != nil {
			return
		}
		start := time.Now()
		if d.v1, debErr = testos.Get(ctx, o); debErr != nil {
			return
		}
		if d.v2, debErr = testos.Derive(ctx, d.v1, "testos", "2", "", od); debErr != nil {
			return
		}
		if d.v3, debErr = testos.Derive(ctx, d.v2, "testos", "3", `[[files]]
path = "`+failingCheck+`"
mode = "0755"
content = "#!/bin/sh\necho 'e2e: this check fails on purpose' >&2\nexit 1\n"
`, od); debErr != nil {
			return
		}
		t.Logf("test OS v1 %s, v2 %s, v3 %s in %.0fs", d.v1.Commit[:12], d.v2.Commit[:12], d.v3.Commit[:12], time.Since(start).Seconds())
		deb = d
	})
	if debErr != nil {
		t.Fatalf("composing the Debian test OS: %v", debErr)
	}
	return deb
}

func (d *debianOS) image(version string) *testos.Image {
	switch version {
	case "1":
		return d.v1
	case "2":
		return d.v2
	case "3":
		return d.v3
	}
	panic("no test OS version " + version)
}

// updateDisk returns an ext4 image holding an archive repository (repo/)
// whose ref testos/e2e is the given version: the update medium of a guest
// without network. Made once per version and shared read-only.
func (d *debianOS) updateDisk(t *testing.T, version string) string {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.updates[version]; ok {
		return p
	}
	l := lab(t)
	ctx := context.Background()
	img := d.image(version)
	src := filepath.Join(d.dir, "update-"+version)
	repoPath := filepath.Join(src, "repo")
	for _, args := range [][]string{
		{"--repo=" + repoPath, "init", "--mode=archive"},
		{"--repo=" + repoPath, "pull-local", img.Repo, img.Commit},
		{"--repo=" + repoPath, "refs", "--force", "--create=" + debianRef, img.Commit},
	} {
		if out, err := l.Command(ctx, l.Strata, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	size, err := dirSize(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d.dir, "update-"+version+".img")
	if err := demoos.MakeDisk(p, int(size>>20)*5/4+64, src); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(src); err != nil {
		t.Fatal(err)
	}
	d.updates[version] = p
	return p
}

func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	return total, err
}

// install writes v1 with `strata install to-disk` onto a new image file
// with the given loader; for systemd-boot it also makes the machine's
// UEFI variable store.
func (d *debianOS) install(t *testing.T, loader string) (img, vars string) {
	t.Helper()
	l := lab(t)
	dir := t.TempDir()
	img = filepath.Join(dir, "disk.img")
	start := time.Now()
	out, err := l.Command(context.Background(), l.Strata, "--repo="+d.v1.Repo, "install", "to-disk", img,
		"--source="+d.v1.Ref, "--bootloader="+loader, "--size=4294967296", "--karg=panic=-1")
	if err != nil {
		t.Fatalf("install to-disk: %v\n%s", err, out)
	}
	t.Logf("install to-disk (%s) in %.1fs:\n%s", loader, time.Since(start).Seconds(), out)
	if loader == "systemd-boot" {
		vars = filepath.Join(dir, "OVMF_VARS.fd")
		data, err := os.ReadFile(demoos.OVMFVarsTemplate)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vars, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return img, vars
}

// debBoot is one boot of an installed Debian disk.
type debBoot struct {
	firmware, vars string
	script         string // run.sh on the control disk (/dev/vdb)
	update         string // update disk (/dev/vdc), read-only
}

func bootDebian(t *testing.T, img string, b debBoot) *demoos.Result {
	t.Helper()
	l := lab(t)
	dir := t.TempDir()
	ctl := filepath.Join(dir, "ctl")
	if err := os.MkdirAll(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	disks := []string{img}
	var ro []string
	if b.script != "" || b.update != "" {
		if err := os.WriteFile(filepath.Join(ctl, "run.sh"), []byte("set -x\n"+b.script), 0o755); err != nil {
			t.Fatal(err)
		}
		ctlImg := filepath.Join(dir, "ctl.img")
		if err := demoos.MakeDisk(ctlImg, 16, ctl); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, ctlImg)
		if b.update != "" {
			ro = append(ro, b.update)
		}
	}
	q := demoos.QEMU{Disks: disks, ReadOnlyDisks: ro, Timeout: 12 * time.Minute, MemoryMB: 1024,
		Console: l.Console, Firmware: b.firmware, OVMFVars: b.vars}
	r, err := q.Run(context.Background())
	if err != nil {
		if r != nil {
			t.Logf("console:\n%s", r.Console)
		}
		t.Fatalf("boot: %v", err)
	}
	t.Logf("boot: version %q in %.0fs", r.BootedVersion(), r.Elapsed.Seconds())
	return r
}

func expectDebian(t *testing.T, r *demoos.Result, version string, want ...string) {
	t.Helper()
	if got := r.BootedVersion(); got != version {
		t.Fatalf("booted version %q, want %q; console:\n%s", got, version, r.Console)
	}
	var missing []string
	for _, w := range want {
		if !r.Has(w) {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("console lacks %q:\n%s", missing, r.Console)
	}
}

// stageScript pulls the update disk's e2e/os and stages it; the agent's
// power-off then finalizes it (strata-finalize-staged.service).
const stageScript = `mkdir -p /run/update && mount -o ro /dev/vdc /run/update
strata remote add --if-not-exists --no-gpg-verify e2e file:///run/update/repo
strata pull e2e ` + debianRef + ` && echo PULLED
strata admin deploy --stage e2e:` + debianRef + ` && echo STAGED
systemctl is-active strata-finalize-staged.service | sed 's/^/FINALIZE-UNIT=/'
strata status
`

// testDebianLoader: the composed Debian installed by install to-disk
// boots through the real loader with systemd as init (/usr read-only,
// the entry blessed); v2, staged in the guest, is finalized at shutdown
// and boots with the local /etc and /var kept; strata upgrade (following
// the origin e2e:testos/e2e) stages v3, whose required health
// check fails, boots once, is marked bad and the machine is back on v2
// after one reboot, where strata status names the check.
func testDebianLoader(t *testing.T, loader, firmware string) {
	d := debian(t)
	img, vars := d.install(t, loader)
	r := bootDebian(t, img, debBoot{firmware: firmware, vars: vars, update: d.updateDisk(t, "2"), script: `
echo "HOSTNAME-BEFORE=$(cat /etc/hostname)"
echo my-device > /etc/hostname
mkdir -p /var/lib/e2e && echo kept > /var/lib/e2e/data
` + stageScript})
	expectDebian(t, r, "1", "STRATA-USR-READONLY", "STRATA-HEALTH=active", "PULLED", "STAGED", "FINALIZE-UNIT=active", "STRATA-SCRIPT-DONE rc=0")
	if loader == "systemd-boot" {
		t.Logf("ESP entries after staging v2: %v", espEntries(t, img))
	}

	r = bootDebian(t, img, debBoot{firmware: firmware, vars: vars, update: d.updateDisk(t, "3"), script: `
echo "HOSTNAME=$(cat /etc/hostname)"
echo "DATA=$(cat /var/lib/e2e/data)"
mkdir -p /run/update && mount -o ro /dev/vdc /run/update
strata upgrade && echo UPGRADED
strata status
`})
	expectDebian(t, r, "2", "STRATA-USR-READONLY", "STRATA-HEALTH=active", "HOSTNAME=my-device", "DATA=kept", "UPGRADED", "STRATA-SCRIPT-DONE rc=0")
	if loader == "systemd-boot" {
		names := strings.Join(espEntries(t, img), " ")
		t.Logf("ESP entries after staging v3: %s", names)
	}

	// v3: its required check fails; the health unit marks the entry bad
	// and reboots at once (QEMU runs with -no-reboot: the boot ends).
	r = bootDebian(t, img, debBoot{firmware: firmware, vars: vars})
	if !r.Has("required check " + failingCheck + " failed") {
		t.Fatalf("v3's boot did not fail its health check:\n%s", r.Console)
	}
	if r.Has("STRATA-SCRIPT-DONE") {
		t.Fatalf("v3's boot ran the test agent; the health check should have rebooted first:\n%s", r.Console)
	}
	r = bootDebian(t, img, debBoot{firmware: firmware, vars: vars, script: "strata status; echo STATUS-RC=$?\n"})
	expectDebian(t, r, "2", "STRATA-HEALTH=active", "STATUS-RC=0", failingCheck)
}

func TestDebianSystemdBootUEFI(t *testing.T) { testDebianLoader(t, "systemd-boot", "ovmf") }

func TestDebianGRUBBIOS(t *testing.T) { testDebianLoader(t, "grub", "bios") }
