package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/demoos"
	"github.com/strata-os/strata/internal/testos"
)

// The Debian end-to-end tests boot the composed test OS
// (internal/testos: Debian 12 with systemd, built by strata compose) from
// a disk written by `strata install to-disk`, through the real boot
// loaders, under QEMU. The test OS's agent (strata-e2e.service) reports
// the booted version on the console and runs the control disk's run.sh;
// updates reach the guest on a read-only third disk (/dev/vdc) holding
// an archive repository with the ref testos/e2e, or an OCI layout. The
// tests run in parallel with each other (go test's -parallel, GOMAXPROCS
// by default: two guests at a time on the 2-core machine), as the
// package's other tests do.

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

// updateDisk returns an ext4 image holding an archive repository whose
// ref testos/e2e is the given version (testos.UpdateDisk). Made once per
// version and shared read-only.
func (d *debianOS) updateDisk(t *testing.T, version string) string {
	return d.disk(t, "update-"+version, func(out string) error {
		return testos.UpdateDisk(context.Background(), lab(t).Strata, d.image(version), debianRef, out)
	})
}

// ociDisk returns an ext4 image holding an OCI layout (oci/, tag
// vN) of the given version encapsulated by strata (testos.OCIDisk).
func (d *debianOS) ociDisk(t *testing.T, version string) string {
	return d.disk(t, "oci-"+version, func(out string) error {
		return testos.OCIDisk(context.Background(), lab(t).Strata, d.image(version), "v"+version, out)
	})
}

func (d *debianOS) disk(t *testing.T, key string, make func(out string) error) string {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.updates[key]; ok {
		return p
	}
	p := filepath.Join(d.dir, key+".img")
	if err := make(p); err != nil {
		t.Fatal(err)
	}
	d.updates[key] = p
	return p
}

// base is a booted-once machine per loader, which scenarios fork.
type base struct {
	once sync.Once
	m    *testos.Machine
	err  string
}

var bases = map[string]*base{"systemd-boot": {}, "grub": {}}

const mountUpdate = testos.MountUpdate

// machine returns a new machine forked from the booted-once base of the
// loader: v1 installed by install to-disk with
// --target-ref=e2e:testos/e2e, booted once (checked: /usr read-only,
// health passed, the entry blessed), with a local /etc edit (the host
// name), data in /var and the remote e2e (file:///run/update/repo)
// added.
func (d *debianOS) machine(t *testing.T, loader string) *testos.Machine {
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
	m, err := b.m.Fork(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// bootedOnce installs and boots the base machine; it returns a failure
// as a string so that every test forking it can report it.
func (d *debianOS) bootedOnce(t *testing.T, loader string) (*testos.Machine, string) {
	l := lab(t)
	start := time.Now()
	var log strings.Builder
	m, err := testos.Install(context.Background(), l.Strata, d.v1, filepath.Join(d.dir, "base-"+loader),
		testos.InstallOptions{Loader: loader, TargetRef: "e2e:" + debianRef, Kargs: []string{"panic=-1"}}, &log)
	if err != nil {
		return nil, err.Error()
	}
	m.Console = l.Console
	t.Logf("install to-disk (%s) in %.1fs:\n%s", loader, time.Since(start).Seconds(), log.String())
	r, err := m.Boot(context.Background(), t.TempDir(), `
echo "SPEC-USER=$(getent passwd app)"
echo "SPEC-GROUP=$(getent group app)"
echo "SPEC-MOTD=$(cat /etc/motd)"
echo "SPEC-UNIT=$(systemctl is-enabled systemd-networkd.service)"
echo "SPEC-KARGS=$(cat /proc/cmdline)"
touch /etc/e2e-probe && echo ETC-WRITABLE
touch /var/e2e-probe && echo VAR-WRITABLE
dpkg -l systemd-sysv | grep -q '^ii' && echo DPKG-WORKS
echo "HOSTNAME-BEFORE=$(cat /etc/hostname)"
echo my-device > /etc/hostname
mkdir -p /var/lib/e2e && echo kept > /var/lib/e2e/data
strata remote add --if-not-exists --no-gpg-verify e2e file:///run/update/repo && echo REMOTE-ADDED
strata status
`, "")
	if err != nil {
		return nil, err.Error()
	}
	t.Logf("first boot (%s) in %.0fs", loader, r.Elapsed.Seconds())
	// The spec's users, files, units and kernel arguments (testos.toml),
	// /etc and /var writable, and dpkg's database usable under /usr.
	if msg := testos.Missing(r, "1", "STRATA-USR-READONLY", "STRATA-HEALTH=active", "REMOTE-ADDED", "STRATA-SCRIPT-DONE rc=0",
		"SPEC-USER=app:x:990:990::/var/lib/app:/usr/sbin/nologin", "SPEC-GROUP=app:x:990:", "SPEC-MOTD=built by strata compose",
		"SPEC-UNIT=enabled", "console=ttyS0,115200", "ETC-WRITABLE", "VAR-WRITABLE", "DPKG-WORKS"); msg != "" {
		return nil, msg
	}
	// strata-health.service blessed the entry before systemd's own
	// blessing unit ran, which must accept that.
	if r.Has("STRATA-FAILED-UNIT systemd-bless-boot") || r.Has("STRATA-FAILED-UNIT strata-") {
		return nil, "a boot-counting unit failed:\n" + r.Console
	}
	if loader == "systemd-boot" {
		// Installed with boot counting (+3); the health check blessed it.
		if names := espEntries(t, m.Disk); len(names) != 1 || strings.Contains(names[0], "+") {
			return nil, fmt.Sprintf("ESP entries after the first boot: %v, want one, blessed", names)
		}
	}
	return m, ""
}

// boot boots m once; a boot that does not end by itself fails the test.
func boot1(t *testing.T, m *testos.Machine, script, update string) *demoos.Result {
	t.Helper()
	r, err := m.Boot(context.Background(), t.TempDir(), script, update)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot (%s): version %q in %.0fs", m.Loader, r.BootedVersion(), r.Elapsed.Seconds())
	return r
}

func expectDebian(t *testing.T, r *demoos.Result, version string, want ...string) {
	t.Helper()
	if msg := testos.Missing(r, version, want...); msg != "" {
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
	t.Parallel()
	d := debian(t)
	m := d.machine(t, loader)
	r := boot1(t, m, mountUpdate+`strata upgrade && echo UPGRADED
systemctl is-active strata-finalize-staged.service | sed 's/^/FINALIZE-UNIT=/'
strata status
`, d.updateDisk(t, "2"))
	expectDebian(t, r, "1", "STRATA-HEALTH=active", "UPGRADED", "FINALIZE-UNIT=active", "STRATA-SCRIPT-DONE rc=0")
	if loader == "systemd-boot" {
		t.Logf("ESP entries after staging v2: %v", espEntries(t, m.Disk))
	}

	r = boot1(t, m, `echo "HOSTNAME=$(cat /etc/hostname)"
echo "DATA=$(cat /var/lib/e2e/data)"
`+mountUpdate+`strata upgrade && echo UPGRADED
strata status
`, d.updateDisk(t, "3"))
	expectDebian(t, r, "2", "STRATA-USR-READONLY", "STRATA-HEALTH=active", "HOSTNAME=my-device", "DATA=kept", "UPGRADED", "STRATA-SCRIPT-DONE rc=0")
	if loader == "systemd-boot" {
		names := strings.Join(espEntries(t, m.Disk), " ")
		if !strings.Contains(names, "+3.conf") {
			t.Fatalf("ESP entries after staging v3: %s; want v3's with boot counting (+3)", names)
		}
	}

	// v3: its required check fails; the health unit marks the entry bad
	// and reboots at once (QEMU runs with -no-reboot: the boot ends).
	r = boot1(t, m, "", "")
	if !r.Has("required check " + failingCheck + " failed") {
		t.Fatalf("v3's boot did not fail its health check:\n%s", r.Console)
	}
	if loader == "systemd-boot" {
		names := strings.Join(espEntries(t, m.Disk), " ")
		if !strings.Contains(names, "+0-1.conf") {
			t.Fatalf("ESP entries after v3's boot: %s; want v3's marked bad (+0-1)", names)
		}
	}
	r = boot1(t, m, "strata status; echo STATUS-RC=$?\n", "")
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
	t.Parallel()
	d := debian(t)
	m := d.machine(t, "systemd-boot")
	const runAgent = "systemctl start strata-update.service; echo AGENT-RC=$?\n"
	r := boot1(t, m, mountUpdate+runAgent, d.updateDisk(t, "2"))
	expectDebian(t, r, "1", "STRATA-HEALTH=active")
	if r.Has("AGENT-RC=0") {
		t.Fatalf("the agent did not reboot into v2:\n%s", r.Console)
	}
	r = boot1(t, m, `echo "HOSTNAME=$(cat /etc/hostname)"
echo "DATA=$(cat /var/lib/e2e/data)"
`+mountUpdate+runAgent, d.updateDisk(t, "3"))
	expectDebian(t, r, "2", "STRATA-HEALTH=active", "HOSTNAME=my-device", "DATA=kept")
	if r.Has("AGENT-RC=0") {
		t.Fatalf("the agent did not reboot into v3:\n%s", r.Console)
	}
	r = boot1(t, m, "", "")
	if !r.Has("required check " + failingCheck + " failed") {
		t.Fatalf("v3's boot did not fail its health check:\n%s", r.Console)
	}
	r = boot1(t, m, mountUpdate+runAgent+`strata update status
strata status
strata status | grep -q Staged || echo NOTHING-STAGED
strata reset && echo RESET-DONE
`, d.updateDisk(t, "3"))
	expectDebian(t, r, "2", "STRATA-HEALTH=active", "AGENT-RC=0", d.v3.Commit, "NOTHING-STAGED", "RESET-DONE", "STRATA-SCRIPT-DONE rc=0")
	r = boot1(t, m, `echo "HOSTNAME=$(cat /etc/hostname 2>/dev/null)"
echo "DATA=$(cat /var/lib/e2e/data 2>/dev/null)"
strata status
strata rollback && echo ROLLED-BACK
`, "")
	expectDebian(t, r, "2", "STRATA-HEALTH=active", "ROLLED-BACK", "STRATA-SCRIPT-DONE rc=0")
	if r.Has("HOSTNAME=my-device") || r.Has("DATA=kept") {
		t.Fatalf("after the reset, /etc or /var kept the old machine's files:\n%s", r.Console)
	}
	r = boot1(t, m, `echo "HOSTNAME=$(cat /etc/hostname)"
echo "DATA=$(cat /var/lib/e2e/data)"
`, "")
	expectDebian(t, r, "2", "HOSTNAME=my-device", "DATA=kept", "STRATA-SCRIPT-DONE rc=0")
}

// TestDebianSwitchOCI (issue 10): in the booted v1, strata switch
// --transport=oci deploys v2 from an OCI layout that strata encapsulated
// (on the update disk); the machine boots v2, whose origin follows the
// image, with the local /etc and /var kept.
func TestDebianSwitchOCI(t *testing.T) {
	t.Parallel()
	d := debian(t)
	m := d.machine(t, "systemd-boot")
	r := boot1(t, m, mountUpdate+`strata switch --transport=oci /run/update/oci:v2 && echo SWITCHED
strata status
`, d.ociDisk(t, "2"))
	expectDebian(t, r, "1", "SWITCHED", "STRATA-SCRIPT-DONE rc=0")
	// The guest's repository holds v1's objects: the chunk layers that
	// changed are fetched in part (docs/oci.md, "Chunked layers").
	if lm := regexp.MustCompile(`Layers: \d+ fetched \((\d+) of them in part`).FindStringSubmatch(r.Console); lm == nil || lm[1] == "0" {
		t.Fatalf("the switch fetched no layer in part:\n%s", r.Console)
	}
	r = boot1(t, m, `echo "HOSTNAME=$(cat /etc/hostname)"
echo "DATA=$(cat /var/lib/e2e/data)"
strata status
`+mountUpdate+`strata upgrade --check; echo CHECK-RC=$?
`, d.ociDisk(t, "2"))
	expectDebian(t, r, "2", "STRATA-HEALTH=active", "HOSTNAME=my-device", "DATA=kept", "/run/update/oci:v2", "CHECK-RC=0")
}

// TestDebianFinalizePowerCut (issue 12): the power is cut while
// strata-finalize-staged.service finalizes the staged v2 at shutdown, at
// instants after the unit starts stopping; after each cut the machine
// boots v1 or v2, healthy, with strata status and fsck clean.
// STRATA_DEBIAN_CUTS lists the delays (default "0.3s,4s").
func TestDebianFinalizePowerCut(t *testing.T) {
	t.Parallel()
	d := debian(t)
	spec := os.Getenv("STRATA_DEBIAN_CUTS")
	if spec == "" {
		spec = "0.3s,4s"
	}
	got := map[string]int{}
	for _, f := range strings.Split(spec, ",") {
		delay, err := time.ParseDuration(f)
		if err != nil {
			t.Fatalf("STRATA_DEBIAN_CUTS=%q: %v", spec, err)
		}
		m := d.machine(t, "systemd-boot")
		r, err := m.BootCut(context.Background(), t.TempDir(), mountUpdate+"strata upgrade && echo UPGRADED\n", d.updateDisk(t, "2"),
			&demoos.PowerCut{Marker: "finalize the staged deployment...", Delay: delay})
		if err != nil {
			t.Fatal(err)
		}
		if !r.Cut || !r.Has("UPGRADED") {
			t.Fatalf("cut %s: the power was not cut during the finalization (cut %v):\n%s", delay, r.Cut, r.Console)
		}
		r = boot1(t, m, "strata status; strata fsck >/dev/null && echo FSCK-OK\n", "")
		v := r.BootedVersion()
		if v != "1" && v != "2" {
			t.Fatalf("cut %s: booted %q, want 1 or 2:\n%s", delay, v, r.Console)
		}
		expectDebian(t, r, v, "STRATA-HEALTH=active", "FSCK-OK", "STRATA-SCRIPT-DONE rc=0")
		t.Logf("cut %s after the finalization started: booted v%s", delay, v)
		got[v]++
	}
	t.Logf("after the cuts: %v (version: boots)", got)
}
