package compose

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/progress"
)

// stateLinks are the top-level directories that hold machine state: in an
// image they are symlinks into /var (OSTree's and bootc's layout).
var stateLinks = []struct{ path, varDir, target string }{
	{"home", "home", "var/home"},
	{"opt", "opt", "var/opt"},
	{"srv", "srv", "var/srv"},
	{"root", "roothome", "var/roothome"},
	{"usr/local", "usrlocal", "../var/usrlocal"},
	{"mnt", "mnt", "var/mnt"},
}

// dropUnderVar is what of /var is not carried into the image at all:
// caches, logs, package lists, machine identity and random seeds.
var dropUnderVar = []string{
	"var/cache", "var/log", "var/tmp", "var/backups", "var/mail",
	"var/lib/apt/lists", "var/lib/apt/periodic", "var/lib/dbus/machine-id",
	"var/lib/systemd/random-seed", "var/lib/systemd/catalog/database",
	"var/lib/systemd/deb-systemd-helper-enabled", "var/lib/systemd/deb-systemd-user-helper-enabled",
	"var/lib/dhcp", "var/lib/initramfs-tools", "var/lib/ucf", "var/lib/pam",
	"var/lib/apt/extended_states",
}

// unlayout turns a committed image tree (a ref base) back into the shape
// the build steps expect: /usr/etc to /etc, the dpkg database to
// /var/lib/dpkg. layout is its inverse.
func unlayout(root string) error {
	if _, err := os.Lstat(filepath.Join(root, "usr/etc")); err == nil {
		if err := os.RemoveAll(filepath.Join(root, "etc")); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(root, "usr/etc"), filepath.Join(root, "etc")); err != nil {
			return err
		}
	}
	if _, err := os.Lstat(filepath.Join(root, dpkgDB)); err == nil {
		if err := mkdirAllMode(filepath.Join(root, "var/lib"), 0o755); err != nil {
			return err
		}
		_ = os.Remove(filepath.Join(root, "var/lib/dpkg"))
		return os.Rename(filepath.Join(root, dpkgDB), filepath.Join(root, "var/lib/dpkg"))
	}
	return nil
}

// layoutResult is what layout found.
type layoutResult struct {
	Kernels []string // kernel versions in usr/lib/modules with a vmlinuz
}

// layout arranges root for an image-based boot, as OSTree expects it:
//   - kernel and initramfs in /usr/lib/modules/$kver/{vmlinuz,initramfs.img},
//     /boot empty;
//   - /home, /opt, /srv, /root, /usr/local, /mnt symlinks into /var;
//   - the dpkg database in /usr/lib/sysimage/dpkg, /var/lib/dpkg a link to
//     it made at boot;
//   - /var empty: its directories and links become tmpfiles.d lines, its
//     files (other than caches, logs and the like) move to
//     /usr/share/factory/var and are copied at boot ("C" lines);
//   - /etc moved to /usr/etc;
//   - /sysroot and /ostree -> sysroot/ostree;
//   - nothing in /dev, /proc, /sys, /run, /tmp; no device nodes, sockets
//     or fifos anywhere (each dropped one is reported to w).
func layout(root string, w progress.Warner) (*layoutResult, error) {
	res := &layoutResult{}
	// The root directory itself: as the boot expects it, whatever the
	// umask or owner of the build directory.
	if err := os.Lchown(root, 0, 0); err != nil {
		return nil, err
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return nil, err
	}
	if err := moveKernels(root, res, w); err != nil {
		return nil, err
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "boot"} {
		if err := emptyDir(filepath.Join(root, d)); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "boot", "sysroot"} {
		if err := mkdirAllMode(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := mkdirAllMode(filepath.Join(root, "tmp"), 0o1777|os.ModeSticky); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
		return nil, err
	}
	if err := relink(filepath.Join(root, "ostree"), "sysroot/ostree"); err != nil {
		return nil, err
	}
	if err := mkdirAllMode(filepath.Join(root, "var"), 0o755); err != nil {
		return nil, err
	}
	for _, l := range stateLinks {
		p := filepath.Join(root, l.path)
		st, err := os.Lstat(p)
		if err == nil && st.IsDir() {
			dst := filepath.Join(root, "var", l.varDir)
			if _, err := os.Lstat(dst); err == nil {
				if err := os.RemoveAll(dst); err != nil {
					return nil, err
				}
			}
			if err := os.Rename(p, dst); err != nil {
				return nil, err
			}
		} else if err == nil && st.Mode()&os.ModeSymlink == 0 {
			return nil, fmt.Errorf("/%s is neither a directory nor a symlink: %w", l.path, errdefs.ErrInvalid)
		} else if err == nil {
			// Already a link (a ref base): the boot makes its target.
			if _, err := os.Lstat(filepath.Join(root, "var", l.varDir)); os.IsNotExist(err) {
				if err := mkdirAllMode(filepath.Join(root, "var", l.varDir), 0o755); err != nil {
					return nil, err
				}
			}
		} else {
			if err := mkdirAllMode(filepath.Join(root, "var", l.varDir), 0o755); err != nil {
				return nil, err
			}
		}
		if err := relink(p, l.target); err != nil {
			return nil, err
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "var/lib/dpkg")); err == nil {
		dst := filepath.Join(root, dpkgDB)
		if err := mkdirAllMode(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.RemoveAll(dst); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(root, "var/lib/dpkg"), dst); err != nil {
			return nil, err
		}
	}
	if err := varToTmpfiles(root, w); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(filepath.Join(root, "usr/etc")); err == nil {
		return nil, fmt.Errorf("the tree has both /etc and /usr/etc: %w", errdefs.ErrInvalid)
	}
	if err := os.Rename(filepath.Join(root, "etc"), filepath.Join(root, "usr/etc")); err != nil {
		return nil, err
	}
	if err := dropSpecial(root, w); err != nil {
		return nil, err
	}
	return res, nil
}

func relink(p, target string) error {
	if t, err := os.Readlink(p); err == nil && t == target {
		return nil
	}
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	return os.Symlink(target, p)
}

func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// moveKernels moves /boot/vmlinuz-$kver and /boot/initrd.img-$kver to
// /usr/lib/modules/$kver/{vmlinuz,initramfs.img} and drops the rest of
// /boot and the top-level /vmlinuz and /initrd.img links.
func moveKernels(root string, res *layoutResult, w progress.Warner) error {
	boot := filepath.Join(root, "boot")
	ents, _ := os.ReadDir(boot)
	for _, e := range ents {
		kver, ok := strings.CutPrefix(e.Name(), "vmlinuz-")
		if !ok || e.Type()&fs.ModeSymlink != 0 {
			continue
		}
		mod := filepath.Join(root, "usr/lib/modules", kver)
		if _, err := os.Stat(mod); err != nil {
			return fmt.Errorf("kernel %s has no modules in /usr/lib/modules/%s: %w", kver, kver, errdefs.ErrNotFound)
		}
		if err := os.Rename(filepath.Join(boot, e.Name()), filepath.Join(mod, "vmlinuz")); err != nil {
			return err
		}
		initrd := filepath.Join(boot, "initrd.img-"+kver)
		if _, err := os.Stat(initrd); err != nil {
			return fmt.Errorf("kernel %s has no initramfs (/boot/initrd.img-%s): is initramfs-tools installed? %w", kver, kver, errdefs.ErrNotFound)
		}
		if err := os.Rename(initrd, filepath.Join(mod, "initramfs.img")); err != nil {
			return err
		}
	}
	for _, l := range []string{"vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"} {
		if st, err := os.Lstat(filepath.Join(root, l)); err == nil && st.Mode()&os.ModeSymlink != 0 {
			if err := os.Remove(filepath.Join(root, l)); err != nil {
				return err
			}
		}
	}
	mods, _ := os.ReadDir(filepath.Join(root, "usr/lib/modules"))
	for _, m := range mods {
		if _, err := os.Stat(filepath.Join(root, "usr/lib/modules", m.Name(), "vmlinuz")); err == nil {
			res.Kernels = append(res.Kernels, m.Name())
		}
	}
	sort.Strings(res.Kernels)
	return nil
}

// tmpfilesPaths reads the paths that tmpfiles.d files under root already
// declare (so the generated lines do not duplicate the packages' own).
func tmpfilesPaths(root string, skip string) map[string]bool {
	paths := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(root, "usr/lib/tmpfiles.d/*.conf"))
	for _, f := range files {
		if filepath.Base(f) == skip {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) >= 2 && !strings.HasPrefix(fl[0], "#") {
				paths[fl[1]] = true
			}
		}
	}
	return paths
}

// varToTmpfiles empties /var into tmpfiles.d lines (see layout). Lines of
// an existing strata-compose-var.conf (a ref base) are kept.
func varToTmpfiles(root string, w progress.Warner) error {
	db, err := readIDs(filepath.Join(root, "etc/passwd"), filepath.Join(root, "etc/group"))
	if err != nil {
		return err
	}
	uname := map[int]string{}
	for n, ids := range db.users {
		if _, ok := uname[ids[0]]; !ok || n < uname[ids[0]] {
			uname[ids[0]] = n
		}
	}
	gname := map[int]string{}
	for n, id := range db.groups {
		if _, ok := gname[id]; !ok || n < gname[id] {
			gname[id] = n
		}
	}
	owner := func(st *syscall.Stat_t) string {
		u, g := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
		if n, ok := uname[int(st.Uid)]; ok {
			u = n
		}
		if n, ok := gname[int(st.Gid)]; ok {
			g = n
		}
		return u + " " + g
	}
	known := tmpfilesPaths(root, filepath.Base(tmpfilesVar))
	lines := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(root, tmpfilesVar)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if fl := strings.Fields(l); len(fl) >= 2 && !strings.HasPrefix(fl[0], "#") {
				lines[fl[1]] = l
			}
		}
	}
	lines["/var/lib/dpkg"] = "L /var/lib/dpkg - - - - ../../" + dpkgDB
	drop := map[string]bool{}
	for _, d := range dropUnderVar {
		drop[d] = true
	}
	varDir := filepath.Join(root, "var")
	err = filepath.WalkDir(varDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "var" {
			return nil
		}
		abs := "/" + rel
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		if drop[rel] {
			if d.IsDir() {
				// Keep the directory itself (its packages may expect
				// it), not what is in it.
				if !known[abs] {
					lines[abs] = fmt.Sprintf("d %s %04o %s -", abs, info.Mode().Perm()|specialBits(info.Mode()), owner(st))
				}
				return filepath.SkipDir
			}
			return nil
		}
		for dd := range drop {
			if strings.HasPrefix(rel, dd+"/") {
				return nil
			}
		}
		if known[abs] {
			if d.IsDir() {
				return nil
			}
		}
		switch {
		case d.IsDir():
			if !known[abs] {
				lines[abs] = fmt.Sprintf("d %s %04o %s -", abs, info.Mode().Perm()|specialBits(info.Mode()), owner(st))
			}
		case info.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if !known[abs] {
				lines[abs] = fmt.Sprintf("L %s - - - - %s", abs, t)
			}
		case info.Mode().IsRegular():
			if known[abs] {
				return nil
			}
			// Carried in /usr/share/factory/var, copied at boot.
			dst := filepath.Join(root, factoryVarDir, strings.TrimPrefix(rel, "var/"))
			if err := mkdirAllMode(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := copyPreserving(p, dst, info); err != nil {
				return err
			}
			lines[abs] = fmt.Sprintf("C %s - - - -", abs)
		default:
			w.Warn(fmt.Errorf("dropped %s: not a file, directory or symlink", abs))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := emptyDir(varDir); err != nil {
		return err
	}
	keys := sortedKeys(lines)
	var b bytes.Buffer
	b.WriteString("# Written by strata compose: what the image's /var held, made at boot.\n")
	for _, k := range keys {
		b.WriteString(lines[k] + "\n")
	}
	return writeFileMode(filepath.Join(root, tmpfilesVar), b.Bytes(), 0o644)
}

func specialBits(m os.FileMode) os.FileMode {
	var out os.FileMode
	if m&os.ModeSetuid != 0 {
		out |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		out |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		out |= 0o1000
	}
	return out
}

func copyPreserving(src, dst string, info os.FileInfo) error {
	if err := copyFile(src, dst, info.Mode().Perm()); err != nil {
		return err
	}
	st := info.Sys().(*syscall.Stat_t)
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return os.Chmod(dst, info.Mode().Perm()|modeSpecial(info.Mode()))
}

func modeSpecial(m os.FileMode) os.FileMode {
	return m & (os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
}

// dropSpecial removes device nodes, sockets and fifos anywhere in root;
// OSTree cannot store them.
func dropSpecial(root string, w progress.Warner) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		t := d.Type()
		if t&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeSocket|fs.ModeNamedPipe) != 0 {
			rel, _ := filepath.Rel(root, p)
			w.Warn(fmt.Errorf("dropped /%s: device nodes, sockets and fifos cannot be committed", rel))
			return os.Remove(p)
		}
		return nil
	})
}
