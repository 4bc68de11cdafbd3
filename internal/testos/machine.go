package testos

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/demoos"
)

// Machine is the test OS installed on a disk image by `strata install
// to-disk`, booted under QEMU through its real boot loader: systemd-boot
// under OVMF (UEFI) or GRUB under SeaBIOS. The test OS's agent
// (strata-e2e.service, testos.toml) prints "STRATA-BOOTED version=N" and
// runs the control disk's run.sh on the serial console, then powers off.
type Machine struct {
	Disk     string // raw disk image
	Vars     string // OVMF variable store (systemd-boot), kept between boots
	Firmware string // "ovmf" or "bios"
	Loader   string // "systemd-boot" or "grub"
	// Console, when set, receives each boot's serial console as it comes.
	Console io.Writer
	// Timeout bounds one boot (default 12 minutes: TCG on a busy
	// 2-core machine).
	Timeout time.Duration
}

// InstallOptions adjust Install.
type InstallOptions struct {
	Loader    string   // systemd-boot (default) or grub
	TargetRef string   // --target-ref, the origin the machine follows
	Kargs     []string // --karg
	Size      int64    // the disk image's size (default 4 GiB)
}

// Install writes img with strata (the binary at strataBin) onto a new
// disk image in dir and returns the machine, not yet booted; with
// systemd-boot it also makes the machine's UEFI variable store. The
// install's output goes to log when set.
func Install(ctx context.Context, strataBin string, img *Image, dir string, o InstallOptions, log io.Writer) (*Machine, error) {
	if o.Loader == "" {
		o.Loader = "systemd-boot"
	}
	if o.Size == 0 {
		o.Size = 4 << 30
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	m := &Machine{Disk: filepath.Join(dir, "disk.img"), Loader: o.Loader, Firmware: "bios"}
	args := []string{"--repo=" + img.Repo, "install", "to-disk", m.Disk, "--source=" + img.Ref,
		"--bootloader=" + o.Loader, fmt.Sprintf("--size=%d", o.Size)}
	if o.TargetRef != "" {
		args = append(args, "--target-ref="+o.TargetRef)
	}
	for _, k := range o.Kargs {
		args = append(args, "--karg="+k)
	}
	cmd := exec.CommandContext(ctx, strataBin, args...)
	out, err := cmd.CombinedOutput()
	if log != nil {
		fmt.Fprintf(log, "$ strata %s\n%s", strings.Join(args, " "), out)
	}
	if err != nil {
		return nil, fmt.Errorf("strata install to-disk: %v: %s", err, out)
	}
	if o.Loader == "systemd-boot" {
		m.Firmware = "ovmf"
		m.Vars = filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(demoos.OVMFVarsTemplate, m.Vars); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Fork copies the machine (its disk sparsely, and its UEFI variables)
// into dir: scenarios start from one booted-once machine.
func (m *Machine) Fork(dir string) (*Machine, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	n := *m
	n.Disk = filepath.Join(dir, "disk.img")
	if out, err := exec.Command("cp", "--sparse=always", m.Disk, n.Disk).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cp %s: %v: %s", m.Disk, err, out)
	}
	if m.Vars != "" {
		n.Vars = filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(m.Vars, n.Vars); err != nil {
			return nil, err
		}
	}
	return &n, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// Boot boots the machine once and waits for it to power off or reboot
// (QEMU runs with -no-reboot). With a script, a control disk (/dev/vdb)
// carries it as run.sh for the agent, which runs it with `set -x`; update,
// when set, is attached read-only as /dev/vdc. Without either the agent
// does not run and the machine stays up unless it reboots by itself (a
// failed health check): then the boot ends in a timeout error. The
// scratch files go in a temporary directory under tmp.
func (m *Machine) Boot(ctx context.Context, tmp, script, update string) (*demoos.Result, error) {
	return m.BootCut(ctx, tmp, script, update, nil)
}

// BootCut is Boot with the power cut as cut says (demoos.PowerCut); a
// boot cut as asked is no error (Result.Cut).
func (m *Machine) BootCut(ctx context.Context, tmp, script, update string, cut *demoos.PowerCut) (*demoos.Result, error) {
	dir, err := os.MkdirTemp(tmp, "boot-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	disks := []string{m.Disk}
	var ro []string
	if script != "" || update != "" {
		ctl := filepath.Join(dir, "ctl")
		if err := os.MkdirAll(ctl, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(ctl, "run.sh"), []byte("set -x\n"+script), 0o755); err != nil {
			return nil, err
		}
		img := filepath.Join(dir, "ctl.img")
		if err := demoos.MakeDisk(img, 16, ctl); err != nil {
			return nil, err
		}
		disks = append(disks, img)
		if update != "" {
			ro = append(ro, update)
		}
	}
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 12 * time.Minute
	}
	q := demoos.QEMU{Disks: disks, ReadOnlyDisks: ro, Timeout: timeout, MemoryMB: 1024,
		Console: m.Console, Firmware: m.Firmware, OVMFVars: m.Vars, Cut: cut}
	r, err := q.Run(ctx)
	if err != nil {
		if r != nil {
			return r, fmt.Errorf("boot: %v; console:\n%s", err, r.Console)
		}
		return nil, fmt.Errorf("boot: %v", err)
	}
	return r, nil
}

// MountUpdate is the guest's command that mounts the update disk
// (/dev/vdc) at /run/update.
const MountUpdate = "mkdir -p /run/update && mount -o ro /dev/vdc /run/update\n"

// UpdateDisk writes out, an ext4 image holding an archive repository
// (repo/) whose ref branch is img's commit: the update medium of a guest
// without network (file:///run/update/repo once MountUpdate ran).
func UpdateDisk(ctx context.Context, strataBin string, img *Image, branch, out string) error {
	src, err := os.MkdirTemp(filepath.Dir(out), "update-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	repoPath := filepath.Join(src, "repo")
	for _, args := range [][]string{
		{"--repo=" + repoPath, "init", "--mode=archive"},
		{"--repo=" + repoPath, "pull-local", img.Repo, img.Commit},
		{"--repo=" + repoPath, "refs", "--force", "--create=" + branch, img.Commit},
	} {
		if b, err := exec.CommandContext(ctx, strataBin, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("strata %s: %v: %s", strings.Join(args, " "), err, b)
		}
	}
	return diskOf(src, out)
}

// OCIDisk writes out, an ext4 image holding an OCI layout (oci/, tag
// tag) of img's commit encapsulated by strata (ostree-ext's format): in
// the guest, /run/update/oci:TAG once MountUpdate ran.
func OCIDisk(ctx context.Context, strataBin string, img *Image, tag, out string) error {
	src, err := os.MkdirTemp(filepath.Dir(out), "oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	args := []string{"--repo=" + img.Repo, "container", "encapsulate", img.Commit, "oci:" + filepath.Join(src, "oci") + ":" + tag}
	if b, err := exec.CommandContext(ctx, strataBin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("strata %s: %v: %s", strings.Join(args, " "), err, b)
	}
	return diskOf(src, out)
}

func diskOf(src, out string) error {
	var total int64
	err := filepath.Walk(src, func(_ string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		return err
	}
	return demoos.MakeDisk(out, int(total>>20)*5/4+64, src)
}

// Missing says what of the booted version and the console lines r lacks
// ("" when nothing).
func Missing(r *demoos.Result, version string, want ...string) string {
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

// ESPEntries lists the systemd-boot entries (loader/entries/*.conf) on
// the ESP of a disk written by install to-disk, read with mtools.
func ESPEntries(disk string) ([]string, error) {
	out, err := exec.Command("sfdisk", "--json", disk).Output()
	if err != nil {
		return nil, fmt.Errorf("sfdisk --json %s: %v", disk, err)
	}
	// install to-disk puts the ESP first, at sector 2048 (1 MiB).
	if !strings.Contains(string(out), `"start": 2048`) {
		return nil, fmt.Errorf("%s: no partition at sector 2048 (the ESP): %s", disk, out)
	}
	cmd := exec.Command("mdir", "-b", "-i", disk+"@@1048576", "::/loader/entries")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("mdir %s: %v: %s", disk, err, b)
	}
	var names []string
	for _, l := range strings.Fields(string(b)) {
		names = append(names, filepath.Base(l))
	}
	return names, nil
}
