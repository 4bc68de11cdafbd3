package compose

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/checkout"
	"github.com/strata-os/strata/diff"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
)

type fixtureEntry struct {
	path string
	mode os.FileMode // with os.ModeDir, os.ModeSymlink, os.ModeNamedPipe, os.ModeCharDevice
	data string      // content, or link target
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fixture is a small Debian-like root as mmdebstrap leaves it, with the
// things that differ between builds (machine id, host keys, logs, caches,
// backups, bytecode, host name) given random content.
func fixture() []fixtureEntry {
	d := os.ModeDir
	return []fixtureEntry{
		{"etc", d | 0o755, ""},
		{"etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/bash\nmessagebus:x:100:101::/nonexistent:/usr/sbin/nologin\n"},
		{"etc/group", 0o644, "root:x:0:\nmail:x:8:\nmessagebus:x:101:\nusers:x:100:\n"},
		{"etc/shadow", 0o640, "root:*:19000:0:99999:7:::\n"},
		{"etc/gshadow", 0o640, "root:*::\n"},
		{"etc/passwd-", 0o644, randHex(8)},
		{"etc/.pwd.lock", 0o600, ""},
		{"etc/machine-id", 0o444, randHex(16) + "\n"},
		{"etc/hostname", 0o644, "host-" + randHex(4) + "\n"},
		{"etc/resolv.conf", 0o644, "nameserver 10.0.0." + randHex(1) + "\n"},
		{"etc/ssh", d | 0o755, ""},
		{"etc/ssh/ssh_host_ed25519_key", 0o600, randHex(32)},
		{"etc/ssh/ssh_host_ed25519_key.pub", 0o644, randHex(32)},
		{"etc/ssh/sshd_config", 0o644, "PermitRootLogin no\n"},
		{"etc/apt", d | 0o755, ""},
		{"etc/apt/sources.list", 0o644, "deb file:///build/" + randHex(4) + " ./\n"},
		{"etc/os-release", os.ModeSymlink, "../usr/lib/os-release"},
		{"usr", d | 0o755, ""},
		{"usr/bin", d | 0o755, ""},
		{"usr/bin/tool", 0o755, "#!/bin/sh\necho tool\n"},
		{"usr/bin/ping", 0o755, "ping"},
		{"usr/lib", d | 0o755, ""},
		{"usr/lib/os-release", 0o644, "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"},
		{"usr/lib/python3", d | 0o755, ""},
		{"usr/lib/python3/mod.py", 0o644, "print(1)\n"},
		{"usr/lib/python3/__pycache__", d | 0o755, ""},
		{"usr/lib/python3/__pycache__/mod.cpython-311.pyc", 0o644, randHex(16)},
		{"usr/lib/modules", d | 0o755, ""},
		{"usr/lib/modules/6.1.0-test", d | 0o755, ""},
		{"usr/lib/modules/6.1.0-test/modules.dep", 0o644, "kernel/x.ko:\n"},
		{"usr/lib/tmpfiles.d", d | 0o755, ""},
		{"usr/lib/tmpfiles.d/var.conf", 0o644, "d /var/log 0755 - - -\n"},
		{"usr/share", d | 0o755, ""},
		{"usr/share/fifo", os.ModeNamedPipe | 0o644, ""},
		{"usr/share/info", d | 0o755, ""},
		{"usr/share/info/dir-old", 0o644, randHex(4)},
		{"usr/local", d | 0o755, ""},
		{"usr/local/bin", d | 0o755, ""},
		{"boot", d | 0o755, ""},
		{"boot/vmlinuz-6.1.0-test", 0o644, "kernel"},
		{"boot/initrd.img-6.1.0-test", 0o644, "initramfs"},
		{"boot/config-6.1.0-test", 0o644, "CONFIG_X=y\n"},
		{"vmlinuz", os.ModeSymlink, "boot/vmlinuz-6.1.0-test"},
		{"home", d | 0o755, ""},
		{"root", d | 0o700, ""},
		{"root/.bashrc", 0o644, "PS1='# '\n"},
		{"opt", d | 0o755, ""},
		{"srv", d | 0o755, ""},
		{"mnt", d | 0o755, ""},
		{"tmp", d | 0o1777 | os.ModeSticky, ""},
		{"tmp/junk", 0o644, randHex(4)},
		{"run", d | 0o755, ""},
		{"run/lock", d | 0o755, ""},
		{"dev", d | 0o755, ""},
		{"dev/null", os.ModeCharDevice | os.ModeDevice | 0o666, ""},
		{"var", d | 0o755, ""},
		{"var/lib", d | 0o755, ""},
		{"var/lib/dpkg", d | 0o755, ""},
		{"var/lib/dpkg/status", 0o644, "Package: tool\nStatus: install ok installed\n"},
		{"var/lib/dpkg/status-old", 0o644, randHex(4)},
		{"var/lib/foo", d | 0o750, ""},
		{"var/lib/foo/state", 0o640, "state\n"},
		{"var/lib/systemd", d | 0o755, ""},
		{"var/lib/systemd/random-seed", 0o600, randHex(32)},
		{"var/log", d | 0o755, ""},
		{"var/log/dpkg.log", 0o644, randHex(20)},
		{"var/log/apt", d | 0o755, ""},
		{"var/cache", d | 0o755, ""},
		{"var/cache/ldconfig", d | 0o700, ""},
		{"var/cache/ldconfig/aux-cache", 0o600, randHex(20)},
		{"var/mail", d | 0o2775 | os.ModeSetgid, ""},
		{"var/run", os.ModeSymlink, "/run"},
		{"var/spool", d | 0o755, ""},
	}
}

// makeFixture creates the fixture in dir in the given order, with random
// mtimes and a random user.* xattr on every file and directory.
func makeFixture(t *testing.T, dir string, reverse bool) {
	t.Helper()
	es := fixture()
	// Parents must exist first: create every directory in order, then the
	// rest in the chosen order.
	var dirs, rest []fixtureEntry
	for _, e := range es {
		if e.mode.IsDir() {
			dirs = append(dirs, e)
		} else {
			rest = append(rest, e)
		}
	}
	if reverse {
		for i, j := 0, len(rest)-1; i < j; i, j = i+1, j-1 {
			rest[i], rest[j] = rest[j], rest[i]
		}
	}
	for _, e := range append(dirs, rest...) {
		p := filepath.Join(dir, e.path)
		var err error
		switch {
		case e.mode.IsDir():
			if err = os.Mkdir(p, 0o700); err == nil {
				err = os.Chmod(p, e.mode&(os.ModePerm|os.ModeSetgid|os.ModeSticky))
			}
		case e.mode&os.ModeSymlink != 0:
			err = os.Symlink(e.data, p)
		case e.mode&os.ModeNamedPipe != 0:
			err = unix.Mkfifo(p, 0o644)
		case e.mode&os.ModeCharDevice != 0:
			err = unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
		default:
			if err = os.WriteFile(p, []byte(e.data), 0o600); err == nil {
				err = os.Chmod(p, e.mode.Perm())
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.mode&(os.ModeSymlink|os.ModeNamedPipe|os.ModeCharDevice) == 0 {
			mt := time.Unix(int64(1e9)+int64(len(randHex(1)))*int64(time.Now().Nanosecond()%100000), 0)
			_ = os.Chtimes(p, mt, mt)
			if err := unix.Lsetxattr(p, "user.build-"+randHex(2), []byte(randHex(4)), 0); err != nil && err != unix.ENOTSUP {
				t.Fatal(err)
			}
		}
	}
	// The "package" that ships ping keeps its capability: allowed.
	if err := unix.Lsetxattr(filepath.Join(dir, "usr/bin/ping"), "security.capability", []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0); err != nil {
		t.Fatal(err)
	}
}

const fixtureSpec = `[os]
name = "fixture"
version = "7"

[base]
suite = "bookworm"

[[files]]
path = "/etc/motd"
content = "hello\n"

[[files]]
path = "/usr/lib/app/run"
content = "#!/bin/sh\n"
mode = "0755"
owner = "app:app"

[[groups]]
name = "app"
gid = 990

[[users]]
name = "app"
uid = 990
group = "app"
groups = ["mail"]
home = "/var/lib/app"

[kernel]
args = ["console=ttyS0,115200", "quiet"]

[etc]
locale = "C.UTF-8"
`

// composeFixture runs the steps of Build after the packages (configure,
// layout, normalize) on a fresh fixture and commits it.
func composeFixture(t *testing.T, r *repo.Repo, umask int, reverse bool, plant string) objects.Checksum {
	t.Helper()
	old := syscall.Umask(umask)
	defer syscall.Umask(old)
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	makeFixture(t, root, reverse)
	s, err := ParseSpec(filepath.Join(t.TempDir(), "spec.toml"), []byte(fixtureSpec))
	if err != nil {
		t.Fatal(err)
	}
	const epoch = 1700000000
	if err := configure(context.Background(), s, root, epoch); err != nil {
		t.Fatal(err)
	}
	var dropped []string
	w := progress.WarnFunc(func(err error) { dropped = append(dropped, err.Error()) })
	lay, err := layout(root, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(lay.Kernels) != 1 || lay.Kernels[0] != "6.1.0-test" {
		t.Fatalf("kernels %v", lay.Kernels)
	}
	if len(dropped) != 1 || !strings.Contains(dropped[0], "/usr/share/fifo") {
		t.Fatalf("dropped %v, want the fifo (the device node went with /dev)", dropped)
	}
	if plant != "" {
		if err := os.WriteFile(filepath.Join(root, plant), []byte(randHex(8)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Normalize(root, false); err != nil {
		t.Fatal(err)
	}
	o := &Options{Repo: r}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	c, err := commitTree(context.Background(), s, o, "fixture", root, epoch, lay.Kernels)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNormalizeReproducible(t *testing.T) {
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := composeFixture(t, r, 0o022, false, "")
	b := composeFixture(t, r, 0o077, true, "")
	if a != b {
		changes, _ := diff.Commits(context.Background(), r, a, b)
		t.Fatalf("same content gave %s and %s; differences: %v", a, b, changes)
	}
	// A file planted under /usr is the one difference, reported by path.
	planted := "usr/share/planted-" + randHex(4)
	c := composeFixture(t, r, 0o002, false, planted)
	changes, err := diff.Commits(context.Background(), r, a, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Path != "/"+planted {
		t.Fatalf("changes %v, want just /%s", changes, planted)
	}
	checkFixtureLayout(t, r, a)
}

// checkFixtureLayout checks the composed fixture's layout through the
// repository.
func checkFixtureLayout(t *testing.T, r *repo.Repo, c objects.Checksum) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "co")
	cm, err := r.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	if cm.Timestamp != 1700000000 || cm.Parent != (objects.Checksum{}) {
		t.Fatalf("timestamp %d parent %v", cm.Timestamp, cm.Parent)
	}
	for k, want := range map[string]string{"version": "7", "ostree.linux": "6.1.0-test"} {
		if v, _ := cm.Metadata.String(k); v != want {
			t.Errorf("metadata %s = %q, want %q", k, v, want)
		}
	}
	if v, ok := cm.Metadata.Get("ostree.bootable"); !ok || v.Value != true {
		t.Errorf("ostree.bootable = %v", v)
	}
	if err := checkoutForTest(r, c, dir); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	link := func(p, want string) {
		if got, err := os.Readlink(filepath.Join(dir, p)); err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", p, got, err, want)
		}
	}
	absent := func(p string) {
		if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s exists", p)
		}
	}
	link("home", "var/home")
	link("root", "var/roothome")
	link("opt", "var/opt")
	link("srv", "var/srv")
	link("mnt", "var/mnt")
	link("usr/local", "../var/usrlocal")
	link("ostree", "sysroot/ostree")
	for _, p := range []string{"etc", "boot/vmlinuz-6.1.0-test", "vmlinuz", "usr/etc/ssh/ssh_host_ed25519_key", "usr/etc/hostname",
		"usr/etc/resolv.conf", "usr/etc/passwd-", "usr/etc/.pwd.lock", "usr/lib/python3/__pycache__", "usr/share/info/dir-old",
		"usr/share/fifo", "dev/null", "tmp/junk", "var/lib", "var/log", "usr/lib/sysimage/dpkg/status-old"} {
		absent(p)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "var")); len(ents) != 0 {
		t.Errorf("/var not empty: %v", ents)
	}
	if read("usr/lib/modules/6.1.0-test/vmlinuz") != "kernel" || read("usr/lib/modules/6.1.0-test/initramfs.img") != "initramfs" {
		t.Error("kernel or initramfs not in /usr/lib/modules/6.1.0-test")
	}
	if read("usr/etc/machine-id") != "" {
		t.Error("machine-id not empty")
	}
	if !strings.Contains(read("usr/lib/sysimage/dpkg/status"), "Package: tool") {
		t.Error("dpkg status not in /usr/lib/sysimage/dpkg")
	}
	if read("usr/etc/motd") != "hello\n" {
		t.Error("motd")
	}
	if !strings.Contains(read("usr/etc/passwd"), "app:x:990:990::/var/lib/app:/usr/sbin/nologin\n") ||
		!strings.Contains(read("usr/etc/group"), "app:x:990:\n") || !strings.Contains(read("usr/etc/group"), "mail:x:8:app\n") {
		t.Errorf("passwd/group:\n%s\n%s", read("usr/etc/passwd"), read("usr/etc/group"))
	}
	if got := read("usr/lib/sysusers.d/strata-compose.conf"); !strings.Contains(got, "g app 990\nu app 990:990 - /var/lib/app /usr/sbin/nologin\nm app mail\n") {
		t.Errorf("sysusers.d:\n%s", got)
	}
	if got := read(kargsFile); !strings.Contains(got, `kargs = ["console=ttyS0,115200", "quiet"]`) {
		t.Errorf("kargs.d: %s", got)
	}
	if got := read("usr/lib/os-release"); !strings.Contains(got, "IMAGE_ID=fixture\nIMAGE_VERSION=\"7\"\n") || !strings.Contains(got, "ID=debian\n") {
		t.Errorf("os-release: %s", got)
	}
	if strings.Contains(read("usr/etc/apt/sources.list"), "file:") {
		t.Error("the build's apt source leaked into the image")
	}
	st, err := os.Stat(filepath.Join(dir, "usr/lib/app/run"))
	if err != nil || st.Mode().Perm() != 0o755 || st.Sys().(*syscall.Stat_t).Uid != 990 || st.Sys().(*syscall.Stat_t).Gid != 990 {
		t.Errorf("usr/lib/app/run: %v %v", st, err)
	}
	vars := read(tmpfilesVar)
	for _, want := range []string{
		"d /var/home 0755 root root -", "d /var/roothome 0700 root root -", "d /var/usrlocal 0755 root root -",
		"d /var/usrlocal/bin 0755 root root -", "d /var/lib/foo 0750 root root -", "C /var/lib/foo/state - - - -",
		"C /var/roothome/.bashrc - - - -", "L /var/run - - - - /run", "d /var/mail 2775 root root -",
		"L /var/lib/dpkg - - - - ../../usr/lib/sysimage/dpkg", "d /var/cache 0755 root root -",
	} {
		if !strings.Contains(vars, want+"\n") {
			t.Errorf("tmpfiles.d lacks %q:\n%s", want, vars)
		}
	}
	for _, bad := range []string{"/var/log ", "random-seed", "dpkg.log", "aux-cache"} {
		if strings.Contains(vars, bad) {
			t.Errorf("tmpfiles.d has %q:\n%s", bad, vars)
		}
	}
	if read("usr/share/factory/var/lib/foo/state") != "state\n" {
		t.Error("factory copy of /var/lib/foo/state")
	}
	if got := read("usr/lib/tmpfiles.d/strata-compose-users.conf"); !strings.Contains(got, "d /var/lib/app 0755 app app -\n") {
		t.Errorf("users tmpfiles: %s", got)
	}
	// xattrs: only the allowlisted capability is left.
	_, names, err := listXattrsForTest(filepath.Join(dir, "usr/bin/ping"))
	if err != nil || fmt.Sprint(names) != "[security.capability]" {
		t.Errorf("ping xattrs %v %v", names, err)
	}
}

func checkoutForTest(r *repo.Repo, c objects.Checksum, dir string) error {
	return checkout.Checkout(context.Background(), r, c, dir, checkout.Options{})
}

func listXattrsForTest(p string) (map[string][]byte, []string, error) { return fsutil.ListXattrs(p) }

// TestIDsPinnedAgainstPreviousCommit: a package-allocated uid that moved
// since the branch's previous commit fails the build, naming the user.
func TestIDsPinnedAgainstPreviousCommit(t *testing.T) {
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	composeFixture(t, r, 0o022, false, "")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("usr/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nmessagebus:x:100:101::/nonexistent:/usr/sbin/nologin\napp:x:990:990::/var/lib/app:/usr/sbin/nologin\n")
	write("usr/etc/group", "root:x:0:\nmail:x:8:app\nmessagebus:x:101:\nusers:x:100:\napp:x:990:\n")
	if err := checkIDs(r, "fixture", root); err != nil {
		t.Fatalf("same ids: %v", err)
	}
	write("usr/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nmessagebus:x:102:101::/nonexistent:/usr/sbin/nologin\n")
	write("usr/etc/group", "root:x:0:\nmessagebus:x:103:\n")
	err = checkIDs(r, "fixture", root)
	if err == nil || !strings.Contains(err.Error(), "user messagebus has uid 102, 100 in ") || !strings.Contains(err.Error(), "group messagebus has gid 103, 101") || !strings.Contains(err.Error(), "[ids]") {
		t.Fatalf("moved ids: %v", err)
	}
	if err := checkIDs(r, "no-such-branch", root); err != nil {
		t.Fatalf("first build of a branch: %v", err)
	}
}

// TestRefBase composes v2 on top of v1's ref: v1's tree and generated
// files are kept, the new spec's files are added, the layout holds.
func TestRefBase(t *testing.T) {
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v1 := composeFixture(t, r, 0o022, false, "")
	spec := "[os]\nname = \"fixture\"\nversion = \"8\"\n\n[base]\nref = \"fixture\"\n\n[[files]]\npath = \"/etc/motd2\"\ncontent = \"v2\\n\"\n\n[kernel]\nargs = [\"quiet\"]\n"
	s, err := ParseSpec(filepath.Join(t.TempDir(), "v2.toml"), []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), s, Options{Repo: r, Branch: "fixture", CacheDir: t.TempDir(), StrataBinary: "/bin/busybox"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit == v1 {
		t.Fatal("v2 is v1")
	}
	dir := filepath.Join(t.TempDir(), "co")
	if err := checkoutForTest(r, res.Commit, dir); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"usr/etc/motd":  "hello\n",
		"usr/etc/motd2": "v2\n",
		kargsFile:       "# Written by strata compose from the spec's [kernel] args.\nkargs = [\"quiet\"]\n",
	} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", p, b, err, want)
		}
	}
	for _, p := range []string{"usr/lib/sysusers.d/strata-compose.conf", "usr/lib/sysimage/dpkg/status", "usr/lib/modules/6.1.0-test/vmlinuz", "usr/bin/strata"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
			t.Errorf("missing %s: %v", p, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc")); !os.IsNotExist(err) {
		t.Error("/etc exists beside /usr/etc")
	}
	vars, _ := os.ReadFile(filepath.Join(dir, tmpfilesVar))
	// /root is a link in v1: its directory is made again with root's
	// mode, not 0755 (the line is the one v1 had).
	if !strings.Contains(string(vars), "C /var/lib/foo/state - - - -\n") || !strings.Contains(string(vars), "L /var/lib/dpkg ") ||
		!strings.Contains(string(vars), "d /var/roothome 0700 root root -\n") {
		t.Errorf("v1's tmpfiles lines lost:\n%s", vars)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "var")); len(ents) != 0 {
		t.Errorf("/var not empty: %v", ents)
	}
	cm, _ := r.ReadCommit(res.Commit)
	if v, _ := cm.Metadata.String("version"); v != "8" || cm.Parent != (objects.Checksum{}) {
		t.Errorf("version %q parent %v", v, cm.Parent)
	}
}
