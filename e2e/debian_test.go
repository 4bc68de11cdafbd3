package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
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

// oci returns an ext4 image holding an OCI layout (oci/, tag v) of the
// given version encapsulated by strata (ostree-ext's format), for
// strata switch --transport=oci in the guest.
func (d *debianOS) ociDisk(t *testing.T, version string) string {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	key := "oci-" + version
	if p, ok := d.updates[key]; ok {
		return p
	}
	l := lab(t)
	img := d.image(version)
	src := filepath.Join(d.dir, key)
	if out, err := l.Command(context.Background(), l.Strata, "--repo="+img.Repo, "container", "encapsulate", img.Commit, "oci:"+filepath.Join(src, "oci")+":v"+version); err != nil {
		t.Fatalf("encapsulate: %v\n%s", err, out)
	}
	size, err := dirSize(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d.dir, key+".img")
	if err := demoos.MakeDisk(p, int(size>>20)*5/4+64, src); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(src); err != nil {
		t.Fatal(err)
	}
	d.updates[key] = p
	return p
}

// machine is one installed Debian disk and its firmware state.
type machine struct {
	img, vars, firmware, loader string
}

// base is a booted-once machine per loader, which scenarios fork.
type base struct {
	once sync.Once
	m    *machine
	err  string
}

var bases = map[string]*base{"systemd-boot": {}, "grub": {}}

// mountUpdate mounts the update disk (/dev/vdc) where the remote e2e
// points.
const mountUpdate = "mkdir -p /run/update && mount -o ro /dev/vdc /run/update\n"

// machine returns a new machine forked (sparse copies of its disk and
// UEFI variables) from the booted-once base of the loader: v1 installed
// by install to-disk with --target-ref=e2e:testos/e2e, booted once
// (checked: /usr read-only, health passed, the entry blessed), with a
// local /etc edit (the host name), data in /var and the remote e2e
// (file:///run/update/repo) added.
func (d *debianOS) machine(t *testing.T, loader string) *machine {
	t.Helper()
	b := bases[loader]
	b.once.Do(func() {
		m, err := d.bootedOnce(t, loader)
		if err != "" {
			b.err = err
			return
		}
		b.m = m
	})
	if b.err != "" {
		t.Fatalf("the booted-once %s machine: %s", loader, b.err)
	}
	dir := t.TempDir()
	m := *b.m
	m.img = filepath.Join(dir, "disk.img")
	if out, err := exec.Command("cp", "--sparse=always", b.m.img, m.img).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if b.m.vars != "" {
		m.vars = filepath.Join(dir, "OVMF_VARS.fd")
		if out, err := exec.Command("cp", b.m.vars, m.vars).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
	}
	return &m
}

// bootedOnce installs and boots the base machine; it returns a failure
// as a string so that every test forking it can report it.
func (d *debianOS) bootedOnce(t *testing.T, loader string) (*machine, string) {
	l := lab(t)
	dir := filepath.Join(d.dir, "base-"+loader)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err.Error()
	}
	m := &machine{img: filepath.Join(dir, "disk.img"), loader: loader, firmware: "bios"}
	start := time.Now()
	out, err := l.Command(context.Background(), l.Strata, "--repo="+d.v1.Repo, "install", "to-disk", m.img,
		"--source="+d.v1.Ref, "--target-ref=e2e:"+debianRef, "--bootloader="+loader, "--size=4294967296", "--karg=panic=-1")
	if err != nil {
		return nil, fmt.Sprintf("install to-disk: %v\n%s", err, out)
	}
	t.Logf("install to-disk (%s) in %.1fs:\n%s", loader, time.Since(start).Seconds(), out)
	if loader == "systemd-boot" {
		m.firmware = "ovmf"
		m.vars = filepath.Join(dir, "OVMF_VARS.fd")
		data, err := os.ReadFile(demoos.OVMFVarsTemplate)
		if err != nil {
			return nil, err.Error()
		}
		if err := os.WriteFile(m.vars, data, 0o644); err != nil {
			return nil, err.Error()
		}
	}
	r, err := m.run(t, `
echo "HOSTNAME-BEFORE=$(cat /etc/hostname)"
echo my-device > /etc/hostname
mkdir -p /var/lib/e2e && echo kept > /var/lib/e2e/data
strata remote add --if-not-exists --no-gpg-verify e2e file:///run/update/repo && echo REMOTE-ADDED
strata status
`, "")
	if err != nil {
		return nil, err.Error()
	}
	if msg := missing(r, "1", "STRATA-USR-READONLY", "STRATA-HEALTH=active", "REMOTE-ADDED", "STRATA-SCRIPT-DONE rc=0"); msg != "" {
		return nil, msg
	}
	if loader == "systemd-boot" {
		// Installed with boot counting (+3); the health check blessed it.
		if names := espEntries(t, m.img); len(names) != 1 || strings.Contains(names[0], "+") {
			return nil, fmt.Sprintf("ESP entries after the first boot: %v, want one, blessed", names)
		}
	}
	return m, ""
}

// run boots the machine once with the control disk's script and the
// update disk (either may be empty).
func (m *machine) run(t *testing.T, script, update string) (*demoos.Result, error) {
	t.Helper()
	l := lab(t)
	dir := t.TempDir()
	disks := []string{m.img}
	var ro []string
	if script != "" || update != "" {
		ctl := filepath.Join(dir, "ctl")
		if err := os.MkdirAll(ctl, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(ctl, "run.sh"), []byte("set -x\n"+script), 0o755); err != nil {
			return nil, err
		}
		ctlImg := filepath.Join(dir, "ctl.img")
		if err := demoos.MakeDisk(ctlImg, 16, ctl); err != nil {
			return nil, err
		}
		disks = append(disks, ctlImg)
		if update != "" {
			ro = append(ro, update)
		}
	}
	q := demoos.QEMU{Disks: disks, ReadOnlyDisks: ro, Timeout: 12 * time.Minute, MemoryMB: 1024,
		Console: l.Console, Firmware: m.firmware, OVMFVars: m.vars}
	r, err := q.Run(context.Background())
	if err != nil {
		if r != nil {
			return r, fmt.Errorf("boot: %v; console:\n%s", err, r.Console)
		}
		return nil, fmt.Errorf("boot: %v", err)
	}
	t.Logf("boot (%s): version %q in %.0fs", m.loader, r.BootedVersion(), r.Elapsed.Seconds())
	return r, nil
}

// boot is run that fails the test on a boot that does not end by itself.
func (m *machine) boot(t *testing.T, script, update string) *demoos.Result {
	t.Helper()
	r, err := m.run(t, script, update)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// missing says what of the version and console lines r lacks ("" when
// nothing).
func missing(r *demoos.Result, version string, want ...string) string {
	if got := r.BootedVersion(); got != version {
		return fmt.Sprintf("booted version %q, want %q; console:\n%s", got, version, r.Console)
	}
	var lack []string
	for _, w := range want {
		if !r.Has(w) {
			lack = append(lack, w)
		}
	}
	if len(lack) > 0 {
		return fmt.Sprintf("console lacks %q:\n%s", lack, r.Console)
	}
	return ""
}

func expectDebian(t *testing.T, r *demoos.Result, version string, want ...string) {
	t.Helper()
	if msg := missing(r, version, want...); msg != "" {
		t.Fatal(msg)
	}
}

// testDebianLoader (issue 12): on the booted-once machine strata upgrade
// (following the origin e2e:testos/e2e) stages v2, which is finalized at
// shutdown by strata-finalize-staged.service and boots blessed with the
// local /etc and /var kept; strata upgrade there stages v3, whose
// required health check fails: it boots once, is marked bad, the machine
// reboots at once and is back on v2, where strata status names the check.
func testDebianLoader(t *testing.T, loader string) {
	d := debian(t)
	m := d.machine(t, loader)
	r := m.boot(t, mountUpdate+`strata upgrade && echo UPGRADED
systemctl is-active strata-finalize-staged.service | sed 's/^/FINALIZE-UNIT=/'
strata status
`, d.updateDisk(t, "2"))
	expectDebian(t, r, "1", "STRATA-HEALTH=active", "UPGRADED", "FINALIZE-UNIT=active", "STRATA-SCRIPT-DONE rc=0")
	if loader == "systemd-boot" {
		t.Logf("ESP entries after staging v2: %v", espEntries(t, m.img))
	}

	r = m.boot(t, `echo "HOSTNAME=$(cat /etc/hostname)"
echo "DATA=$(cat /var/lib/e2e/data)"
`+mountUpdate+`strata upgrade && echo UPGRADED
strata status
`, d.updateDisk(t, "3"))
	expectDebian(t, r, "2", "STRATA-USR-READONLY", "STRATA-HEALTH=active", "HOSTNAME=my-device", "DATA=kept", "UPGRADED", "STRATA-SCRIPT-DONE rc=0")
	if loader == "systemd-boot" {
		names := strings.Join(espEntries(t, m.img), " ")
		if !strings.Contains(names, "+3.conf") {
			t.Fatalf("ESP entries after staging v3: %s; want v3's with boot counting (+3)", names)
		}
	}

	// v3: its required check fails; the health unit marks the entry bad
	// and reboots at once (QEMU runs with -no-reboot: the boot ends).
	r = m.boot(t, "", "")
	if !r.Has("required check " + failingCheck + " failed") {
		t.Fatalf("v3's boot did not fail its health check:\n%s", r.Console)
	}
	if loader == "systemd-boot" {
		names := strings.Join(espEntries(t, m.img), " ")
		if !strings.Contains(names, "+0-1.conf") {
			t.Fatalf("ESP entries after v3's boot: %s; want v3's marked bad (+0-1)", names)
		}
	}
	r = m.boot(t, "strata status; echo STATUS-RC=$?\n", "")
	expectDebian(t, r, "2", "STRATA-HEALTH=active", "STATUS-RC=0", failingCheck)
}

func TestDebianSystemdBootUEFI(t *testing.T) { testDebianLoader(t, "systemd-boot") }

func TestDebianGRUBBIOS(t *testing.T) { testDebianLoader(t, "grub") }

// TestDebianFleetUpdates (issue 13): the update agent, started as its
// timer would start it, stages v2 and reboots the machine by itself; v2
// is blessed; the agent takes v3, whose health check fails: the machine
// is back on v2 after one reboot, and the agent does not take v3 again.
// strata reset then gives a fresh /etc and an empty /var, and rolling
// back to the old stateroot brings the old /etc and /var back.
func TestDebianFleetUpdates(t *testing.T) {
	d := debian(t)
	m := d.machine(t, "systemd-boot")
	const runAgent = "systemctl start strata-update.service; echo AGENT-RC=$?\n"
	r := m.boot(t, mountUpdate+runAgent, d.updateDisk(t, "2"))
	expectDebian(t, r, "1", "STRATA-HEALTH=active")
	if r.Has("AGENT-RC=0") {
		t.Fatalf("the agent did not reboot into v2:\n%s", r.Console)
	}
	r = m.boot(t, `echo "HOSTNAME=$(cat /etc/hostname)"
echo "DATA=$(cat /var/lib/e2e/data)"
`+mountUpdate+runAgent, d.updateDisk(t, "3"))
	expectDebian(t, r, "2", "STRATA-HEALTH=active", "HOSTNAME=my-device", "DATA=kept")
	if r.Has("AGENT-RC=0") {
		t.Fatalf("the agent did not reboot into v3:\n%s", r.Console)
	}
	r = m.boot(t, "", "")
	if !r.Has("required check " + failingCheck + " failed") {
		t.Fatalf("v3's boot did not fail its health check:\n%s", r.Console)
	}
	r = m.boot(t, mountUpdate+runAgent+`strata update status
strata status
strata status | grep -q Staged || echo NOTHING-STAGED
strata reset && echo RESET-DONE
`, d.updateDisk(t, "3"))
	expectDebian(t, r, "2", "STRATA-HEALTH=active", "AGENT-RC=0", d.v3.Commit, "NOTHING-STAGED", "RESET-DONE", "STRATA-SCRIPT-DONE rc=0")
	r = m.boot(t, `echo "HOSTNAME=$(cat /etc/hostname 2>/dev/null)"
echo "DATA=$(cat /var/lib/e2e/data 2>/dev/null)"
strata status
strata rollback && echo ROLLED-BACK
`, "")
	expectDebian(t, r, "2", "STRATA-HEALTH=active", "ROLLED-BACK", "STRATA-SCRIPT-DONE rc=0")
	if r.Has("HOSTNAME=my-device") || r.Has("DATA=kept") {
		t.Fatalf("after the reset, /etc or /var kept the old machine's files:\n%s", r.Console)
	}
	r = m.boot(t, `echo "HOSTNAME=$(cat /etc/hostname)"
echo "DATA=$(cat /var/lib/e2e/data)"
`, "")
	expectDebian(t, r, "2", "HOSTNAME=my-device", "DATA=kept", "STRATA-SCRIPT-DONE rc=0")
}

// TestDebianSwitchOCI (issue 10): in the booted v1, strata switch
// --transport=oci deploys v2 from an OCI layout that strata encapsulated
// (on the update disk); the machine boots v2, whose origin follows the
// image, with the local /etc and /var kept.
func TestDebianSwitchOCI(t *testing.T) {
	d := debian(t)
	m := d.machine(t, "systemd-boot")
	r := m.boot(t, mountUpdate+`strata switch --transport=oci /run/update/oci:v2 && echo SWITCHED
strata status
`, d.ociDisk(t, "2"))
	expectDebian(t, r, "1", "SWITCHED", "STRATA-SCRIPT-DONE rc=0")
	r = m.boot(t, `echo "HOSTNAME=$(cat /etc/hostname)"
echo "DATA=$(cat /var/lib/e2e/data)"
strata status
`+mountUpdate+`strata upgrade --check; echo CHECK-RC=$?
`, d.ociDisk(t, "2"))
	expectDebian(t, r, "2", "STRATA-HEALTH=active", "HOSTNAME=my-device", "DATA=kept", "/run/update/oci:v2", "CHECK-RC=0")
}
