package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/demoos"
)

// installDisk installs v1 of the demo OS with `strata install to-disk`
// onto a new image file, with the given boot loader.
func installDisk(t *testing.T, loader string) (img, vars string) {
	t.Helper()
	l := lab(t)
	ctx := context.Background()
	dir := t.TempDir()
	repoPath := filepath.Join(dir, "repo")
	if _, err := l.Command(ctx, l.Strata, "--repo="+repoPath, "init", "--mode=bare-user"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit(ctx, demoos.ToolStrata, repoPath, demoos.Ref, v1, demoos.StrataPrepareRoot); err != nil {
		t.Fatal(err)
	}
	img = filepath.Join(dir, "disk.img")
	out, err := l.Command(ctx, l.Strata, "--repo="+repoPath, "install", "to-disk", img, "--source="+demoos.Ref, "--os="+demoos.OS,
		"--bootloader="+loader, "--size=1073741824", "--karg=console=ttyS0", "--karg=panic=-1", "--karg=quiet")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", out)
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

// espEntries lists the entry files on the ESP of an installed image
// (read with mtools: the test machine's kernel may have no vfat).
func espEntries(t *testing.T, img string) []string {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	// The ESP starts at sector 2048 (sfdisk's default alignment).
	if !strings.Contains(string(out), `"start": 2048`) {
		t.Fatalf("unexpected partition table: %s", out)
	}
	cmd := exec.Command("mdir", "-b", "-i", img+"@@1048576", "::/loader/entries")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mdir: %v %s", err, b)
	}
	var names []string
	for _, l := range strings.Fields(string(b)) {
		names = append(names, filepath.Base(l))
	}
	return names
}

func bootFW(t *testing.T, img, firmware, vars string, o demoos.BootOptions) *demoos.Result {
	t.Helper()
	if o.Timeout == 0 {
		// Firmware and loader under TCG on a loaded machine: generous.
		o.Timeout = 10 * time.Minute
	}
	r, err := lab(t).BootFirmware(context.Background(), img, firmware, vars, o)
	if err != nil {
		if r != nil {
			t.Logf("console:\n%s", r.Console)
		}
		t.Fatalf("boot: %v", err)
	}
	return r
}

func expectFW(t *testing.T, r *demoos.Result, version string, want ...string) {
	t.Helper()
	if got := r.BootedVersion(); got != version {
		t.Fatalf("booted version %q, want %q; console:\n%s", got, version, r.Console)
	}
	for _, w := range want {
		if !r.Has(w) {
			t.Errorf("console lacks %q:\n%s", w, r.Console)
		}
	}
}

// testRealLoader: install v1 to a disk image, boot it through the real
// loader (entry blessed), deploy v2 in the guest (blessed after its
// boot), then a broken v3: the loader's own boot counting (systemd-boot
// renaming the ESP entry, or GRUB's grubenv counter) falls back to v2
// after three failed tries, with no help.
func testRealLoader(t *testing.T, loader, firmware string) {
	img, vars := installDisk(t, loader)
	r := bootFW(t, img, firmware, vars, demoos.BootOptions{CtlDir: updateDisk(t, v2), Script: checkScript + `
echo my-device > /etc/hostname
mkdir -p /var/lib/demo && echo kept > /var/lib/demo/data
strata pull-local /run/ctl/repo ` + demoos.Ref + ` && echo PULLED
strata admin deploy --os=demo ` + demoos.Ref + ` && echo DEPLOYED
`})
	expectFW(t, r, "1", "STRATA-BOOT-COMPLETE", "USR-READONLY", "PULLED", "DEPLOYED", "STRATA-SCRIPT-DONE rc=0")
	t.Logf("first boot: %.1fs", r.Elapsed.Seconds())
	if loader == "systemd-boot" {
		t.Logf("ESP entries after deploying v2: %v", espEntries(t, img))
	}
	v3broken := demoos.Version{ID: "3", Broken: true}
	r = bootFW(t, img, firmware, vars, demoos.BootOptions{CtlDir: updateDisk(t, v3broken), Script: `
echo "HOSTNAME=$(cat /etc/hostname)"
echo "DATA=$(cat /var/lib/demo/data)"
strata pull-local /run/ctl/repo ` + demoos.Ref + ` && echo PULLED
strata admin deploy --os=demo ` + demoos.Ref + ` && echo DEPLOYED
`})
	expectFW(t, r, "2", "STRATA-BOOT-COMPLETE", "HOSTNAME=my-device", "DATA=kept", "PULLED", "DEPLOYED")
	if loader == "systemd-boot" {
		names := espEntries(t, img)
		t.Logf("ESP entries after deploying v3: %v", names)
		if len(names) != 2 || !strings.HasSuffix(names[0]+names[1], "+3.conf") && !strings.Contains(strings.Join(names, " "), "+3.conf") {
			t.Errorf("ESP entries %v: want two, the new one +3", names)
		}
	}
	for try := 1; try <= 3; try++ {
		r = bootFW(t, img, firmware, vars, demoos.BootOptions{})
		expectFW(t, r, "3", "STRATA-INIT-FAILED")
		if loader == "systemd-boot" {
			names := strings.Join(espEntries(t, img), " ")
			if want := fmt.Sprintf("+%d-%d.conf", 3-try, try); !strings.Contains(names, want) {
				t.Fatalf("try %d: ESP entries %s, want one *%s (systemd-boot's rename)", try, names, want)
			}
		}
	}
	// v4 carries a failing required health check: it boots once, its
	// check fails, it is marked bad at once and the machine reboots; the
	// loader starts v2, and strata status names the check.
	v4 := demoos.Version{ID: "4", FailCheck: true}
	r = bootFW(t, img, firmware, vars, demoos.BootOptions{CtlDir: updateDisk(t, v4), Script: `
strata pull-local /run/ctl/repo ` + demoos.Ref + ` && echo PULLED
strata admin deploy --os=demo ` + demoos.Ref + ` && echo DEPLOYED
`})
	expectFW(t, r, "2", "STRATA-BOOT-COMPLETE", "PULLED", "DEPLOYED")
	r = bootFW(t, img, firmware, vars, demoos.BootOptions{})
	expectFW(t, r, "4", "STRATA-HEALTH-FAILED")
	if loader == "systemd-boot" {
		names := strings.Join(espEntries(t, img), " ")
		if !strings.Contains(names, "+0-1.conf") {
			t.Fatalf("ESP entries %s: want v4's marked bad (+0-1)", names)
		}
	}
	r = bootFW(t, img, firmware, vars, demoos.BootOptions{Script: "strata status; echo STATUS-RC=$?\n"})
	expectFW(t, r, "2", "STRATA-BOOT-COMPLETE", "STATUS-RC=0", "failed the required check "+demoos.FailingCheck)
}

func TestInstalledSystemdBootUEFI(t *testing.T) {
	t.Parallel()
	testRealLoader(t, "systemd-boot", "ovmf")
}

func TestInstalledGRUBBIOS(t *testing.T) {
	t.Parallel()
	testRealLoader(t, "grub", "bios")
}
