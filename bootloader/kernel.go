package bootloader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
)

// KernelLayout is where a deployment tree keeps its kernel, initramfs,
// device tree and FIPS HMAC, and the names ostree gives them in
// boot/ostree/$os-$bootcsum/. Source paths are relative to Dir; an empty
// source means the tree has none.
type KernelLayout struct {
	// Dir is the absolute directory holding the sources:
	// ROOT/usr/lib/modules/$kver, ROOT/usr/lib/ostree-boot or ROOT/boot.
	Dir string
	// Root is the tree (ROOT) and RelDir is Dir relative to it. The
	// sources are opened inside Root only (OpenFile): a symlink of the
	// tree resolves as it would with Root as "/", never outside it.
	Root, RelDir string
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

// MaxBootFileSize bounds each kernel, initramfs and device tree file
// read from a tree.
const MaxBootFileSize = 2 << 30

// ErrNoKernel reports a tree without a kernel; it wraps errdefs.ErrNotFound.
var ErrNoKernel = fmt.Errorf("failed to find kernel in /usr/lib/modules, /usr/lib/ostree-boot or /boot: %w", errdefs.ErrNotFound)

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
//
// The tree is not trusted: every path is resolved inside root (symlinks
// as if root were "/", fsutil.OpenInRoot), so a symlink to a host file
// leads nowhere; an initramfs, device tree or HMAC that exists but is not
// a regular file inside the tree (a FIFO, a directory, a symlink leading
// out) is refused (ErrInvalid), as is a file larger than MaxBootFileSize
// or a kernel version that cannot be written into a boot entry
// (CheckBootName). Reads stop when ctx is cancelled.
func FindKernel(ctx context.Context, root string) (*KernelLayout, error) {
	t, err := openTree(root)
	if err != nil {
		return nil, fmt.Errorf("find kernel: %w", err)
	}
	defer t.close()
	mod, err := kernelFromModules(ctx, t)
	if err != nil {
		return nil, err
	}
	legacy, err := kernelFromLegacy(t)
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

// OpenFile opens the source name (l.Kernel, l.Initramfs, ...; for the
// dtb directory a path below it) inside l.Root, as FindKernel resolved
// it: a regular file of the tree, or an error.
func (l *KernelLayout) OpenFile(name string) (*os.File, error) {
	t, err := openTree(l.Root)
	if err != nil {
		return nil, err
	}
	defer t.close()
	f, ok, err := t.open(path.Join(l.RelDir, name))
	if err == nil && !ok {
		err = fmt.Errorf("%s: %w", path.Join(l.RelDir, name), os.ErrNotExist)
	}
	return f, err
}

// DevicetreeFiles lists the files below the dtb directory (l.Devicetree
// with DevicetreeName empty), relative to it, in the order the boot
// checksum hashes them; dangling symlinks are left out.
func (l *KernelLayout) DevicetreeFiles(ctx context.Context) ([]string, error) {
	t, err := openTree(l.Root)
	if err != nil {
		return nil, err
	}
	defer t.close()
	var out []string
	err = t.walkDir(ctx, path.Join(l.RelDir, l.Devicetree), func(rel string, f *os.File) error {
		out = append(out, strings.TrimPrefix(rel, path.Join(l.RelDir, l.Devicetree)+"/"))
		return nil
	})
	return out, err
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

// tree is a deployment tree opened for lookups inside it.
type tree struct {
	root string
	fd   int
}

func openTree(root string) (*tree, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	return &tree{root: root, fd: fd}, nil
}

func (t *tree) close() { unix.Close(t.fd) }

// readdir lists the directory rel in directory order, as readdir(3)
// returns it.
func (t *tree) readdir(rel string) ([]os.DirEntry, error) {
	fd, err := fsutil.OpenInRoot(t.fd, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	return f.ReadDir(-1)
}

// open opens the regular file rel of the tree. A name that does not exist
// gives ok false; one that exists but is not a regular file inside the
// tree (a symlink leading out or nowhere, a FIFO, a directory) is an
// error wrapping ErrInvalid.
func (t *tree) open(rel string) (f *os.File, ok bool, err error) {
	f, err = fsutil.OpenRegularInRoot(t.fd, rel)
	switch {
	case err == nil:
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("find kernel: %w", err)
		}
		if st.Size > MaxBootFileSize {
			f.Close()
			return nil, false, fmt.Errorf("%w: /%s is larger than %d bytes", errdefs.ErrInvalid, rel, int64(MaxBootFileSize))
		}
		return f, true, nil
	case errors.Is(err, fsutil.ErrNotRegular):
		return nil, false, fmt.Errorf("%w: /%s is not a regular file", errdefs.ErrInvalid, rel)
	case errors.Is(err, os.ErrNotExist):
		// The entry itself may exist: a symlink leading out of the tree
		// or nowhere.
		if fd, lerr := fsutil.OpenInRoot(t.fd, rel, unix.O_PATH|unix.O_NOFOLLOW); lerr == nil {
			unix.Close(fd)
			return nil, false, fmt.Errorf("%w: /%s is a symlink that leads to no file inside the tree", errdefs.ErrInvalid, rel)
		}
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("find kernel: %w", err)
}

// hash adds the content of the regular file rel to h; ok is false when
// it does not exist.
func (t *tree) hash(ctx context.Context, h hash.Hash, rel string) (ok bool, err error) {
	f, ok, err := t.open(rel)
	if err != nil || !ok {
		return false, err
	}
	defer f.Close()
	if _, err := fsutil.CopyContext(ctx, h, f); err != nil {
		return false, fmt.Errorf("find kernel: read /%s: %w", rel, err)
	}
	return true, nil
}

func kernelFromModules(ctx context.Context, t *tree) (*KernelLayout, error) {
	const modules = "usr/lib/modules"
	ents, err := t.readdir(modules)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find kernel: %w", err)
	}
	var kver string
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() {
			continue
		}
		// ostree takes the first $kver whose vmlinuz is a regular file
		// (symlinks followed, here inside the tree only).
		f, err := fsutil.OpenRegularInRoot(t.fd, path.Join(modules, e.Name(), "vmlinuz"))
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, fsutil.ErrNotRegular) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("find kernel: %w", err)
		}
		f.Close()
		kver = e.Name()
		break
	}
	if kver == "" {
		return nil, nil
	}
	if err := CheckBootName(kver); err != nil {
		return nil, fmt.Errorf("find kernel: /%s/%q: %w", modules, kver, err)
	}
	l := &KernelLayout{
		Dir:        filepath.Join(t.root, modules, kver),
		Root:       t.root,
		RelDir:     path.Join(modules, kver),
		Kernel:     "vmlinuz",
		KernelName: "vmlinuz-" + kver,
	}
	h := sha256.New()
	if _, err := t.hash(ctx, h, path.Join(l.RelDir, l.Kernel)); err != nil {
		return nil, err
	}
	for _, name := range []string{"initramfs.img", "initramfs"} {
		ok, err := t.hash(ctx, h, path.Join(l.RelDir, name))
		if err != nil {
			return nil, err
		}
		if ok {
			l.Initramfs, l.InitramfsName = name, "initramfs-"+kver+".img"
			break
		}
	}
	ok, err := t.hash(ctx, h, path.Join(l.RelDir, "devicetree"))
	switch {
	case err != nil:
		return nil, err
	case ok:
		l.Devicetree, l.DevicetreeName = "devicetree", "devicetree-"+kver
	default:
		// No devicetree: a dtb/ directory, if any.
		dtb := path.Join(l.RelDir, "dtb")
		if fd, err := fsutil.OpenInRoot(t.fd, dtb, unix.O_PATH|unix.O_DIRECTORY); err == nil {
			unix.Close(fd)
			l.Devicetree = "dtb"
			if err := t.walkDir(ctx, dtb, func(rel string, f *os.File) error {
				_, err := fsutil.CopyContext(ctx, h, f)
				return err
			}); err != nil {
				return nil, err
			}
		}
	}
	f, ok, err := t.open(path.Join(l.RelDir, ".vmlinuz.hmac"))
	if err != nil {
		return nil, err
	}
	if ok {
		f.Close()
		l.HMAC, l.HMACName = ".vmlinuz.hmac", "."+l.KernelName+".hmac"
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

func kernelFromLegacy(t *tree) (*KernelLayout, error) {
	var dir string
	var ents []os.DirEntry
	for _, p := range []string{"usr/lib/ostree-boot", "boot"} {
		d := p
		e, err := t.readdir(d)
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
	l := &KernelLayout{Dir: filepath.Join(t.root, dir), Root: t.root, RelDir: dir, Legacy: true}
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
		return nil, fmt.Errorf("find kernel: %w: mismatched kernel checksum vs initrd in %s", errdefs.ErrInvalid, dir)
	}
	if l.Devicetree != "" && dcsum != kcsum {
		return nil, fmt.Errorf("find kernel: %w: mismatched kernel checksum vs device tree in %s", errdefs.ErrInvalid, dir)
	}
	for _, n := range []string{l.KernelName, l.InitramfsName, l.DevicetreeName} {
		if err := CheckBootName(n); n != "" && err != nil {
			return nil, fmt.Errorf("find kernel: /%s: %q: %w", dir, n, err)
		}
	}
	for _, n := range []string{l.Kernel, l.Initramfs, l.Devicetree} {
		if n == "" {
			continue
		}
		f, ok, err := t.open(path.Join(dir, n))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("find kernel: /%s/%s: %w", dir, n, os.ErrNotExist)
		}
		f.Close()
	}
	l.BootCsum = kcsum
	return l, nil
}

// walkDir calls fn with every file below the directory rel as ostree's
// checksum_dir_recurse visits them: names in byte order, directories (not
// symlinks to them) recursed into, everything else opened with symlinks
// followed inside the tree, dangling ones skipped.
func (t *tree) walkDir(ctx context.Context, rel string, fn func(rel string, f *os.File) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ents, err := t.readdir(rel)
	if err != nil {
		return fmt.Errorf("find kernel: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		p := path.Join(rel, e.Name())
		if e.IsDir() {
			if err := t.walkDir(ctx, p, fn); err != nil {
				return err
			}
			continue
		}
		f, err := fsutil.OpenRegularInRoot(t.fd, p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if errors.Is(err, fsutil.ErrNotRegular) {
			return fmt.Errorf("%w: /%s is not a regular file", errdefs.ErrInvalid, p)
		}
		if err != nil {
			return fmt.Errorf("find kernel: %w", err)
		}
		err = fn(p, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("find kernel: /%s: %w", p, err)
		}
	}
	return nil
}
