package sysroot

import (
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

	"github.com/strata-os/strata/objects"
)

// kernelLayout is where a deployment's kernel, initramfs and device tree
// are, and the names they get in boot/ostree/$os-$bootcsum/, found as
// ostree does.
type kernelLayout struct {
	dir                           string // absolute directory holding the sources
	kernelSrc, kernelName         string
	initramfsSrc, initramfsName   string // empty without an initramfs
	devicetreeSrc, devicetreeName string // devicetreeName empty with a dtb/ directory
	hmacSrc, hmacName             string // FIPS .vmlinuz.hmac
	bootcsum                      string
}

// errNoKernel reports a tree without a kernel.
var errNoKernel = fmt.Errorf("%w: failed to find kernel in /usr/lib/modules, /usr/lib/ostree-boot or /boot", ErrNotFound)

// findKernel locates the kernel of the deployment tree at root. The
// current layout, usr/lib/modules/$kver/{vmlinuz,initramfs.img}, wins
// unless it has no initramfs and a legacy layout (usr/lib/ostree-boot or
// boot, with vmlinuz-$kver-$bootcsum) has one.
func findKernel(root string) (*kernelLayout, error) {
	mod, err := kernelFromModules(root)
	if err != nil {
		return nil, err
	}
	legacy, err := kernelFromLegacy(root)
	if err != nil {
		return nil, err
	}
	switch {
	case legacy == nil && mod == nil:
		return nil, fmt.Errorf("%w (in %s)", errNoKernel, root)
	case legacy == nil:
		return mod, nil
	case mod != nil && mod.initramfsSrc == "" && legacy.initramfsSrc != "":
		return legacy, nil
	case mod != nil:
		return mod, nil
	}
	return legacy, nil
}

// kernelFromModules looks for usr/lib/modules/$kver/vmlinuz (a regular
// file, symlinks followed); directories are tried in name order. The
// bootcsum is the SHA-256 of the kernel, the initramfs and the device
// tree(s), in that order.
func kernelFromModules(root string) (*kernelLayout, error) {
	modules := filepath.Join(root, "usr/lib/modules")
	ents, err := os.ReadDir(modules)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find kernel: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	var l *kernelLayout
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		st, err := os.Stat(filepath.Join(modules, e.Name(), "vmlinuz"))
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		kver := e.Name()
		l = &kernelLayout{dir: filepath.Join(modules, kver), kernelSrc: "vmlinuz", kernelName: "vmlinuz-" + kver}
		break
	}
	if l == nil {
		return nil, nil
	}
	kver := strings.TrimPrefix(l.kernelName, "vmlinuz-")
	h := sha256.New()
	if err := hashFile(h, filepath.Join(l.dir, l.kernelSrc)); err != nil {
		return nil, err
	}
	for _, name := range []string{"initramfs.img", "initramfs"} {
		p := filepath.Join(l.dir, name)
		if _, err := os.Stat(p); err == nil {
			l.initramfsSrc, l.initramfsName = name, "initramfs-"+kver+".img"
			if err := hashFile(h, p); err != nil {
				return nil, err
			}
			break
		}
	}
	if p := filepath.Join(l.dir, "devicetree"); exists(p) {
		l.devicetreeSrc, l.devicetreeName = "devicetree", "devicetree-"+kver
		if err := hashFile(h, p); err != nil {
			return nil, err
		}
	} else if st, err := os.Stat(filepath.Join(l.dir, "dtb")); err == nil && st.IsDir() {
		l.devicetreeSrc = "dtb"
		if err := hashDir(h, filepath.Join(l.dir, "dtb")); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(l.dir, ".vmlinuz.hmac")); err == nil {
		l.hmacSrc, l.hmacName = ".vmlinuz.hmac", "."+l.kernelName+".hmac"
	}
	l.bootcsum = hex.EncodeToString(h.Sum(nil))
	return l, nil
}

// kernelFromLegacy looks in usr/lib/ostree-boot, else boot, for
// vmlinuz-*-$bootcsum (and initramfs-*, devicetree-* with the same
// checksum), the layout where the tree builder names the checksum.
func kernelFromLegacy(root string) (*kernelLayout, error) {
	var dir string
	for _, p := range []string{"usr/lib/ostree-boot", "boot"} {
		st, err := os.Stat(filepath.Join(root, p))
		if err == nil && st.IsDir() {
			dir = filepath.Join(root, p)
			break
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("find kernel: %w", err)
		}
	}
	if dir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("find kernel: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	l := &kernelLayout{dir: dir}
	var kcsum, icsum, dcsum string
	split := func(name string) (string, string, bool) {
		i := strings.LastIndexByte(name, '-')
		if _, err := objects.ParseChecksum(name[i+1:]); err != nil || strings.ContainsAny(name[i+1:], "ABCDEF") {
			return "", "", false
		}
		return name[:i], name[i+1:], true
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case l.kernelSrc == "" && strings.HasPrefix(name, "vmlinuz-"):
			if base, cs, ok := split(name); ok {
				l.kernelSrc, l.kernelName, kcsum = name, base, cs
			}
		case l.initramfsSrc == "" && strings.HasPrefix(name, "initramfs-"):
			if base, cs, ok := split(name); ok {
				l.initramfsSrc, l.initramfsName, icsum = name, base, cs
			}
		case l.devicetreeSrc == "" && strings.HasPrefix(name, "devicetree-"):
			if base, cs, ok := split(name); ok {
				l.devicetreeSrc, l.devicetreeName, dcsum = name, base, cs
			}
		}
	}
	if l.kernelSrc == "" {
		return nil, nil
	}
	if l.initramfsSrc != "" && icsum != kcsum {
		return nil, fmt.Errorf("%w: mismatched kernel checksum vs initrd in %s", ErrInvalid, dir)
	}
	if l.devicetreeSrc != "" && dcsum != kcsum {
		return nil, fmt.Errorf("%w: mismatched kernel checksum vs device tree in %s", ErrInvalid, dir)
	}
	l.bootcsum = kcsum
	return l, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func hashFile(h hash.Hash, p string) error {
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

// hashDir hashes the files under dir in name order, recursively.
func hashDir(h hash.Hash, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("find kernel: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := hashDir(h, p); err != nil {
				return err
			}
			continue
		}
		if err := hashFile(h, p); err != nil {
			return err
		}
	}
	return nil
}
