package sysroot

// Interop with the real ostree (2022.7): the same commits deployed by
// strata and by `ostree admin deploy` give the same sysroot, and each
// tool works on the other's sysroot.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ostreeCommit commits dir with the ostree CLI at a fixed timestamp.
func ostreeCommit(t *testing.T, repoPath, dir, ref, version, ts string) string {
	t.Helper()
	return strings.TrimSpace(ostree(t, "commit", "--repo="+repoPath, "-b", ref, "--tree=dir="+dir, "-s", "v"+version,
		"--add-metadata-string=version="+version, "--timestamp="+ts))
}

// ostreeSysroot makes a sysroot with ostree admin init-fs and os-init.
func ostreeSysroot(t *testing.T, osname string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sysroot")
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	ostree(t, "admin", "init-fs", p)
	ostree(t, "admin", "os-init", "--sysroot="+p, osname)
	ostree(t, "config", "--repo="+p+"/ostree/repo", "set", "sysroot.bootloader", "none")
	t.Cleanup(func() { unsealAll(p) })
	return p
}

// layoutSkip leaves out what legitimately differs between a strata and an
// ostree sysroot: the repositories (compared by checksums elsewhere) and
// the SELinux relabel stamp ostree writes into /var.
func layoutSkip(rel string) bool {
	return rel == "ostree/repo" || rel == "ostree/deploy/testos/var/.ostree-selabeled"
}

// TestSameSysrootAsOstree deploys the same commits with strata and with
// ostree, with a local /etc change in between, and compares the whole
// sysroots (boot entries byte for byte, link farms, deployment trees,
// origins, modes) and `ostree admin status` of both.
func TestSameSysrootAsOstree(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 0)
	o := ostreeSysroot(t, "testos")
	ts := []string{"2024-01-01 10:00:00", "2024-01-02 10:00:00", "2024-01-03 10:00:00"}
	trees := []string{
		buildTree(t, treeSpec{version: "1.0", etc: map[string]string{"conf.d/a.conf": "a=1\n"}}),
		buildTree(t, treeSpec{version: "2.0", kernel: "kernel-2\n"}),
		buildTree(t, treeSpec{version: "3.0", kernel: "kernel-2\n"}),
	}
	s := f.open()
	for i, dir := range trees {
		version := []string{"1.0", "2.0", "3.0"}[i]
		a := ostreeCommit(t, filepath.Join(f.path, "ostree/repo"), dir, "testos/stable", version, ts[i])
		b := ostreeCommit(t, filepath.Join(o, "ostree/repo"), dir, "testos/stable", version, ts[i])
		if a != b {
			t.Fatalf("commits differ: %s %s", a, b)
		}
		var kargs []string
		if i == 0 {
			kargs = []string{"root=/dev/vda1", "console=ttyS0", "quiet"}
		}
		args := []string{"admin", "deploy", "--sysroot=" + o, "--os=testos"}
		for _, k := range kargs {
			args = append(args, "--karg="+k)
		}
		ostree(t, append(args, "testos/stable")...)
		if _, err := s.Deploy(ctx, DeployOptions{OS: "testos", Revision: "testos/stable", Karg: kargs}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// Local /etc changes in the merge deployment: an edit, an
			// addition, a deletion, a new directory, a mode change.
			for _, root := range []string{f.path, o} {
				dirs, _ := filepath.Glob(filepath.Join(root, "ostree/deploy/testos/deploy/*.0"))
				etc := filepath.Join(dirs[0], "etc")
				must(t, os.WriteFile(filepath.Join(etc, "hosts"), []byte("10.0.0.1 box\n"), 0o644))
				must(t, os.WriteFile(filepath.Join(etc, "local.conf"), []byte("local\n"), 0o600))
				must(t, os.Remove(filepath.Join(etc, "motd")))
				must(t, os.MkdirAll(filepath.Join(etc, "mydir/sub"), 0o750))
				must(t, os.WriteFile(filepath.Join(etc, "mydir/sub/x"), []byte("x\n"), 0o644))
				must(t, os.Chmod(filepath.Join(etc, "ssh/sshd_config"), 0o600))
			}
		}
		if x, y := listTree(t, f.path, layoutSkip), listTree(t, o, layoutSkip); x != y {
			t.Fatalf("after deploy %d, sysroots differ:\nstrata:\n%s\n\nostree:\n%s", i+1, x, y)
		}
		if x, y := ostree(t, "admin", "status", "--sysroot="+f.path), ostree(t, "admin", "status", "--sysroot="+o); x != y {
			t.Fatalf("after deploy %d, ostree admin status differs:\nstrata's:\n%s\nostree's:\n%s", i+1, x, y)
		}
		if x, y := refsOf(t, f.path), refsOf(t, o); x != y {
			t.Fatalf("after deploy %d, refs differ:\nstrata:\n%s\nostree:\n%s", i+1, x, y)
		}
	}
}

func refsOf(t *testing.T, sysroot string) string {
	return ostree(t, "refs", "--repo="+filepath.Join(sysroot, "ostree/repo"))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestStrataOnOstreeSysroot: strata reads, deploys, rolls back and cleans
// up a sysroot ostree made, and ostree keeps working on the result.
func TestStrataOnOstreeSysroot(t *testing.T) {
	ctx := context.Background()
	o := ostreeSysroot(t, "testos")
	rp := filepath.Join(o, "ostree/repo")
	for i, v := range []string{"1", "2"} {
		ostreeCommit(t, rp, buildTree(t, treeSpec{version: v, kernel: "k" + v}), "testos/stable", v, "2024-01-0"+v+" 00:00:00")
		args := []string{"admin", "deploy", "--sysroot=" + o, "--os=testos", "--retain", "testos/stable"}
		if i == 0 {
			args = append(args, "--karg=root=/dev/vda1")
		}
		ostree(t, args...)
	}
	s, err := Open(o, Options{})
	must(t, err)
	if got := strings.Join(names(s), ","); got != ostreeStatusOrder(t, o) {
		t.Fatalf("strata reads %s, ostree %s", got, ostreeStatusOrder(t, o))
	}
	if d := s.Deployments()[0]; !strings.HasPrefix(d.Options(), "root=/dev/vda1 ostree=/ostree/boot.") || d.Refspec() != "testos/stable" {
		t.Fatalf("deployment 0: options %q refspec %q", d.Options(), d.Refspec())
	}
	ostreeCommit(t, rp, buildTree(t, treeSpec{version: "3", kernel: "k3"}), "testos/stable", "3", "2024-01-03 00:00:00")
	if _, err := s.Deploy(ctx, DeployOptions{OS: "testos", Revision: "testos/stable"}); err != nil {
		t.Fatal(err)
	}
	check := func(what string, n int) {
		t.Helper()
		if got := strings.Join(names(s), ","); got != ostreeStatusOrder(t, o) || len(s.Deployments()) != n {
			t.Fatalf("%s: strata %s, ostree %s", what, got, ostreeStatusOrder(t, o))
		}
	}
	check("strata deploy", 2)
	if _, err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	check("strata rollback", 2)
	if _, err := s.Cleanup(ctx, true); err != nil {
		t.Fatal(err)
	}
	check("strata cleanup", 2)
	ostree(t, "fsck", "--repo="+rp)
	// ostree deploys on top of what strata wrote.
	ostreeCommit(t, rp, buildTree(t, treeSpec{version: "4", kernel: "k4"}), "testos/stable", "4", "2024-01-04 00:00:00")
	ostree(t, "admin", "deploy", "--sysroot="+o, "--os=testos", "testos/stable")
	must(t, s.load())
	check("ostree deploy after strata", 2)
	if d := s.Deployments()[0]; !strings.HasPrefix(d.Options(), "root=/dev/vda1 ostree=") {
		t.Fatalf("kernel arguments lost along the way: %q", d.Options())
	}
}

// TestOstreeOnStrataSysroot: ostree deploys, undeploys and cleans up on a
// sysroot strata made (with boot-counting entry names).
func TestOstreeOnStrataSysroot(t *testing.T) {
	f := newFixture(t, -1)
	rp := filepath.Join(f.path, "ostree/repo")
	ostree(t, "config", "--repo="+rp, "set", "sysroot.bootloader", "none")
	s := f.open()
	for _, v := range []string{"1", "2"} {
		ostreeCommit(t, rp, buildTree(t, treeSpec{version: v, kernel: "k" + v}), "testos/stable", v, "2024-01-0"+v+" 00:00:00")
		f.deploy(s, DeployOptions{Retain: true, Karg: []string{"root=/dev/vda1"}})
	}
	if got := ostreeStatusOrder(t, f.path); got != strings.Join(names(s), ",") {
		t.Fatalf("ostree reads %s, strata %v", got, names(s))
	}
	ostreeCommit(t, rp, buildTree(t, treeSpec{version: "3", kernel: "k3"}), "testos/stable", "3", "2024-01-03 00:00:00")
	ostree(t, "admin", "deploy", "--sysroot="+f.path, "--os=testos", "--retain", "testos/stable")
	ostree(t, "admin", "undeploy", "--sysroot="+f.path, "2")
	ostree(t, "admin", "cleanup", "--sysroot="+f.path)
	must(t, s.load())
	if got := ostreeStatusOrder(t, f.path); got != strings.Join(names(s), ",") || len(s.Deployments()) != 2 {
		t.Fatalf("after ostree: ostree %s, strata %v", got, names(s))
	}
	if !strings.Contains(s.Deployments()[1].Options(), "root=/dev/vda1") {
		t.Errorf("options %q", s.Deployments()[1].Options())
	}
	ostree(t, "fsck", "--repo="+rp)
}

// TestSameSysrootAsOstreeVariants compares strata's and ostree's sysroots
// for less common trees: two stateroots (":os" in the titles), a kernel
// without initramfs (init= in the options), the legacy boot/ layout.
func TestSameSysrootAsOstreeVariants(t *testing.T) {
	type step struct {
		os  string
		dir func(t *testing.T) string
	}
	plain := func(v string) func(t *testing.T) string {
		return func(t *testing.T) string { return buildTree(t, treeSpec{version: v}) }
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"two stateroots", []step{{"testos", plain("1")}, {"other", plain("2")}}},
		{"no initramfs", []step{{"testos", func(t *testing.T) string { return buildTree(t, treeSpec{version: "1", noInitrd: true}) }}}},
		{"legacy boot layout", []step{{"testos", func(t *testing.T) string {
			dir := buildTree(t, treeSpec{version: "1"})
			must(t, os.RemoveAll(filepath.Join(dir, "usr/lib/modules")))
			csum := strings.Repeat("0a", 32)
			must(t, os.WriteFile(filepath.Join(dir, "boot/vmlinuz-6.1-"+csum), []byte("legacy kernel\n"), 0o644))
			must(t, os.WriteFile(filepath.Join(dir, "boot/initramfs-6.1.img-"+csum), []byte("legacy initrd\n"), 0o644))
			return dir
		}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, 0)
			o := ostreeSysroot(t, "testos")
			s := f.open()
			for i, st := range c.steps {
				if st.os != "testos" {
					must(t, InitOS(f.path, st.os))
					ostree(t, "admin", "os-init", "--sysroot="+o, st.os)
				}
				dir := st.dir(t)
				ts := "2024-01-0" + string(rune('1'+i)) + " 00:00:00"
				ostreeCommit(t, filepath.Join(f.path, "ostree/repo"), dir, "r", "1", ts)
				ostreeCommit(t, filepath.Join(o, "ostree/repo"), dir, "r", "1", ts)
				ostree(t, "admin", "deploy", "--sysroot="+o, "--os="+st.os, "--karg=root=LABEL=root", "r")
				if _, err := s.Deploy(ctx, DeployOptions{OS: st.os, Revision: "r", Karg: []string{"root=LABEL=root"}}); err != nil {
					t.Fatal(err)
				}
			}
			skip := func(rel string) bool {
				return rel == "ostree/repo" || strings.HasSuffix(rel, "/var/.ostree-selabeled")
			}
			if x, y := listTree(t, f.path, skip), listTree(t, o, skip); x != y {
				t.Fatalf("sysroots differ:\nstrata:\n%s\n\nostree:\n%s", x, y)
			}
		})
	}
}
