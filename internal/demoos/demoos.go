// Package demoos builds a tiny bootable OS in OSTree's layout, for the demo
// and the end-to-end tests: busybox from Debian's busybox-static, Debian's
// kernel from linux-image-amd64, an initramfs that mounts the disk and runs
// `strata prepare-root`, and strata itself. Versions differ only in
// /usr/lib/os-release and a marker file.
package demoos

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Kernel is a kernel found on the build machine.
type Kernel struct {
	Version string // e.g. 6.1.0-56-amd64
	Image   string // /boot/vmlinuz-VERSION
	Modules string // /lib/modules/VERSION
}

// FindKernel returns the newest kernel installed under /boot.
func FindKernel() (*Kernel, error) {
	imgs, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(imgs) == 0 {
		return nil, fmt.Errorf("no kernel in /boot (install linux-image-amd64)")
	}
	sort.Strings(imgs)
	img := imgs[len(imgs)-1]
	v := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
	k := &Kernel{Version: v, Image: img, Modules: filepath.Join("/lib/modules", v)}
	if _, err := os.Stat(filepath.Join(k.Modules, "modules.dep")); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", v, err)
	}
	return k, nil
}

// bootModules are what the initramfs needs to mount an ext4 virtio disk.
// The vfat ones let the booted OS mount an ESP at /boot/efi (the loaded
// modules survive switch_root).
var bootModules = []string{"virtio_pci", "virtio_blk", "ext4", "crc32c_generic", "vfat", "nls_cp437", "nls_ascii", "nls_utf8"}

// moduleOrder returns module files (relative to the modules dir) in load
// order: dependencies first, from modules.dep.
func (k *Kernel) moduleOrder(names []string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(k.Modules, "modules.dep"))
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{}
	byName := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		base := strings.TrimSuffix(filepath.Base(mod), ".ko")
		byName[strings.ReplaceAll(base, "-", "_")] = mod
	}
	var order []string
	seen := map[string]bool{}
	var visit func(m string)
	visit = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		for _, d := range deps[m] {
			visit(d)
		}
		order = append(order, m)
	}
	for _, n := range names {
		m, ok := byName[n]
		if !ok {
			continue // built into the kernel
		}
		visit(m)
	}
	return order, nil
}

// PrepareRoot selects the program the initramfs runs to set up the
// deployment: strata's or OSTree's own (Debian's ostree-boot).
type PrepareRoot int

const (
	// StrataPrepareRoot runs `strata prepare-root /sysroot` (static).
	StrataPrepareRoot PrepareRoot = iota
	// OstreePrepareRoot runs /usr/lib/ostree/ostree-prepare-root, copied
	// with the shared libraries it links from the build machine.
	OstreePrepareRoot
)

// OstreePrepareRootPath is where Debian's ostree-boot installs it.
const OstreePrepareRootPath = "/usr/lib/ostree/ostree-prepare-root"

func (p PrepareRoot) String() string {
	if p == OstreePrepareRoot {
		return "ostree-prepare-root"
	}
	return "strata prepare-root"
}

// initramfsInit is /init of the initramfs. It mounts the API
// filesystems and a tmpfs /run (which prepare-root marks and which moves
// into the new root, as systemd carries /run across switch_root), loads
// the virtio and ext4 modules, mounts /dev/vda at /sysroot, runs
// prepare-root and switches to the deployment's /sbin/init.
const initramfsInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=0755,nosuid,nodev run /run
for m in $(cat /etc/modules-order); do insmod /lib/modules/$m 2>/dev/null; done
# The root: root=UUID=... (an installed disk) or the whole /dev/vda.
rootdev=/dev/vda
for a in $(cat /proc/cmdline); do
	case "$a" in root=UUID=*) rootuuid="${a#root=UUID=}" ;; esac
done
i=0
if [ -n "$rootuuid" ]; then
	rootdev=
	while [ -z "$rootdev" ] && [ $i -lt 100 ]; do rootdev=$(findfs "UUID=$rootuuid" 2>/dev/null) || { sleep 0.1; i=$((i+1)); }; done
fi
while [ ! -b "$rootdev" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if ! mount -t ext4 -o rw "$rootdev" /sysroot; then
	echo "STRATA-INITRAMFS: cannot mount $rootdev"
	poweroff -f
fi
@PREPARE_ROOT_SETUP@
echo "STRATA-INITRAMFS: running @PREPARE_ROOT_NAME@"
if ! @PREPARE_ROOT@ /sysroot; then
	echo "STRATA-INITRAMFS: prepare-root failed"
	poweroff -f
fi
mount --move /run /sysroot/run
mount --move /dev /sysroot/dev
mount --move /proc /sysroot/proc
mount --move /sys /sysroot/sys
exec switch_root /sysroot /sbin/init
`

// BuildInitramfs writes a gzip'd cpio initramfs to out holding busybox,
// the boot modules, /init and the prepare-root program pr: the static
// strata binary strataBin, or ostree-prepare-root with its libraries.
func BuildInitramfs(out string, k *Kernel, busybox, strataBin string, pr PrepareRoot) error {
	dir, err := os.MkdirTemp("", "initramfs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"bin", "dev", "proc", "sys", "run", "sysroot", "etc", "lib/modules"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := copyFile(busybox, filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		return err
	}
	init := strings.ReplaceAll(initramfsInit, "@PREPARE_ROOT_NAME@", pr.String())
	switch pr {
	case StrataPrepareRoot:
		if err := copyFile(strataBin, filepath.Join(dir, "bin/strata"), 0o755); err != nil {
			return err
		}
		init = strings.ReplaceAll(init, "@PREPARE_ROOT@", "/bin/strata prepare-root")
		init = strings.ReplaceAll(init, "@PREPARE_ROOT_SETUP@\n", "")
	case OstreePrepareRoot:
		if err := copyWithLibraries(OstreePrepareRootPath, dir); err != nil {
			return err
		}
		init = strings.ReplaceAll(init, "@PREPARE_ROOT@", OstreePrepareRootPath)
		// Debian's build (with systemd) leaves /var to a var.mount unit
		// unless this marker asks it to bind the stateroot's var itself.
		init = strings.ReplaceAll(init, "@PREPARE_ROOT_SETUP@", "mkdir -p /run/ostree && touch /run/ostree/initramfs-mount-var")
	default:
		return fmt.Errorf("unknown prepare-root %d", pr)
	}
	if err := os.WriteFile(filepath.Join(dir, "init"), []byte(init), 0o755); err != nil {
		return err
	}
	mods, err := k.moduleOrder(bootModules)
	if err != nil {
		return err
	}
	var order []string
	for _, m := range mods {
		base := filepath.Base(m)
		if err := copyFile(filepath.Join(k.Modules, m), filepath.Join(dir, "lib/modules", base), 0o644); err != nil {
			return err
		}
		order = append(order, base)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/modules-order"), []byte(strings.Join(order, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err := writeCpioDir(zw, dir); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// copyWithLibraries copies the dynamically linked program bin into the
// tree root at the same path, with every shared library and the dynamic
// loader that ldd lists, each at the path ldd names.
func copyWithLibraries(bin, root string) error {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w (install ostree-boot)", bin, err)
	}
	files := []string{bin}
	for _, line := range strings.Split(string(out), "\n") {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
		// "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			files = append(files, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			files = append(files, f[0])
		}
	}
	for _, f := range files {
		dst := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := copyFile(f, dst, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// osInit is the booted OS's /sbin/init: it mounts the basics, reports the
// booted version, marks the boot good (`strata admin boot-complete`, the
// health check of this tiny OS), runs /dev/vdb's run.sh when a control
// disk is attached, and powers off.
const osInit = `#!/bin/sh
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
mounted() { grep -q " $1 " /proc/mounts 2>/dev/null; }
mounted /proc || mount -t proc proc /proc
mounted /sys || mount -t sysfs sys /sys
mounted /dev || mount -t devtmpfs dev /dev
mounted /tmp || mount -t tmpfs tmp /tmp
mounted /run || mount -t tmpfs run /run
# An installed disk's ESP (systemd-boot) at /boot/efi, as its fstab says.
if [ -d /boot/efi ] && [ -b /dev/vda1 ]; then
	mount -t vfat -o umask=0077,shortname=winnt /dev/vda1 /boot/efi 2>/dev/null
fi
. /usr/lib/os-release
echo "STRATA-BOOTED version=$VERSION_ID"
if [ -d /usr/lib/greenboot/check ]; then
	# Greenboot-style checks decide: bless, or mark bad and reboot at once.
	if strata health check; then
		echo "STRATA-BOOT-COMPLETE"
	else
		echo "STRATA-HEALTH-FAILED"
		sync
		reboot -f
	fi
elif bc=$(strata admin boot-complete 2>&1); then
	echo "STRATA-BOOT-COMPLETE"
else
	echo "STRATA-BOOT-COMPLETE-FAILED: $bc"
fi
if [ -b /dev/vdb ]; then
	mkdir -p /run/ctl
	if mount -t ext4 /dev/vdb /run/ctl 2>/dev/null && [ -f /run/ctl/run.sh ]; then
		cd /run/ctl
		sh /run/ctl/run.sh
		echo "STRATA-SCRIPT-DONE rc=$?"
		cd /
		umount /run/ctl
	fi
fi
grep -q " /boot/efi " /proc/mounts && umount /boot/efi
sync
echo "STRATA-POWEROFF"
poweroff -f
`

// brokenInit is /sbin/init of a version that never becomes healthy: it
// exits, the kernel panics and (panic=-1) reboots, before boot-complete.
const brokenInit = `#!/bin/sh
. /usr/lib/os-release
echo "STRATA-BOOTED version=$VERSION_ID"
echo "STRATA-INIT-FAILED: this version is broken on purpose"
exit 1
`

// Version describes one build of the demo OS.
type Version struct {
	ID string // VERSION_ID, e.g. "1"
	// Broken makes /sbin/init fail before boot-complete.
	Broken bool
	// Init replaces /sbin/init when not empty.
	Init string
	// Checks gives the version greenboot check directories: its init then
	// runs `strata health check` instead of `admin boot-complete`, with a
	// passing required check, and a failing one too with FailCheck.
	Checks, FailCheck bool
}

// FailingCheck is the required check a FailCheck version carries.
const FailingCheck = "/usr/lib/greenboot/check/required.d/50-app.sh"

// BuildTree writes the OS tree for v into dir (which must not exist):
// /usr with busybox, strata, the kernel and initramfs under
// usr/lib/modules/KVER, default config in usr/etc, and the top-level
// symlinks and mount points.
func BuildTree(dir string, v Version, k *Kernel, busybox, strataBin, initramfs string) error {
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib/modules/" + k.Version, "usr/etc", "proc", "sys", "dev", "run", "tmp", "var", "sysroot", "boot", "root", "home", "mnt"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	for _, l := range [][2]string{{"usr/bin", "bin"}, {"usr/sbin", "sbin"}, {"usr/lib", "lib"}, {"sysroot/ostree", "ostree"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			return err
		}
	}
	if err := copyFile(busybox, filepath.Join(dir, "usr/bin/busybox"), 0o755); err != nil {
		return err
	}
	for _, app := range []string{"sh", "ls", "cat", "echo", "mount", "umount", "touch", "rm", "mkdir", "poweroff", "sync", "sleep", "grep", "sed", "test", "[", "stat", "uname", "cp", "mv", "ln", "head", "tail", "wc", "find", "df", "dmesg", "printf", "true", "false", "id", "chmod", "date", "readlink", "cut", "tr", "sort", "diff", "reboot"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "usr/bin", app)); err != nil {
			return err
		}
	}
	if err := copyFile(strataBin, filepath.Join(dir, "usr/bin/strata"), 0o755); err != nil {
		return err
	}
	init := v.Init
	switch {
	case init != "":
	case v.Broken:
		init = brokenInit
	default:
		init = osInit
	}
	if err := os.WriteFile(filepath.Join(dir, "usr/sbin/init"), []byte(init), 0o755); err != nil {
		return err
	}
	if v.Checks || v.FailCheck {
		req := filepath.Join(dir, "usr/lib/greenboot/check/required.d")
		if err := os.MkdirAll(req, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(req, "10-ok.sh"), []byte("#!/bin/sh\ntest -d /var\n"), 0o755); err != nil {
			return err
		}
		if v.FailCheck {
			if err := os.WriteFile(filepath.Join(dir, FailingCheck), []byte("#!/bin/sh\necho the app is down\nexit 1\n"), 0o755); err != nil {
				return err
			}
		}
	}
	kdir := filepath.Join(dir, "usr/lib/modules", k.Version)
	if err := copyFile(k.Image, filepath.Join(kdir, "vmlinuz"), 0o644); err != nil {
		return err
	}
	if err := copyFile(initramfs, filepath.Join(kdir, "initramfs.img"), 0o644); err != nil {
		return err
	}
	files := map[string]string{
		"usr/lib/os-release":   fmt.Sprintf("NAME=\"strata demo\"\nID=strata-demo\nVERSION_ID=%s\nPRETTY_NAME=\"strata demo %s\"\n", v.ID, v.ID),
		"usr/lib/demo-version": v.ID + "\n",
		"usr/etc/hostname":     "strata-demo\n",
		"usr/etc/passwd":       "root:x:0:0:root:/root:/bin/sh\n",
		"usr/etc/group":        "root:x:0:\n",
		"usr/etc/motd":         "strata demo OS version " + v.ID + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return os.Symlink("../usr/lib/os-release", filepath.Join(dir, "usr/etc/os-release"))
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}
