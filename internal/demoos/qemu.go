package demoos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MakeDisk creates a sparse ext4 image of sizeMB megabytes, populated from
// dir when dir is not empty.
func MakeDisk(img string, sizeMB int, dir string) error {
	if err := os.Truncate(img, 0); err != nil && !os.IsNotExist(err) {
		return err
	}
	f, err := os.Create(img)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(sizeMB) << 20); err != nil {
		f.Close()
		return err
	}
	f.Close()
	args := []string{"-q", "-F", "-E", "root_owner=0:0"}
	if dir != "" {
		args = append(args, "-d", dir)
	}
	args = append(args, img)
	if out, err := exec.Command("mkfs.ext4", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %v: %s", img, err, out)
	}
	return nil
}

// MountImage loop-mounts img at dir; the returned function unmounts it.
func MountImage(img, dir string) (func() error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if out, err := exec.Command("mount", "-o", "loop", img, dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mount %s: %v: %s", img, err, out)
	}
	return func() error {
		exec.Command("sync").Run()
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("umount %s: %v: %s", dir, err, out)
		}
		return nil
	}, nil
}

// Entry is a Boot Loader Specification entry.
type Entry struct {
	File    string
	Title   string
	Version int
	Linux   string
	Initrd  string
	Options string
}

// ParseEntry parses a BLS entry file's text.
func ParseEntry(name, text string) (*Entry, error) {
	e := &Entry{File: name}
	for _, line := range strings.Split(text, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		v = strings.TrimSpace(v)
		switch k {
		case "title":
			e.Title = v
		case "version":
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("%s: bad version %q", name, v)
			}
			e.Version = n
		case "linux":
			e.Linux = v
		case "initrd":
			e.Initrd = v
		case "options":
			e.Options = v
		}
	}
	if e.Linux == "" {
		return nil, fmt.Errorf("%s: no linux line", name)
	}
	return e, nil
}

// Entries reads boot/loader/entries of the sysroot mounted at mnt, the
// default (highest version, as BLS loaders sort) first.
func Entries(mnt string) ([]*Entry, error) {
	dir := filepath.Join(mnt, "boot/loader/entries")
	names, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		e, err := ParseEntry(filepath.Base(n), string(data))
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no boot entries in %s", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version > out[j].Version })
	return out, nil
}

// bootPath finds a kernel or initramfs named by an entry: BLS paths are
// relative to the partition holding /boot, which here is the root.
func bootPath(mnt, p string) (string, error) {
	for _, c := range []string{filepath.Join(mnt, "boot", p), filepath.Join(mnt, p)} {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("boot file %s not found under %s", p, mnt)
}

// BootFiles copies an entry's kernel and initramfs out of the mounted
// sysroot into dir, as a boot loader would load them.
func BootFiles(mnt string, e *Entry, dir string) (kernel, initrd string, err error) {
	kp, err := bootPath(mnt, e.Linux)
	if err != nil {
		return "", "", err
	}
	kernel = filepath.Join(dir, "vmlinuz")
	if err := copyFile(kp, kernel, 0o644); err != nil {
		return "", "", err
	}
	if e.Initrd != "" {
		ip, err := bootPath(mnt, e.Initrd)
		if err != nil {
			return "", "", err
		}
		initrd = filepath.Join(dir, "initrd")
		if err := copyFile(ip, initrd, 0o644); err != nil {
			return "", "", err
		}
	}
	return kernel, initrd, nil
}

// QEMU boots a kernel under TCG (no KVM) with the disks attached as
// virtio drives and returns what the serial console printed.
type QEMU struct {
	Kernel, Initrd, Append string
	Disks                  []string // vda, vdb, ...
	Timeout                time.Duration
	MemoryMB               int
	// Kill, when non-zero, kills QEMU after this long (a power cut).
	Kill time.Duration
}

// Run boots and waits for the guest to power off (or Kill/Timeout).
func (q *QEMU) Run(ctx context.Context) (string, error) {
	mem := q.MemoryMB
	if mem == 0 {
		mem = 512
	}
	args := []string{"-m", strconv.Itoa(mem), "-nographic", "-no-reboot", "-nodefaults",
		"-serial", "stdio", "-kernel", q.Kernel, "-append", q.Append + " console=ttyS0 panic=-1"}
	if q.Initrd != "" {
		args = append(args, "-initrd", q.Initrd)
	}
	for _, d := range q.Disks {
		args = append(args, "-drive", "file="+d+",format=raw,if=virtio,cache=writeback")
	}
	timeout := q.Timeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	if q.Kill != 0 && q.Kill < timeout {
		timeout = q.Kill
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, "qemu-system-x86_64", args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if q.Kill != 0 && cctx.Err() != nil {
		return out.String(), nil // the power cut we asked for
	}
	if cctx.Err() != nil {
		return out.String(), fmt.Errorf("qemu: no power-off within %s", timeout)
	}
	if err != nil {
		return out.String(), fmt.Errorf("qemu: %v", err)
	}
	return out.String(), nil
}
