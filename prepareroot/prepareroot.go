// Package prepareroot is the boot-time step that turns a mounted physical
// root into the booted deployment, with the contract of OSTree's
// `ostree-prepare-root /sysroot`: it runs in the initramfs after the
// physical root is mounted at SYSROOT and before switch_root.
//
// After Run, SYSROOT is the deployment's root, with:
//   - /usr a read-only bind mount;
//   - /etc writable (part of the deployment directory);
//   - /var the stateroot's ostree/deploy/$os/var, bind-mounted;
//   - /sysroot the physical root (read-only with sysroot.readonly=true);
//   - /run a tmpfs holding ostree-booted, which marks a booted system.
//
// It uses only raw syscalls, so it works from a static binary in a busybox
// initramfs.
package prepareroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNoDeployment is returned when ostree= names no deployment.
var ErrNoDeployment = errors.New("deployment not found")

// Mounter performs mounts; tests may record instead of mounting.
type Mounter interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
}

type sysMounter struct{}

func (sysMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", source, target, err)
	}
	return nil
}

// Options adjust Run.
type Options struct {
	// Cmdline is the kernel command line; empty reads /proc/cmdline.
	Cmdline string
	// Mounter defaults to real mount(2) calls.
	Mounter Mounter
}

// KernelArg returns the value of key=... on a kernel command line.
func KernelArg(cmdline, key string) (string, bool) {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// Deployment is what ostree= resolved to.
type Deployment struct {
	Path      string // absolute, under the sysroot
	OS        string // stateroot name
	Stateroot string // sysroot/ostree/deploy/$os
}

// Resolve follows the ostree= argument (e.g. /ostree/boot.1/os/CSUM/0)
// inside sysroot, treating every symlink as relative to sysroot, and
// returns the deployment directory it names.
func Resolve(sysroot, ostreeArg string) (*Deployment, error) {
	if ostreeArg == "" || !strings.HasPrefix(ostreeArg, "/") {
		return nil, fmt.Errorf("%w: invalid ostree=%q", ErrNoDeployment, ostreeArg)
	}
	rel, err := resolveIn(sysroot, ostreeArg)
	if err != nil {
		return nil, fmt.Errorf("%w: ostree=%s: %v", ErrNoDeployment, ostreeArg, err)
	}
	full := filepath.Join(sysroot, rel)
	st, err := os.Stat(full)
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: ostree=%s resolves to %s, which is not a directory", ErrNoDeployment, ostreeArg, rel)
	}
	// rel must be /ostree/deploy/$os/deploy/$csum.$serial.
	parts := strings.Split(strings.Trim(rel, "/"), "/")
	if len(parts) != 5 || parts[0] != "ostree" || parts[1] != "deploy" || parts[3] != "deploy" {
		return nil, fmt.Errorf("%w: ostree=%s resolves to %s, not a deployment directory", ErrNoDeployment, ostreeArg, rel)
	}
	return &Deployment{Path: full, OS: parts[2], Stateroot: filepath.Join(sysroot, "ostree/deploy", parts[2])}, nil
}

// resolveIn resolves p (absolute, relative to root) component by component,
// never leaving root: ".." at root stays at root, absolute link targets
// restart at root.
func resolveIn(root, p string) (string, error) {
	todo := strings.Split(strings.Trim(p, "/"), "/")
	cur := "/"
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		st, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if st.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		hops++
		if hops > 40 {
			return "", errors.New("too many levels of symbolic links")
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return cur, nil
}

// readonlySysroot reports sysroot.readonly=true in the repo config.
func readonlySysroot(sysroot string) bool {
	data, err := os.ReadFile(filepath.Join(sysroot, "ostree/repo/config"))
	if err != nil {
		return false
	}
	group := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			group = strings.Trim(line, "[]")
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && group == "sysroot" && strings.TrimSpace(k) == "readonly" {
			return strings.TrimSpace(v) == "true"
		}
	}
	return false
}

// Run prepares the deployment named by ostree= as the new root at sysroot.
func Run(sysroot string, o Options) (*Deployment, error) {
	cmdline := o.Cmdline
	if cmdline == "" {
		data, err := os.ReadFile("/proc/cmdline")
		if err != nil {
			return nil, fmt.Errorf("reading kernel command line: %w", err)
		}
		cmdline = string(data)
	}
	m := o.Mounter
	if m == nil {
		m = sysMounter{}
	}
	arg, ok := KernelArg(cmdline, "ostree")
	if !ok {
		return nil, fmt.Errorf("%w: no ostree= on the kernel command line", ErrNoDeployment)
	}
	d, err := Resolve(sysroot, arg)
	if err != nil {
		return nil, err
	}
	ro := readonlySysroot(sysroot)
	dep := d.Path
	// 1. The deployment becomes a mount point of its own.
	if err := m.Mount(dep, dep, "", unix.MS_BIND|unix.MS_SILENT, ""); err != nil {
		return nil, err
	}
	// 2. The physical root stays reachable at /sysroot.
	if err := os.MkdirAll(filepath.Join(dep, "sysroot"), 0o755); err != nil {
		return nil, err
	}
	if err := m.Mount(sysroot, filepath.Join(dep, "sysroot"), "", unix.MS_BIND|unix.MS_SILENT, ""); err != nil {
		return nil, err
	}
	if ro {
		if err := m.Mount("", filepath.Join(dep, "sysroot"), "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_SILENT, ""); err != nil {
			return nil, err
		}
	}
	// 3. /var is the stateroot's, shared by every deployment of this OS.
	if err := os.MkdirAll(filepath.Join(dep, "var"), 0o755); err != nil {
		return nil, err
	}
	if err := m.Mount(filepath.Join(d.Stateroot, "var"), filepath.Join(dep, "var"), "", unix.MS_BIND|unix.MS_SILENT, ""); err != nil {
		return nil, err
	}
	// 4. /usr is read-only.
	usr := filepath.Join(dep, "usr")
	if err := m.Mount(usr, usr, "", unix.MS_BIND|unix.MS_SILENT, ""); err != nil {
		return nil, err
	}
	if err := m.Mount("", usr, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_SILENT, ""); err != nil {
		return nil, err
	}
	// 5. /run marks the booted system.
	run := filepath.Join(dep, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return nil, err
	}
	if err := m.Mount("tmpfs", run, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(run, "ostree-booted"), nil, 0o644); err != nil {
		return nil, fmt.Errorf("marking the booted system: %w", err)
	}
	// 6. Last: the deployment replaces the physical root at sysroot.
	if err := m.Mount(dep, sysroot, "", unix.MS_MOVE|unix.MS_SILENT, ""); err != nil {
		return nil, err
	}
	return d, nil
}
