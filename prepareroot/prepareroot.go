// Package prepareroot is the boot-time step that turns a mounted physical
// root into the booted deployment, with the contract of OSTree's
// `ostree-prepare-root /sysroot`: it runs in the initramfs after the
// physical root is mounted at SYSROOT and before switch_root.
//
// After Run, SYSROOT is the deployment's root, with:
//   - /usr a read-only bind mount;
//   - /etc writable (part of the deployment directory; its own writable
//     bind mount when the sysroot is read-only);
//   - /var the stateroot's ostree/deploy/$os/var, bind-mounted;
//   - /sysroot the physical root itself (moved there, not a second mount),
//     read-only when the repo config says [sysroot] readonly=true;
//   - /boot the physical root's /boot when /boot/loader is a symlink there;
//   - $RunDir/ostree-booted (the initramfs's /run, which the initramfs
//     carries into the new root) marking a booted system.
//
// The mounts are made in OSTree's order: the deployment is bind-mounted at
// SYSROOT.tmp and assembled there, the physical root is moved into its
// /sysroot, and the assembled tree is moved onto SYSROOT. A missing
// deployment is reported before anything is mounted.
//
// It uses only raw syscalls, so it works from a static binary
// (CGO_ENABLED=0) in a busybox initramfs.
package prepareroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/repo"
)

// ErrNoDeployment is returned when ostree= names no deployment.
var ErrNoDeployment = errors.New("deployment not found")

// Mounter performs mount(2) calls; tests may record instead of mounting.
// Mount must return an error naming target when the call fails.
type Mounter interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
}

type sysMounter struct{}

func (sysMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %q on %s (flags %#x): %w", source, target, flags, err)
	}
	return nil
}

// Options adjust Run.
type Options struct {
	// Cmdline is the kernel command line; empty reads /proc/cmdline.
	Cmdline string
	// Mounter defaults to real mount(2) calls.
	Mounter Mounter
	// RunDir receives the ostree-booted marker (and, with a read-only
	// sysroot, ostree-sysroot-ro.stamp), as ostree-prepare-root writes
	// them into the initramfs's /run. Default "/run".
	RunDir string
}

// KernelArg returns the value of the first key=... on a kernel command
// line, as ostree-prepare-root reads ostree=.
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
// returns the deployment directory it names. Errors wrap ErrNoDeployment
// and fit on one line.
func Resolve(sysroot, ostreeArg string) (*Deployment, error) {
	if ostreeArg == "" || !strings.HasPrefix(ostreeArg, "/") {
		return nil, fmt.Errorf("%w: invalid ostree=%q (want an absolute path such as /ostree/boot.1/OS/BOOTCSUM/0)", ErrNoDeployment, ostreeArg)
	}
	rel, err := resolveIn(sysroot, ostreeArg)
	if err != nil {
		return nil, fmt.Errorf("%w: ostree=%s does not exist under %s (%v)", ErrNoDeployment, ostreeArg, sysroot, err)
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
			return "", fmt.Errorf("%s: %w", next, errors.Unwrap(err))
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

// ReadonlySysroot reports whether the sysroot's repo config sets
// [sysroot] readonly=true, as ostree-prepare-root reads it. A missing or
// unreadable config means false (ostree warns and carries on); an invalid
// boolean is an error.
func ReadonlySysroot(sysroot string) (bool, error) {
	p := filepath.Join(sysroot, "ostree/repo/config")
	data, err := os.ReadFile(p)
	if err != nil {
		return false, nil
	}
	kf, err := repo.ParseKeyFile(string(data))
	if err != nil {
		return false, fmt.Errorf("%s: %w", p, err)
	}
	ro, err := kf.GetBool("sysroot", "readonly", false)
	if err != nil {
		return false, fmt.Errorf("%s: %w", p, err)
	}
	return ro, nil
}

// Run prepares the deployment named by ostree= as the new root at sysroot.
// Nothing is mounted when the deployment cannot be found.
func Run(sysroot string, o Options) (*Deployment, error) {
	sysroot = filepath.Clean(sysroot)
	if sysroot == "/" {
		return nil, errors.New("prepare-root: running as pid 1 on / is not supported; mount the physical root at /sysroot and pass that")
	}
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
	runDir := o.RunDir
	if runDir == "" {
		runDir = "/run"
	}
	arg, ok := KernelArg(cmdline, "ostree")
	if !ok {
		return nil, fmt.Errorf("%w: no ostree= on the kernel command line", ErrNoDeployment)
	}
	d, err := Resolve(sysroot, arg)
	if err != nil {
		return nil, err
	}
	ro, err := ReadonlySysroot(sysroot)
	if err != nil {
		return nil, err
	}
	if ro {
		var st unix.Statfs_t
		if err := unix.Statfs(sysroot, &st); err != nil {
			return nil, fmt.Errorf("statfs %s: %w", sysroot, err)
		}
		if st.Flags&unix.ST_RDONLY != 0 {
			return nil, fmt.Errorf("sysroot.readonly=true requires %s to be mounted writable at this point", sysroot)
		}
	}
	bind := func(src, dst string) error { return m.Mount(src, dst, "", unix.MS_BIND|unix.MS_SILENT, "") }
	remount := func(p string, flags uintptr) error {
		return m.Mount(p, p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_SILENT|flags, "")
	}

	// Shared mounts cannot be moved: make the whole tree private first.
	if err := m.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE|unix.MS_SILENT, ""); err != nil {
		return nil, err
	}
	// 1. The deployment is assembled at SYSROOT.tmp, outside the physical
	// root, so that the physical root can later be moved beneath it.
	tmp := sysroot + ".tmp"
	if err := os.Mkdir(tmp, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("creating %s: %w", tmp, err)
	}
	if err := bind(d.Path, tmp); err != nil {
		return nil, err
	}
	// 2. /boot: the physical root's, when it holds the loader symlink.
	if st, err := os.Lstat(filepath.Join(sysroot, "boot/loader")); err == nil && st.Mode()&os.ModeSymlink != 0 {
		if st, err := os.Lstat(filepath.Join(tmp, "boot")); err == nil && st.IsDir() {
			if err := bind(filepath.Join(sysroot, "boot"), filepath.Join(tmp, "boot")); err != nil {
				return nil, err
			}
		}
	}
	// 3. /etc: with a read-only sysroot, a writable mount of its own.
	if ro {
		etc := filepath.Join(tmp, "etc")
		if err := bind(etc, etc); err != nil {
			return nil, err
		}
		if err := remount(etc, 0); err != nil {
			return nil, err
		}
	}
	// 4. /usr is read-only.
	usr := filepath.Join(tmp, "usr")
	if err := bind(usr, usr); err != nil {
		return nil, err
	}
	if err := remount(usr, unix.MS_RDONLY); err != nil {
		return nil, err
	}
	// 5. /var is the stateroot's, shared by every deployment of this OS;
	// with a read-only sysroot the stateroot's var stays writable through
	// a mount of its own.
	svar := filepath.Join(d.Stateroot, "var")
	if ro {
		if err := bind(svar, svar); err != nil {
			return nil, err
		}
		if err := remount(svar, 0); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(tmp, "var"), 0o755); err != nil {
		return nil, fmt.Errorf("creating /var in %s: %w", d.Path, err)
	}
	if err := bind(svar, filepath.Join(tmp, "var")); err != nil {
		return nil, err
	}
	// 6. Mark the booted system in the initramfs's /run.
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", runDir, err)
	}
	marks := []string{"ostree-booted"}
	if ro {
		marks = append(marks, "ostree-sysroot-ro.stamp")
	}
	for _, name := range marks {
		if err := os.WriteFile(filepath.Join(runDir, name), nil, 0o644); err != nil {
			return nil, fmt.Errorf("marking the booted system: %w", err)
		}
	}
	// 7. The physical root moves to /sysroot of the assembled tree, which
	// then moves onto SYSROOT.
	if err := os.MkdirAll(filepath.Join(tmp, "sysroot"), 0o755); err != nil {
		return nil, fmt.Errorf("creating /sysroot in %s: %w", d.Path, err)
	}
	phys := filepath.Join(sysroot, "sysroot")
	if err := m.Mount(sysroot, filepath.Join(tmp, "sysroot"), "", unix.MS_MOVE|unix.MS_SILENT, ""); err != nil {
		return nil, err
	}
	if err := m.Mount(tmp, sysroot, "", unix.MS_MOVE|unix.MS_SILENT, ""); err != nil {
		return nil, err
	}
	if err := os.Remove(tmp); err != nil {
		return nil, fmt.Errorf("removing %s: %w", tmp, err)
	}
	// 8. Last, the physical root becomes read-only when configured; what
	// stays writable is /etc and /var (their own mounts).
	if ro {
		if err := remount(phys, unix.MS_RDONLY); err != nil {
			return nil, err
		}
	}
	if err := m.Mount("", phys, "", unix.MS_PRIVATE|unix.MS_SILENT, ""); err != nil {
		return nil, err
	}
	return d, nil
}
