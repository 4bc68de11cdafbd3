package compose

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/strata-os/strata/dist"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
)

// The files strata writes into a composed tree.
const (
	kargsFile      = "usr/lib/bootc/kargs.d/10-strata-compose.toml"
	sysusersFile   = "usr/lib/sysusers.d/strata-compose.conf"
	tmpfilesUsers  = "usr/lib/tmpfiles.d/strata-compose-users.conf"
	tmpfilesVar    = "usr/lib/tmpfiles.d/strata-compose-var.conf"
	dpkgDB         = "usr/lib/sysimage/dpkg"
	unitDir        = "usr/lib/systemd/system"
	factoryVarDir  = "usr/share/factory/var"
	strataBinInImg = "usr/bin/strata"
)

// mkdirAllMode makes dir and its missing parents with mode, whatever the
// umask. It and writeFileMode and copyFile are for strata's own
// directories of a build (the hook directory, the local repository);
// the tree being composed is written through a buildTree.
func mkdirAllMode(dir string, mode os.FileMode) error {
	if st, err := os.Lstat(dir); err == nil {
		if st.IsDir() {
			return nil
		}
		return fmt.Errorf("%s exists and is not a directory: %w", dir, errdefs.ErrExists)
	}
	if err := mkdirAllMode(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, mode); err != nil && !os.IsExist(err) {
		return err
	}
	return os.Chmod(dir, mode)
}

// writeFileMode writes a file of a build directory (not durable state:
// what is built is committed, and the commit is what is synced) with
// mode, whatever the umask.
func writeFileMode(p string, b []byte, mode os.FileMode) error {
	if err := mkdirAllMode(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	_ = os.Remove(p)
	if err := os.WriteFile(p, b, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	_ = os.Remove(dst)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// idDB is a root's /etc/passwd and /etc/group.
type idDB struct {
	users  map[string][2]int // uid, gid
	groups map[string]int
}

// readIDs reads the tree's passwd and group in the directory etc ("etc"
// or "usr/etc").
func readIDs(t *buildTree, etc string) (*idDB, error) {
	pw, err := t.readFile(path.Join(etc, "passwd"))
	if err != nil {
		return nil, err
	}
	gr, err := t.readFile(path.Join(etc, "group"))
	if err != nil {
		return nil, err
	}
	return parseIDs(pw, gr), nil
}

// parseIDs parses the bytes of an /etc/passwd and an /etc/group.
func parseIDs(passwd, group []byte) *idDB {
	db := &idDB{users: map[string][2]int{}, groups: map[string]int{}}
	each := func(b []byte, min int, f func([]string)) {
		for _, line := range strings.Split(string(b), "\n") {
			if fs := strings.Split(line, ":"); len(fs) >= min {
				f(fs)
			}
		}
	}
	each(passwd, 4, func(f []string) {
		u, _ := strconv.Atoi(f[2])
		g, _ := strconv.Atoi(f[3])
		db.users[f[0]] = [2]int{u, g}
	})
	each(group, 3, func(f []string) {
		g, _ := strconv.Atoi(f[2])
		db.groups[f[0]] = g
	})
	return db
}

// appendLine appends line to the file p of the tree (mode kept), unless a
// line starting with prefix is there.
func appendLine(t *buildTree, p, prefix, line string) error {
	b, err := t.readFile(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			return nil
		}
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	st, err := t.Stat(p)
	if err != nil {
		return err
	}
	return t.writeFile(p, append(b, line+"\n"...), st.Mode().Perm())
}

// addMember adds user to the member list of group in an /etc/group-style
// file of the tree (field 4, or 4 of gshadow).
func addMember(t *buildTree, p, group, user string, field int) error {
	b, err := t.readFile(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		f := strings.Split(l, ":")
		if len(f) <= field || f[0] != group {
			continue
		}
		members := strings.Split(f[field], ",")
		if f[field] == "" {
			members = nil
		}
		for _, m := range members {
			if m == user {
				return nil
			}
		}
		f[field] = strings.Join(append(members, user), ",")
		lines[i] = strings.Join(f, ":")
	}
	st, err := t.Stat(p)
	if err != nil {
		return err
	}
	return t.writeFile(p, []byte(strings.Join(lines, "\n")), st.Mode().Perm())
}

// applyUsers adds the spec's groups and users to the root's static files
// (/etc/passwd, group, shadow, gshadow) and describes them in sysusers.d,
// with their pinned ids. An existing entry with another id is an error.
func applyUsers(t *buildTree, s *Spec, epoch int64) error {
	const etc = "etc"
	if len(s.Groups)+len(s.Users) > 0 {
		// They are read, edited and written back: a symlink, even one
		// that stays in the tree, would be replaced by a file.
		for _, n := range []string{"", "passwd", "group", "shadow", "gshadow"} {
			if st, err := t.Lstat(path.Join(etc, n)); err == nil && !st.Mode().IsRegular() && !(n == "" && st.IsDir()) {
				return fmt.Errorf("the base's /etc/%s is not a regular file (%s): %w", n, st.Mode().Type(), errdefs.ErrInvalid)
			}
		}
	}
	db, err := readIDs(t, etc)
	if err != nil {
		return err
	}
	var sysusers, tmpfiles bytes.Buffer
	sysusers.WriteString("# Written by strata compose from the spec's [[groups]] and [[users]].\n")
	for _, g := range s.Groups {
		if id, ok := db.groups[g.Name]; ok && id != *g.GID {
			return fmt.Errorf("group %s: the base has gid %d, the spec pins %d: %w", g.Name, id, *g.GID, errdefs.ErrInvalid)
		}
		for n, id := range db.groups {
			if id == *g.GID && n != g.Name {
				return fmt.Errorf("group %s: gid %d is taken by %s in the base: %w", g.Name, id, n, errdefs.ErrInvalid)
			}
		}
		if err := appendLine(t, path.Join(etc, "group"), g.Name+":", fmt.Sprintf("%s:x:%d:", g.Name, *g.GID)); err != nil {
			return err
		}
		if err := appendLine(t, path.Join(etc, "gshadow"), g.Name+":", g.Name+":!::"); err != nil {
			return err
		}
		db.groups[g.Name] = *g.GID
		fmt.Fprintf(&sysusers, "g %s %d\n", g.Name, *g.GID)
	}
	for _, u := range s.Users {
		gname := u.Group
		if gname == "" {
			gname = u.Name
		}
		gid, ok := db.groups[gname]
		if !ok {
			return fmt.Errorf("user %s: group %q is neither in the base nor in [[groups]]: %w", u.Name, gname, errdefs.ErrInvalid)
		}
		if ids, ok := db.users[u.Name]; ok && ids[0] != *u.UID {
			return fmt.Errorf("user %s: the base has uid %d, the spec pins %d: %w", u.Name, ids[0], *u.UID, errdefs.ErrInvalid)
		}
		for n, ids := range db.users {
			if ids[0] == *u.UID && n != u.Name {
				return fmt.Errorf("user %s: uid %d is taken by %s in the base: %w", u.Name, *u.UID, n, errdefs.ErrInvalid)
			}
		}
		home, shell := u.Home, u.Shell
		if home == "" {
			home = "/nonexistent"
		}
		if shell == "" {
			shell = "/usr/sbin/nologin"
		}
		if err := appendLine(t, path.Join(etc, "passwd"), u.Name+":", fmt.Sprintf("%s:x:%d:%d:%s:%s:%s", u.Name, *u.UID, gid, u.Gecos, home, shell)); err != nil {
			return err
		}
		if err := appendLine(t, path.Join(etc, "shadow"), u.Name+":", fmt.Sprintf("%s:!:%d:0:99999:7:::", u.Name, epoch/86400)); err != nil {
			return err
		}
		db.users[u.Name] = [2]int{*u.UID, gid}
		gecos := u.Gecos
		if gecos == "" {
			gecos = "-"
		} else {
			gecos = strconv.Quote(gecos)
		}
		fmt.Fprintf(&sysusers, "u %s %d:%d %s %s %s\n", u.Name, *u.UID, gid, gecos, home, shell)
		for _, g := range u.Groups {
			if _, ok := db.groups[g]; !ok {
				return fmt.Errorf("user %s: supplementary group %q does not exist: %w", u.Name, g, errdefs.ErrInvalid)
			}
			if err := addMember(t, path.Join(etc, "group"), g, u.Name, 3); err != nil {
				return err
			}
			if err := addMember(t, path.Join(etc, "gshadow"), g, u.Name, 3); err != nil {
				return err
			}
			fmt.Fprintf(&sysusers, "m %s %s\n", u.Name, g)
		}
		if strings.HasPrefix(home, "/var/") || strings.HasPrefix(home, "/home/") {
			h := home
			if strings.HasPrefix(h, "/home/") {
				h = "/var" + h
			}
			fmt.Fprintf(&tmpfiles, "d %s 0755 %s %s -\n", h, u.Name, gname)
		}
	}
	if len(s.Groups)+len(s.Users) == 0 {
		return nil
	}
	if err := t.writeFile(sysusersFile, sysusers.Bytes(), 0o644); err != nil {
		return err
	}
	if tmpfiles.Len() > 0 {
		return t.writeFile(tmpfilesUsers, append([]byte("# Written by strata compose: home directories of [[users]].\n"), tmpfiles.Bytes()...), 0o644)
	}
	return nil
}

// applyFiles writes the spec's [[files]] inside the tree (never outside
// it: through its os.Root, which refuses symlinks that leave it).
func applyFiles(t *buildTree, s *Spec) error {
	r := t.Root
	db, err := readIDs(t, "etc")
	if err != nil {
		return err
	}
	for i, f := range s.Files {
		var data []byte
		if f.Content != nil {
			data = []byte(*f.Content)
		} else {
			src := f.Source
			if !filepath.IsAbs(src) {
				src = filepath.Join(filepath.Dir(s.Path), src)
			}
			if data, err = readSource(src); err != nil {
				return s.errAt(fmt.Sprintf("files.%d.source", i), "%v", err)
			}
		}
		mode := os.FileMode(0o644)
		if f.Mode != "" {
			mode, _ = parseMode(f.Mode)
		}
		uid, gid, err := resolveOwner(db, f.Owner)
		if err != nil {
			return s.errAt(fmt.Sprintf("files.%d.owner", i), "%v", err)
		}
		rel := strings.TrimPrefix(f.Path, "/")
		if err := rootMkdirAll(r, path.Dir(rel)); err != nil {
			return s.errAt(fmt.Sprintf("files.%d.path", i), "%v", err)
		}
		_ = r.Remove(rel)
		w, err := r.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return s.errAt(fmt.Sprintf("files.%d.path", i), "%v", err)
		}
		if _, err := w.Write(data); err != nil {
			w.Close()
			return err
		}
		if err := w.Chown(uid, gid); err != nil {
			w.Close()
			return err
		}
		if err := w.Chmod(fileModeBits(mode)); err != nil {
			w.Close()
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}

// maxSourceSize bounds a [[files]] source: files of an image's
// configuration, read whole into memory.
const maxSourceSize = 64 << 20

// readSource reads a [[files]] source: a regular file itself (not a
// symlink, FIFO or device), at most maxSourceSize bytes.
func readSource(p string) ([]byte, error) {
	if st, err := os.Lstat(p); err != nil {
		return nil, err
	} else if st.Mode()&os.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s is a symlink: give the file itself", p)
	}
	return fsutil.ReadFileLimit(p, maxSourceSize)
}

// fileModeBits turns an octal mode with setuid/setgid/sticky into Go's.
func fileModeBits(m os.FileMode) os.FileMode {
	out := m & 0o777
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

func rootMkdirAll(r *os.Root, rel string) error {
	if rel == "." || rel == "" {
		return nil
	}
	if st, err := r.Stat(rel); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", rel)
		}
		return nil
	}
	if err := rootMkdirAll(r, path.Dir(rel)); err != nil {
		return err
	}
	if err := r.Mkdir(rel, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	return r.Chmod(rel, 0o755)
}

func resolveOwner(db *idDB, owner string) (int, int, error) {
	if owner == "" {
		return 0, 0, nil
	}
	us, gs, hasGroup := strings.Cut(owner, ":")
	uid, gid := -1, -1
	if n, err := strconv.Atoi(us); err == nil {
		uid = n
	} else if ids, ok := db.users[us]; ok {
		uid, gid = ids[0], ids[1]
	} else {
		return 0, 0, fmt.Errorf("user %q does not exist in the image", us)
	}
	if hasGroup {
		if n, err := strconv.Atoi(gs); err == nil {
			gid = n
		} else if g, ok := db.groups[gs]; ok {
			gid = g
		} else {
			return 0, 0, fmt.Errorf("group %q does not exist in the image", gs)
		}
	}
	if gid < 0 {
		gid = 0
	}
	return uid, gid, nil
}

// installStrata copies the strata binary bin into the tree at root
// (/usr/bin/strata).
func installStrata(root, bin string) error {
	t, err := openTree(root)
	if err != nil {
		return err
	}
	defer t.Close()
	return t.copyIn(bin, strataBinInImg, 0o755)
}

// installUnits copies strata's systemd units (dist/systemd) into the root.
// It returns the units that have an [Install] section, to be enabled.
func installUnits(t *buildTree) ([]string, error) {
	ents, err := fs.ReadDir(dist.Files, "systemd")
	if err != nil {
		return nil, err
	}
	var enable []string
	for _, e := range ents {
		b, err := fs.ReadFile(dist.Files, "systemd/"+e.Name())
		if err != nil {
			return nil, err
		}
		if err := t.writeFile(path.Join(unitDir, e.Name()), b, 0o644); err != nil {
			return nil, err
		}
		if bytes.Contains(b, []byte("\n[Install]")) && !strings.HasSuffix(e.Name(), "@.service") {
			enable = append(enable, e.Name())
		}
	}
	return enable, nil
}

// systemctl runs the root's own systemctl offline (chroot; no daemon).
func systemctl(ctx context.Context, root string, epoch int64, verb string, units []string) error {
	if len(units) == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, "chroot", append([]string{root, "systemctl", verb, "--no-reload"}, units...)...)
	cmd.Env = buildEnv(epoch)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s %s: %v: %s", verb, strings.Join(units, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// applyEtc writes the [etc] defaults and os-release's IMAGE_ID and
// IMAGE_VERSION.
func applyEtc(t *buildTree, s *Spec) error {
	if s.Etc.Hostname != "" {
		if err := t.writeFile("etc/hostname", []byte(s.Etc.Hostname+"\n"), 0o644); err != nil {
			return err
		}
	}
	if s.Etc.Timezone != "" {
		if _, err := t.Stat(path.Join("usr/share/zoneinfo", s.Etc.Timezone)); err != nil {
			return s.errAt("etc.timezone", "%s is not in the image's /usr/share/zoneinfo (install tzdata)", s.Etc.Timezone)
		}
		if err := t.Remove("etc/localtime"); err != nil && !os.IsNotExist(err) {
			return err
		}
		if err := t.Symlink("../usr/share/zoneinfo/"+s.Etc.Timezone, "etc/localtime"); err != nil {
			return err
		}
		if err := t.writeFile("etc/timezone", []byte(s.Etc.Timezone+"\n"), 0o644); err != nil {
			return err
		}
	}
	if s.Etc.Locale != "" {
		if err := t.writeFile("etc/default/locale", []byte("LANG="+s.Etc.Locale+"\n"), 0o644); err != nil {
			return err
		}
	}
	// A composed image installs no packages at run time (/usr is
	// read-only): its apt has no sources, and no build path or mirror
	// leaks into it.
	if _, err := t.Stat("etc/apt"); err == nil {
		if err := t.writeFile("etc/apt/sources.list", []byte("# strata compose: this image's packages are part of the image; update it with strata.\n"), 0o644); err != nil {
			return err
		}
	} else if !os.IsNotExist(err) {
		return err
	}
	return setOSRelease(t, s)
}

func setOSRelease(t *buildTree, s *Spec) error {
	const p = "usr/lib/os-release"
	b, err := t.readFile(p)
	if err != nil {
		return fmt.Errorf("the base's /usr/lib/os-release: %w", err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "IMAGE_ID=") || strings.HasPrefix(l, "IMAGE_VERSION=") {
			continue
		}
		out.WriteString(l + "\n")
	}
	fmt.Fprintf(&out, "IMAGE_ID=%s\n", s.OS.Name)
	if s.OS.Version != "" {
		fmt.Fprintf(&out, "IMAGE_VERSION=%q\n", s.OS.Version)
	}
	// os-release may be a symlink into /usr/lib; write the file itself.
	return t.writeFile(p, out.Bytes(), 0o644)
}

// writeKargs writes [kernel] args where bootc keeps an image's kernel
// arguments.
func writeKargs(t *buildTree, s *Spec) error {
	if len(s.Kernel.Args) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("# Written by strata compose from the spec's [kernel] args.\nkargs = [")
	for i, a := range s.Kernel.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(a))
	}
	b.WriteString("]\n")
	return t.writeFile(kargsFile, b.Bytes(), 0o644)
}
