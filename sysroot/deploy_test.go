package sysroot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

var t0 = time.Date(2024, 1, 2, 10, 0, 0, 0, time.UTC)

// TestInitFSAndOSInitMatchOstree compares the trees init-fs and os-init
// make with ostree's, modes and symlinks included.
func TestInitFSAndOSInitMatchOstree(t *testing.T) {
	for _, modern := range []bool{false, true} {
		t.Run(fmt.Sprintf("modern=%v", modern), func(t *testing.T) {
			a, b := t.TempDir(), t.TempDir()
			if err := InitFS(a, modern); err != nil {
				t.Fatal(err)
			}
			if err := InitOS(a, "myos"); err != nil {
				t.Fatal(err)
			}
			args := []string{"admin", "init-fs", b}
			if modern {
				args = []string{"admin", "init-fs", "--modern", b}
			}
			ostree(t, args...)
			ostree(t, "admin", "os-init", "--sysroot="+b, "myos")
			skip := func(rel string) bool { return rel == "ostree/repo/config" }
			if x, y := listTree(t, a, skip), listTree(t, b, skip); x != y {
				t.Errorf("layout differs:\nstrata:\n%s\nostree:\n%s", x, y)
			}
			if err := InitOS(a, "myos"); err == nil {
				t.Error("os-init of an existing stateroot succeeded")
			}
		})
	}
}

func TestDeployAndStatus(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	s := f.open()
	if len(s.Deployments()) != 0 {
		t.Fatalf("new sysroot has deployments: %v", names(s))
	}
	c1 := f.commit(treeSpec{version: "1.0"}, t0)
	d1 := f.deploy(s, DeployOptions{Karg: []string{"root=/dev/vda1", "quiet"}})
	if d1.Checksum != c1 || d1.Serial != 0 || d1.Index != 0 || d1.BootSerial != 0 {
		t.Fatalf("first deployment: %+v", d1)
	}
	bv, sub := s.BootVersion()
	if bv != 1 || sub != 1 {
		t.Errorf("boot version %d.%d, want 1.1 (as ostree's first deploy)", bv, sub)
	}
	entry := readFile(t, filepath.Join(f.path, "boot/loader/entries/ostree-1-testos.conf"))
	bcs := d1.BootChecksum
	want := fmt.Sprintf("title Test OS 1.0 (ostree:0)\nversion 1\noptions root=/dev/vda1 quiet ostree=/ostree/boot.1/testos/%s/0\nlinux /ostree/testos-%s/vmlinuz-%s\ninitrd /ostree/testos-%s/initramfs-%s.img\n", bcs, bcs, testKver, bcs, testKver)
	if entry != want {
		t.Errorf("entry:\n%s\nwant:\n%s", entry, want)
	}
	if got := readFile(t, s.originPath(d1)); got != "[origin]\nrefspec=testos/stable\n" {
		t.Errorf("origin %q", got)
	}
	if got := readFile(t, filepath.Join(s.DeploymentPath(d1), "etc/hosts")); got != "127.0.0.1 localhost\n" {
		t.Errorf("etc/hosts %q", got)
	}
	if link, _ := os.Readlink(filepath.Join(f.path, "boot/loader")); link != "loader.1" {
		t.Errorf("boot/loader -> %q", link)
	}
	if ref, err := s.Repo().ReadRef("heads/ostree/1/1/0"); err != nil || ref != c1 {
		t.Errorf("deployment ref: %v %v", ref, err)
	}

	c2 := f.commit(treeSpec{version: "2.0"}, t0.Add(time.Hour))
	d2 := f.deploy(s, DeployOptions{})
	if got := names(s); len(got) != 2 || got[0] != c2.String()+".0" || got[1] != c1.String()+".0" {
		t.Fatalf("deployments %v", got)
	}
	if d2.Options() != fmt.Sprintf("root=/dev/vda1 quiet ostree=/ostree/boot.0/testos/%s/0", bcs) {
		t.Errorf("kernel arguments not inherited: %q", d2.Options())
	}
	// Same kernel: both deployments share the bootcsum, with serials 0, 1.
	ds := s.Deployments()
	if ds[0].BootChecksum != ds[1].BootChecksum || ds[0].BootSerial != 0 || ds[1].BootSerial != 1 {
		t.Errorf("boot serials: %+v %+v", ds[0], ds[1])
	}
	// A reload sees the same.
	s2 := f.open()
	if fmt.Sprint(names(s2)) != fmt.Sprint(names(s)) {
		t.Errorf("reload: %v vs %v", names(s2), names(s))
	}
	// Cleanup removed the old boot version.
	if _, err := os.Stat(filepath.Join(f.path, "boot/loader.1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("loader.1 left behind: %v", err)
	}
	if _, err := s.Deployment(2); !errors.Is(err, ErrNotFound) {
		t.Errorf("index 2: %v", err)
	}
	_ = ctx
}

func TestDeployErrors(t *testing.T) {
	f := newFixture(t, 0)
	s := f.open()
	f.commit(treeSpec{version: "1"}, t0)
	cases := []struct {
		name string
		o    DeployOptions
		want error
		msg  string
	}{
		{"no os, not booted", DeployOptions{Revision: "testos/stable"}, ErrNotBooted, "no --os"},
		{"no stateroot", DeployOptions{OS: "other", Revision: "testos/stable"}, ErrNotFound, "stateroot"},
		{"no ref", DeployOptions{OS: "testos", Revision: "nope"}, ErrNotFound, "nope"},
		{"stage not booted", DeployOptions{OS: "testos", Revision: "testos/stable", Stage: true}, ErrNotBooted, "stage"},
		{"karg conflict", DeployOptions{OS: "testos", Revision: "testos/stable", KargNone: true, KargProcCmdline: true}, ErrInvalid, "karg"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Deploy(context.Background(), c.o)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err %v, want %v mentioning %q", err, c.want, c.msg)
			}
			if len(s.Deployments()) != 0 {
				t.Fatalf("deployments after a failed deploy: %v", names(s))
			}
			dirs, _ := filepath.Glob(filepath.Join(f.path, "ostree/deploy/testos/deploy/*"))
			if len(dirs) != 0 {
				t.Fatalf("left behind: %v", dirs)
			}
		})
	}
}

// TestDeployCorruptSymlink: a symlink object of /usr/etc whose target does
// not hash to its name (the sysroot's repo is bare: the object is a
// symlink) fails the deploy, which copies /usr/etc into /etc, and leaves no
// deployment, as a corrupt regular file does.
func TestDeployCorruptSymlink(t *testing.T) {
	f := newFixture(t, 0)
	dir := buildTree(t, treeSpec{version: "1"})
	if err := os.Symlink("../usr/share/zoneinfo/UTC", filepath.Join(dir, "usr/etc/localtime")); err != nil {
		t.Fatal(err)
	}
	r := f.repo()
	c := commitTree(t, r, dir, "testos/stable", "1", t0)
	cm, _ := r.ReadCommit(c)
	root, _ := r.ReadDirTree(cm.RootTree)
	var obj string
	for _, d := range root.Dirs {
		if d.Name != "usr" {
			continue
		}
		usr, _ := r.ReadDirTree(d.Tree)
		for _, d := range usr.Dirs {
			if d.Name != "etc" {
				continue
			}
			etc, _ := r.ReadDirTree(d.Tree)
			for _, e := range etc.Files {
				if e.Name == "localtime" {
					obj = r.ObjectPath(objects.KindFile, e.Checksum)
				}
			}
		}
	}
	if obj == "" {
		t.Fatal("no object for usr/etc/localtime")
	}
	if err := os.Remove(obj); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/outside", obj); err != nil {
		t.Fatal(err)
	}
	s := f.open()
	_, err := s.Deploy(context.Background(), DeployOptions{OS: f.os, Revision: "testos/stable"})
	if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(filepath.Dir(obj))) {
		t.Fatalf("deploy of a corrupt symlink: %v", err)
	}
	if len(s.Deployments()) != 0 {
		t.Fatalf("deployments after a failed deploy: %v", names(s))
	}
	if dirs, _ := filepath.Glob(filepath.Join(f.path, "ostree/deploy/testos/deploy/*")); len(dirs) != 0 {
		t.Fatalf("left behind: %v", dirs)
	}
}

func TestNoKernel(t *testing.T) {
	f := newFixture(t, 0)
	dir := buildTree(t, treeSpec{version: "1"})
	os.RemoveAll(filepath.Join(dir, "usr/lib/modules"))
	commitTree(t, f.repo(), dir, "testos/stable", "1", t0)
	s := f.open()
	_, err := s.Deploy(context.Background(), DeployOptions{OS: f.os, Revision: "testos/stable"})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "failed to find kernel") {
		t.Fatalf("err %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(f.path, "ostree/deploy/testos/*"))
	if fmt.Sprint(left) != fmt.Sprint([]string{filepath.Join(f.path, "ostree/deploy/testos/var")}) {
		t.Errorf("left behind: %v", left)
	}
}

// TestBootedDetection: with ostree-booted, ostree= on the command line and
// the root being a deployment directory, that deployment is the booted
// one, and the merge deployment even when it is not the default.
func TestBootedDetection(t *testing.T) {
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1"}, t0)
	s := f.open()
	d1 := f.deploy(s, DeployOptions{})
	f.commit(treeSpec{version: "2"}, t0.Add(time.Hour))
	f.deploy(s, DeployOptions{})
	if s.Booted() != nil {
		t.Fatal("booted without ostree-booted")
	}
	f.boot(s, s.Deployments()[1])
	s = f.open()
	if b := s.Booted(); b == nil || !same(b, d1) || !b.Booted {
		t.Fatalf("booted %+v, want %s", b, d1.Name())
	}
	if m := s.MergeDeployment(""); !same(m, d1) {
		t.Errorf("merge %v", m)
	}
	p, r := s.PendingAndRollback("")
	if p == nil || p.Index != 0 || r != nil {
		t.Errorf("pending %v rollback %v", p, r)
	}
	// Without ostree= on the command line nothing is booted.
	must(t, os.WriteFile(f.cmd, []byte("root=/dev/vda1\n"), 0o644))
	if s = f.open(); s.Booted() != nil {
		t.Error("booted without ostree= on the command line")
	}
}

func TestDeployKargSources(t *testing.T) {
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1"}, t0)
	s := f.open()
	must(t, os.WriteFile(f.cmd, []byte("BOOT_IMAGE=/vmlinuz root=/dev/sda3 rw initrd=/x console=ttyS0\n"), 0o644))
	cases := []struct {
		o    DeployOptions
		want string
	}{
		{DeployOptions{KargProcCmdline: true}, "root=/dev/sda3 rw console=ttyS0"},
		{DeployOptions{}, "root=/dev/sda3 rw console=ttyS0"}, // inherited
		{DeployOptions{KargDelete: []string{"rw"}, KargAppend: []string{"console=tty0"}}, "root=/dev/sda3 console=ttyS0 console=tty0"},
		{DeployOptions{Karg: []string{"console=hvc0"}}, "root=/dev/sda3 console=hvc0"},
		{DeployOptions{KargNone: true, KargAppend: []string{"quiet"}}, "quiet"},
		{DeployOptions{NoMerge: true}, ""},
	}
	for _, c := range cases {
		d := f.deploy(s, c.o)
		if got := bootloader.WithoutKarg(d.Options(), "ostree"); got != c.want {
			t.Errorf("%+v: kernel arguments %q, want %q", c.o, got, c.want)
		}
	}
}

func TestDeployNeedsFreeSpace(t *testing.T) {
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1"}, t0)
	f.setConfig("core", "min-free-space-percent", "99")
	s := f.open()
	before := listTree(t, f.path, func(rel string) bool { return rel == "ostree/repo" })
	_, err := s.Deploy(context.Background(), DeployOptions{OS: "testos", Revision: "testos/stable"})
	if err == nil || !strings.Contains(err.Error(), "not enough free space") {
		t.Fatalf("deploy on a full disk: %v", err)
	}
	if after := listTree(t, f.path, func(rel string) bool { return rel == "ostree/repo" }); after != before {
		t.Errorf("a refused deploy wrote:\n%s", after)
	}
}

// TestConcurrentDeploys: deploys racing on one sysroot (each with its own
// Sysroot) are serialized by the lock and leave a consistent sysroot.
func TestConcurrentDeploys(t *testing.T) {
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1"}, t0)
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			s, err := Open(f.path, Options{RunDir: f.run, Cmdline: f.cmd})
			if err == nil {
				_, err = s.Deploy(context.Background(), DeployOptions{OS: "testos", Revision: "testos/stable", Retain: true})
			}
			errs <- err
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s := f.open()
	if got := names(s); len(got) != 4 || ostreeStatusOrder(t, f.path) != strings.Join(got, ",") {
		t.Fatalf("after 4 concurrent deploys: %v", got)
	}
	dirs, _ := filepath.Glob(filepath.Join(f.path, "ostree/deploy/testos/deploy/*"))
	if len(dirs) != 8 {
		t.Fatalf("deployment dirs and origins: %v", dirs)
	}
}

// TestSeparateBootFilesystem: with /boot on another filesystem (tmpfs
// here) the kernel and initramfs are copied, not linked.
func TestSeparateBootFilesystem(t *testing.T) {
	boot, err := os.MkdirTemp("/dev/shm", "strata-boot-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(boot)
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1", kernel: "separate kernel\n"}, t0)
	s, err := Open(f.path, Options{BootDir: boot, RunDir: f.run, Cmdline: f.cmd})
	must(t, err)
	d := f.deploy(s, DeployOptions{})
	if sameFS(f.path, boot) {
		t.Fatal("/dev/shm is on the sysroot's filesystem: this test needs a separate one")
	}
	k := filepath.Join(boot, "ostree", "testos-"+d.BootChecksum, "vmlinuz-"+testKver)
	if got := readFile(t, k); got != "separate kernel\n" {
		t.Fatalf("kernel %q", got)
	}
	if link, _ := os.Readlink(filepath.Join(boot, "loader")); link != "loader.1" {
		t.Fatalf("loader -> %q", link)
	}
	s2, err := Open(f.path, Options{BootDir: boot})
	must(t, err)
	if len(s2.Deployments()) != 1 {
		t.Fatalf("reload: %v", names(s2))
	}
}
