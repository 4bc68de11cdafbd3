package demoos

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Lab holds what the demo and the end-to-end tests need to boot the demo
// OS, built once and reused: a static strata, the kernel, initramfs
// images and OS trees (built on first use).
type Lab struct {
	Dir     string  // scratch directory; everything the lab builds is in it
	Strata  string  // static strata binary (CGO_ENABLED=0)
	Kernel  *Kernel // the build machine's kernel
	Busybox string  // static busybox
	// Log, when set, receives every host command the lab runs ("$ ...")
	// and the boot loader's choice, for transcripts and test logs.
	Log io.Writer
	// Console, when set, receives the serial console of every boot.
	Console io.Writer

	mu        sync.Mutex
	initramfs map[PrepareRoot]string
	trees     map[string]string
}

// NewLab builds a static strata from the module containing the current
// directory into dir and finds the kernel and busybox.
func NewLab(ctx context.Context, dir string) (*Lab, error) {
	l := &Lab{Dir: dir, Strata: filepath.Join(dir, "strata"), Busybox: "/bin/busybox",
		initramfs: map[PrepareRoot]string{}, trees: map[string]string{}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The lab's strata carries the STRATA_CRASH_AT kill hook (build tag
	// strata_crashtest) for the power-cut runs; a release build does not.
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-tags", "strata_crashtest", "-o", l.Strata, "github.com/strata-os/strata/cmd/strata")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building a static strata: %w\n%s", err, out)
	}
	k, err := FindKernel()
	if err != nil {
		return nil, err
	}
	l.Kernel = k
	if _, err := os.Stat(l.Busybox); err != nil {
		return nil, fmt.Errorf("busybox: %w (install busybox-static)", err)
	}
	return l, nil
}

// Initramfs returns the initramfs running pr, building it on first use.
func (l *Lab) Initramfs(pr PrepareRoot) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.initramfs[pr]; ok {
		return p, nil
	}
	p := filepath.Join(l.Dir, fmt.Sprintf("initramfs-%d.img", pr))
	if err := BuildInitramfs(p, l.Kernel, l.Busybox, l.Strata, pr); err != nil {
		return "", fmt.Errorf("initramfs with %s: %w", pr, err)
	}
	l.initramfs[pr] = p
	return p, nil
}

// Tree returns the OS tree of version v booting through pr, building it
// on first use.
func (l *Lab) Tree(v Version, pr PrepareRoot) (string, error) {
	key := fmt.Sprintf("os-%s-%d-%t-%x-%t-%t", v.ID, pr, v.Broken, len(v.Init), v.Checks, v.FailCheck)
	l.mu.Lock()
	p, ok := l.trees[key]
	l.mu.Unlock()
	if ok {
		return p, nil
	}
	initrd, err := l.Initramfs(pr)
	if err != nil {
		return "", err
	}
	p = filepath.Join(l.Dir, key)
	os.RemoveAll(p)
	if err := BuildTree(p, v, l.Kernel, l.Busybox, l.Strata, initrd); err != nil {
		return "", fmt.Errorf("building OS tree %s: %w", v.ID, err)
	}
	l.mu.Lock()
	l.trees[key] = p
	l.mu.Unlock()
	return p, nil
}

// Command runs a host command, logging it, and returns its combined
// output; a failure names the command and carries the output.
func (l *Lab) Command(ctx context.Context, name string, args ...string) (string, error) {
	if l.Log != nil {
		shown := name
		if name == l.Strata {
			shown = "strata"
		}
		fmt.Fprintf(l.Log, "$ %s %s\n", shown, strings.Join(args, " "))
	}
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Mounted loop-mounts the disk image img for the duration of f.
func (l *Lab) Mounted(img string, f func(mnt string) error) (err error) {
	mnt, err := os.MkdirTemp(l.Dir, "mnt-")
	if err != nil {
		return err
	}
	defer os.Remove(mnt)
	umount, err := MountImage(img, mnt)
	if err != nil {
		return err
	}
	defer func() {
		if uerr := umount(); err == nil {
			err = uerr
		}
	}()
	return f(mnt)
}

// Tool is the program that writes a sysroot on the host.
type Tool string

// The two tools: strata (the lab's own binary) and the real ostree.
const (
	ToolStrata Tool = "strata"
	ToolOstree Tool = "ostree"
)

func (l *Lab) bin(t Tool) string {
	if t == ToolStrata {
		return l.Strata
	}
	return "ostree"
}

// OS is the stateroot name of the demo OS and Ref its branch.
const (
	OS  = "demo"
	Ref = "demo/stable"
)

// NewSysroot makes an ext4 disk image img of sizeMB holding an empty
// sysroot written by tool: admin init-fs, admin os-init demo, and (for
// ostree, which would otherwise look for a boot loader to configure)
// sysroot.bootloader=none.
func (l *Lab) NewSysroot(ctx context.Context, img string, sizeMB int, tool Tool) error {
	if err := MakeDisk(img, sizeMB, ""); err != nil {
		return err
	}
	return l.Mounted(img, func(mnt string) error {
		b := l.bin(tool)
		if _, err := l.Command(ctx, b, "admin", "init-fs", mnt); err != nil {
			return err
		}
		if _, err := l.Command(ctx, b, "admin", "os-init", OS, "--sysroot="+mnt); err != nil {
			return err
		}
		if tool == ToolOstree {
			if _, err := l.Command(ctx, "ostree", "--repo="+filepath.Join(mnt, "ostree/repo"), "config", "set", "sysroot.bootloader", "none"); err != nil {
				return err
			}
		}
		return nil
	})
}

// Commit commits the tree of v (booting through pr) to ref in repoPath
// with tool, with the version in the commit metadata, and returns the
// commit checksum.
func (l *Lab) Commit(ctx context.Context, tool Tool, repoPath, ref string, v Version, pr PrepareRoot) (string, error) {
	tree, err := l.Tree(v, pr)
	if err != nil {
		return "", err
	}
	out, err := l.Command(ctx, l.bin(tool), "--repo="+repoPath, "commit", "-b", ref, "--tree=dir="+tree,
		"-s", "demo OS "+v.ID, "--add-metadata-string=version="+v.ID)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// CommitDeploy commits version v into the sysroot image's repo and
// deploys it with tool, as the new default.
func (l *Lab) CommitDeploy(ctx context.Context, img string, tool Tool, v Version, pr PrepareRoot) (string, error) {
	var csum string
	err := l.Mounted(img, func(mnt string) error {
		var err error
		csum, err = l.Commit(ctx, tool, filepath.Join(mnt, "ostree/repo"), Ref, v, pr)
		if err != nil {
			return err
		}
		_, err = l.Command(ctx, l.bin(tool), "admin", "deploy", "--sysroot="+mnt, "--os="+OS, Ref)
		return err
	})
	return csum, err
}

// BootOptions describe one boot.
type BootOptions struct {
	// Script, when not empty, is written as run.sh on a control disk
	// attached as /dev/vdb, which the demo OS's init runs after boot
	// (in the disk's directory, mounted at /run/ctl).
	Script string
	// CtlDir, when set, is the control disk's content (Script is added).
	CtlDir string
	// Cut cuts the power at a console marker (see QEMU.Cut).
	Cut *PowerCut
	// Timeout bounds the boot; default 3 minutes.
	Timeout time.Duration
	// Append adds kernel arguments after the entry's options.
	Append string
}

// BootResult is one boot: what the loader chose and what QEMU printed.
type BootResult struct {
	*Result
	Boot *Boot
}

// Boot boots the sysroot disk image img once as a machine with a BLS
// boot loader would (LoadDefault), with a control disk when o.Script or
// o.CtlDir is set, and waits for it to power off (or for o.Cut).
func (l *Lab) Boot(ctx context.Context, img string, o BootOptions) (*BootResult, error) {
	dir, err := os.MkdirTemp(l.Dir, "boot-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	b, err := LoadDefault(img, dir)
	if err != nil {
		return nil, fmt.Errorf("boot loader: %w", err)
	}
	if l.Log != nil {
		note := ""
		if b.Renamed != "" {
			note = fmt.Sprintf(" (boot counting: renamed to %s)", b.Renamed)
		}
		fmt.Fprintf(l.Log, "loader: booting %s %q%s\n", b.Entry.File, b.Entry.Title, note)
	}
	disks := []string{img}
	if o.Script != "" || o.CtlDir != "" {
		ctl, err := l.controlDisk(dir, o.CtlDir, o.Script)
		if err != nil {
			return nil, err
		}
		disks = append(disks, ctl)
	}
	q := QEMU{Kernel: b.Kernel, Initrd: b.Initrd, Append: strings.TrimSpace(b.Options + " quiet " + o.Append),
		Disks: disks, Timeout: o.Timeout, Cut: o.Cut, Console: l.Console}
	res, err := q.Run(ctx)
	if res == nil {
		return nil, err
	}
	return &BootResult{Result: res, Boot: b}, err
}

// controlDisk makes the ext4 image that the demo OS's init looks for on
// /dev/vdb: content's files (when set) plus run.sh.
func (l *Lab) controlDisk(dir, content, script string) (string, error) {
	src := content
	if src == "" {
		src = filepath.Join(dir, "ctl")
		if err := os.MkdirAll(src, 0o755); err != nil {
			return "", err
		}
	}
	if script != "" {
		if err := os.WriteFile(filepath.Join(src, "run.sh"), []byte(script), 0o755); err != nil {
			return "", err
		}
	}
	size, err := dirSizeMB(src)
	if err != nil {
		return "", err
	}
	img := filepath.Join(dir, "ctl.img")
	if err := MakeDisk(img, 2*size+32, src); err != nil {
		return "", err
	}
	return img, nil
}

func dirSizeMB(dir string) (int, error) {
	var total int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	return int(total>>20) + 1, err
}

// BootedVersion returns the VERSION_ID the booted system reported on
// the console ("STRATA-BOOTED version=N"), or "" when none booted.
func (r *Result) BootedVersion() string {
	for _, line := range r.Lines() {
		if i := strings.Index(line, "STRATA-BOOTED version="); i >= 0 {
			return strings.TrimSpace(line[i+len("STRATA-BOOTED version="):])
		}
	}
	return ""
}

// Has reports whether a console line contains s.
func (r *Result) Has(s string) bool {
	for _, line := range r.Lines() {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// BootFirmware boots the installed disk image img (strata install
// to-disk) through its own boot loader: firmware "ovmf" (UEFI, the
// variable store vars kept by the caller between boots of one machine)
// or "bios" (SeaBIOS). The control disk and the wait are as in Boot.
func (l *Lab) BootFirmware(ctx context.Context, img, firmware, vars string, o BootOptions) (*Result, error) {
	dir, err := os.MkdirTemp(l.Dir, "boot-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	disks := []string{img}
	if o.Script != "" || o.CtlDir != "" {
		ctl, err := l.controlDisk(dir, o.CtlDir, o.Script)
		if err != nil {
			return nil, err
		}
		disks = append(disks, ctl)
	}
	q := QEMU{Disks: disks, Timeout: o.Timeout, Cut: o.Cut, Console: l.Console, Firmware: firmware, OVMFVars: vars}
	return q.Run(ctx)
}
