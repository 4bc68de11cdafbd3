package compose

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/progress"
)

// stateLinks are the top-level directories that hold machine state: in an
// image they are symlinks into /var (OSTree's and bootc's layout).
// mode is the directory's mode when the layout has to make it (a ref
// base, whose directory is already a link), as Debian makes it.
var stateLinks = []struct {
	path, varDir, target string
	mode                 os.FileMode
}{
	{"home", "home", "var/home", 0o755},
	{"opt", "opt", "var/opt", 0o755},
	{"srv", "srv", "var/srv", 0o755},
	{"root", "roothome", "var/roothome", 0o700},
	{"usr/local", "usrlocal", "../var/usrlocal", 0o755},
	{"mnt", "mnt", "var/mnt", 0o755},
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
	t, err := openTree(root)
	if err != nil {
		return err
	}
	defer t.Close()
	if st, err := t.Lstat("usr/etc"); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("the base's /usr/etc is not a directory (%s): %w", st.Mode().Type(), errdefs.ErrInvalid)
		}
		if err := t.RemoveAll("etc"); err != nil {
			return err
		}
		if err := t.Rename("usr/etc", "etc"); err != nil {
			return err
		}
	} else if !os.IsNotExist(err) {
		return err
	}
	if st, err := t.Lstat(dpkgDB); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("the base's /%s is not a directory (%s): %w", dpkgDB, st.Mode().Type(), errdefs.ErrInvalid)
		}
		if err := t.mkdirAll("var/lib", 0o755); err != nil {
			return err
		}
		if err := t.Remove("var/lib/dpkg"); err != nil && !os.IsNotExist(err) {
			return err
		}
		return t.Rename(dpkgDB, "var/lib/dpkg")
	} else if !os.IsNotExist(err) {
		return err
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
//
// Every change is made beneath root (see buildTree).
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
	t, err := openTree(root)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	// These are emptied: a symlink in their place would have its
	// target emptied instead.
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "boot", "var"} {
		if st, err := t.Lstat(d); err == nil && !st.IsDir() {
			return nil, fmt.Errorf("/%s is not a directory (%s): %w", d, st.Mode().Type(), errdefs.ErrInvalid)
		}
	}
	if err := moveKernels(t, res); err != nil {
		return nil, err
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "boot"} {
		if err := t.emptyDir(d); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "boot", "sysroot"} {
		if err := t.mkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := t.mkdirAll("tmp", 0o1777|os.ModeSticky); err != nil {
		return nil, err
	}
	if err := t.Chmod("tmp", 0o777|os.ModeSticky); err != nil {
		return nil, err
	}
	if err := relink(t, "ostree", "sysroot/ostree"); err != nil {
		return nil, err
	}
	if err := t.mkdirAll("var", 0o755); err != nil {
		return nil, err
	}
	for _, l := range stateLinks {
		p := l.path
		varDir := path.Join("var", l.varDir)
		st, err := t.Lstat(p)
		if err == nil && st.IsDir() {
			if _, err := t.Lstat(varDir); err == nil {
				if err := t.RemoveAll(varDir); err != nil {
					return nil, err
				}
			}
			if err := t.Rename(p, varDir); err != nil {
				return nil, err
			}
		} else if err == nil && st.Mode()&os.ModeSymlink == 0 {
			return nil, fmt.Errorf("/%s is neither a directory nor a symlink: %w", l.path, errdefs.ErrInvalid)
		} else if err == nil {
			// Already a link (a ref base): the boot makes its target.
			if _, err := t.Lstat(varDir); os.IsNotExist(err) {
				if err := t.mkdirAll(varDir, l.mode); err != nil {
					return nil, err
				}
			}
		} else if os.IsNotExist(err) {
			if err := t.mkdirAll(varDir, l.mode); err != nil {
				return nil, err
			}
		} else {
			return nil, err
		}
		if err := relink(t, p, l.target); err != nil {
			return nil, err
		}
	}
	if _, err := t.Lstat("var/lib/dpkg"); err == nil {
		if err := t.mkdirAll(path.Dir(dpkgDB), 0o755); err != nil {
			return nil, err
		}
		if err := t.RemoveAll(dpkgDB); err != nil {
			return nil, err
		}
		if err := t.Rename("var/lib/dpkg", dpkgDB); err != nil {
			return nil, err
		}
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	if err := varToTmpfiles(t, w); err != nil {
		return nil, err
	}
	if _, err := t.Lstat("usr/etc"); err == nil {
		return nil, fmt.Errorf("the tree has both /etc and /usr/etc: %w", errdefs.ErrInvalid)
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	if err := t.Rename("etc", "usr/etc"); err != nil {
		return nil, err
	}
	if err := dropSpecial(t, w); err != nil {
		return nil, err
	}
	return res, nil
}

// relink makes p a symlink to target, replacing whatever was there.
func relink(t *buildTree, p, target string) error {
	if l, err := t.Readlink(p); err == nil && l == target {
		return nil
	}
	if err := t.RemoveAll(p); err != nil {
		return err
	}
	return t.Symlink(target, p)
}

// moveKernels moves /boot/vmlinuz-$kver and /boot/initrd.img-$kver to
// /usr/lib/modules/$kver/{vmlinuz,initramfs.img} and drops the rest of
// /boot and the top-level /vmlinuz and /initrd.img links.
func moveKernels(t *buildTree, res *layoutResult) error {
	ents, _ := t.readDir("boot")
	for _, e := range ents {
		kver, ok := strings.CutPrefix(e.Name(), "vmlinuz-")
		if !ok || e.Type()&fs.ModeSymlink != 0 {
			continue
		}
		mod := path.Join("usr/lib/modules", kver)
		if st, err := t.Lstat(mod); err != nil {
			return fmt.Errorf("kernel %s has no modules in /usr/lib/modules/%s: %w", kver, kver, errdefs.ErrNotFound)
		} else if !st.IsDir() {
			return fmt.Errorf("/usr/lib/modules/%s is not a directory (%s): %w", kver, st.Mode().Type(), errdefs.ErrInvalid)
		}
		if err := t.Rename(path.Join("boot", e.Name()), path.Join(mod, "vmlinuz")); err != nil {
			return err
		}
		initrd := "boot/initrd.img-" + kver
		if st, err := t.Lstat(initrd); err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("kernel %s has no initramfs (/boot/initrd.img-%s, a file): is initramfs-tools installed? %w", kver, kver, errdefs.ErrNotFound)
		}
		if err := t.Rename(initrd, path.Join(mod, "initramfs.img")); err != nil {
			return err
		}
	}
	for _, l := range []string{"vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"} {
		if st, err := t.Lstat(l); err == nil && st.Mode()&os.ModeSymlink != 0 {
			if err := t.Remove(l); err != nil {
				return err
			}
		}
	}
	mods, _ := t.readDir("usr/lib/modules")
	for _, m := range mods {
		if st, err := t.Lstat(path.Join("usr/lib/modules", m.Name(), "vmlinuz")); err == nil && st.Mode().IsRegular() {
			res.Kernels = append(res.Kernels, m.Name())
		}
	}
	sort.Strings(res.Kernels)
	return nil
}

// tmpfilesPaths reads the paths that tmpfiles.d files of the tree already
// declare (so the generated lines do not duplicate the packages' own).
func tmpfilesPaths(t *buildTree, skip string) map[string]bool {
	paths := map[string]bool{}
	ents, _ := t.readDir("usr/lib/tmpfiles.d")
	for _, e := range ents {
		if ok, _ := path.Match("*.conf", e.Name()); !ok || e.Name() == skip {
			continue
		}
		b, err := t.readFile(path.Join("usr/lib/tmpfiles.d", e.Name()))
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
func varToTmpfiles(t *buildTree, w progress.Warner) error {
	db, err := readIDs(t, "etc")
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
	known := tmpfilesPaths(t, path.Base(tmpfilesVar))
	lines := map[string]string{}
	if b, err := t.readFile(tmpfilesVar); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if fl := strings.Fields(l); len(fl) >= 2 && !strings.HasPrefix(fl[0], "#") {
				lines[fl[1]] = l
			}
		}
	} else if !os.IsNotExist(err) {
		return err
	}
	lines["/var/lib/dpkg"] = "L /var/lib/dpkg - - - - ../../" + dpkgDB
	drop := map[string]bool{}
	for _, d := range dropUnderVar {
		drop[d] = true
	}
	err = fs.WalkDir(t.FS(), "var", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
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
				return fs.SkipDir
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
			l, err := t.Readlink(rel)
			if err != nil {
				return err
			}
			if !known[abs] {
				lines[abs] = fmt.Sprintf("L %s - - - - %s", abs, l)
			}
		case info.Mode().IsRegular():
			if known[abs] {
				return nil
			}
			// Carried in /usr/share/factory/var, copied at boot.
			dst := path.Join(factoryVarDir, strings.TrimPrefix(rel, "var/"))
			if err := copyPreserving(t, rel, dst, info); err != nil {
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
	if err := t.emptyDir("var"); err != nil {
		return err
	}
	keys := sortedKeys(lines)
	var b bytes.Buffer
	b.WriteString("# Written by strata compose: what the image's /var held, made at boot.\n")
	for _, k := range keys {
		b.WriteString(lines[k] + "\n")
	}
	return t.writeFile(tmpfilesVar, b.Bytes(), 0o644)
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

// copyPreserving copies the regular file src of the tree (info is its
// lstat) to dst, with its owner and mode.
func copyPreserving(t *buildTree, src, dst string, info os.FileInfo) error {
	if err := t.mkdirAll(path.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := t.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := t.writeFunc(dst, info.Mode().Perm(), func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	}); err != nil {
		return err
	}
	st := info.Sys().(*syscall.Stat_t)
	if err := t.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return t.Chmod(dst, info.Mode().Perm()|modeSpecial(info.Mode()))
}

func modeSpecial(m os.FileMode) os.FileMode {
	return m & (os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
}

// dropSpecial removes device nodes, sockets and fifos anywhere in the
// tree; OSTree cannot store them.
func dropSpecial(t *buildTree, w progress.Warner) error {
	return fs.WalkDir(t.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeSocket|fs.ModeNamedPipe) != 0 {
			w.Warn(fmt.Errorf("dropped /%s: device nodes, sockets and fifos cannot be committed", p))
			return t.Remove(p)
		}
		return nil
	})
}
