package bootloader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-os/strata/repo"
)

// KernelLayout is where a deployment tree keeps its kernel, initramfs,
// device tree and FIPS HMAC, and the names ostree gives them in
// boot/ostree/$os-$bootcsum/. Source paths are relative to Dir; an empty
// source means the tree has none.
type KernelLayout struct {
	// Dir is the absolute directory holding the sources:
	// ROOT/usr/lib/modules/$kver, ROOT/usr/lib/ostree-boot or ROOT/boot.
	Dir string
	// Legacy is true for the usr/lib/ostree-boot and boot layouts, where
	// the tree builder put the boot checksum into the file names.
	Legacy bool

	Kernel, KernelName       string // "vmlinuz", "vmlinuz-$kver"
	Initramfs, InitramfsName string // "initramfs.img", "initramfs-$kver.img"
	// Devicetree is "devicetree" (named DevicetreeName in /boot) or, with
	// DevicetreeName empty, the directory "dtb" copied whole (the entry
	// then gets "fdtdir" instead of "devicetree").
	Devicetree, DevicetreeName string
	HMAC, HMACName             string // ".vmlinuz.hmac", ".vmlinuz-$kver.hmac"

	// BootCsum names boot/ostree/$os-$bootcsum: the SHA-256 of the kernel,
	// initramfs and device tree contents concatenated (usr/lib/modules), or
	// the checksum in the legacy file names.
	BootCsum string
}

// ErrNoKernel reports a tree without a kernel; it wraps repo.ErrNotFound.
var ErrNoKernel = fmt.Errorf("failed to find kernel in /usr/lib/modules, /usr/lib/ostree-boot or /boot: %w", repo.ErrNotFound)

// FindKernel finds the kernel of the deployment tree at root as ostree
// 2022.7 does (get_kernel_from_tree):
//   - usr/lib/modules/$kver/vmlinuz, the first $kver directory in
//     directory (readdir) order whose vmlinuz is a regular file (symlinks
//     followed), with initramfs.img or initramfs, devicetree or the dtb/
//     directory, and .vmlinuz.hmac beside it; the boot checksum is the
//     SHA-256 over the kernel, the initramfs and the device tree (dtb/:
//     every file below it, names in byte order, recursively);
//   - the legacy layout in usr/lib/ostree-boot, else boot:
//     vmlinuz-$kver-$bootcsum with optional initramfs-$kver.img-$bootcsum
//     and devicetree-$kver-$bootcsum (the first of each in readdir order);
//     their checksums must agree (else ErrInvalid).
//
// The usr/lib/modules layout wins, except when it has no initramfs and the
// legacy one has. A tree with neither fails with ErrNoKernel. Errors name
// the path.
func FindKernel(ctx context.Context, root string) (*KernelLayout, error) {
	mod, err := kernelFromModules(ctx, root)
	if err != nil {
		return nil, err
	}
	legacy, err := kernelFromLegacy(root)
	if err != nil {
		return nil, err
	}
	switch {
	case legacy == nil && mod == nil:
		return nil, fmt.Errorf("%s: %w", root, ErrNoKernel)
	case legacy == nil:
		return mod, nil
	case mod != nil && mod.Initramfs == "" && legacy.Initramfs != "":
		return legacy, nil
	case mod != nil:
		return mod, nil
	}
	return legacy, nil
}

// readdirNames lists dir in directory order, as readdir(3) returns it.
func readdirNames(dir string) ([]os.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

func kernelFromModules(ctx context.Context, root string) (*KernelLayout, error) {
	modules := filepath.Join(root, "usr/lib/modules")
	ents, err := readdirNames(modules)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find kernel: %w", err)
	}
	var kver string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(modules, e.Name(), "vmlinuz")
		st, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("find kernel: %w", err)
		}
		if st.Mode().IsRegular() {
			kver = e.Name()
			break
		}
	}
	if kver == "" {
		return nil, nil
	}
	l := &KernelLayout{
		Dir:        filepath.Join(modules, kver),
		Kernel:     "vmlinuz",
		KernelName: "vmlinuz-" + kver,
	}
	h := sha256.New()
	if err := hashFile(ctx, h, filepath.Join(l.Dir, l.Kernel)); err != nil {
		return nil, err
	}
	for _, name := range []string{"initramfs.img", "initramfs"} {
		err := hashFile(ctx, h, filepath.Join(l.Dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		l.Initramfs, l.InitramfsName = name, "initramfs-"+kver+".img"
		break
	}
	err = hashFile(ctx, h, filepath.Join(l.Dir, "devicetree"))
	switch {
	case err == nil:
		l.Devicetree, l.DevicetreeName = "devicetree", "devicetree-"+kver
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	default:
		st, err := os.Stat(filepath.Join(l.Dir, "dtb"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("find kernel: %w", err)
		}
		if err == nil && st.IsDir() {
			l.Devicetree = "dtb"
			if err := hashDir(ctx, h, filepath.Join(l.Dir, "dtb")); err != nil {
				return nil, err
			}
		}
	}
	_, err = os.Stat(filepath.Join(l.Dir, ".vmlinuz.hmac"))
	switch {
	case err == nil:
		l.HMAC, l.HMACName = ".vmlinuz.hmac", "."+l.KernelName+".hmac"
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("find kernel: %w", err)
	}
	l.BootCsum = hex.EncodeToString(h.Sum(nil))
	return l, nil
}

// isChecksum reports whether s is 64 lowercase hex digits, as
// ostree_validate_structureof_checksum_string requires.
func isChecksum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func kernelFromLegacy(root string) (*KernelLayout, error) {
	var dir string
	var ents []os.DirEntry
	for _, p := range []string{"usr/lib/ostree-boot", "boot"} {
		d := filepath.Join(root, p)
		e, err := readdirNames(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("find kernel: %w", err)
		}
		dir, ents = d, e
		break
	}
	if dir == "" {
		return nil, nil
	}
	l := &KernelLayout{Dir: dir, Legacy: true}
	var kcsum, icsum, dcsum string
	split := func(name string) (namever, csum string, ok bool) {
		i := strings.LastIndexByte(name, '-')
		if !isChecksum(name[i+1:]) {
			return "", "", false
		}
		return name[:i], name[i+1:], true
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case l.Kernel == "" && strings.HasPrefix(name, "vmlinuz-"):
			if nv, cs, ok := split(name); ok {
				l.Kernel, l.KernelName, kcsum = name, nv, cs
			}
		case l.Initramfs == "" && strings.HasPrefix(name, "initramfs-"):
			if nv, cs, ok := split(name); ok {
				l.Initramfs, l.InitramfsName, icsum = name, nv, cs
			}
		case l.Devicetree == "" && strings.HasPrefix(name, "devicetree-"):
			if nv, cs, ok := split(name); ok {
				l.Devicetree, l.DevicetreeName, dcsum = name, nv, cs
			}
		}
		if l.Kernel != "" && l.Initramfs != "" && l.Devicetree != "" {
			break
		}
	}
	if l.Kernel == "" {
		return nil, nil
	}
	if l.Initramfs != "" && icsum != kcsum {
		return nil, fmt.Errorf("find kernel: %w: mismatched kernel checksum vs initrd in %s", repo.ErrInvalid, dir)
	}
	if l.Devicetree != "" && dcsum != kcsum {
		return nil, fmt.Errorf("find kernel: %w: mismatched kernel checksum vs device tree in %s", repo.ErrInvalid, dir)
	}
	l.BootCsum = kcsum
	return l, nil
}

// hashFile adds the content of p (symlinks followed) to h. A missing file
// gives an error satisfying errors.Is(err, os.ErrNotExist).
func hashFile(ctx context.Context, h hash.Hash, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("find kernel: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("find kernel: read %s: %w", p, err)
	}
	return nil
}

// hashDir adds the files below dir to h as ostree's checksum_dir_recurse
// does: names in byte order, directories (not symlinks to them) recursed
// into, everything else opened with symlinks followed, dangling ones
// skipped.
func hashDir(ctx context.Context, h hash.Hash, dir string) error {
	ents, err := readdirNames(dir)
	if err != nil {
		return fmt.Errorf("find kernel: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		st, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("find kernel: %w", err)
		}
		if st.IsDir() {
			if err := hashDir(ctx, h, p); err != nil {
				return err
			}
			continue
		}
		if err := hashFile(ctx, h, p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
