package sysroot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// threeDeployments deploys versions 1, 2, 3 (each with --retain), so the
// list is [3, 2, 1].
func threeDeployments(t *testing.T, f *fixture) (*Sysroot, []objects.Checksum) {
	t.Helper()
	s := f.open()
	var cs []objects.Checksum
	for i := 1; i <= 3; i++ {
		cs = append(cs, f.commit(treeSpec{version: fmt.Sprint(i), kernel: fmt.Sprintf("kernel-%d\n", i)}, t0.Add(time.Duration(i)*time.Hour)))
		f.deploy(s, DeployOptions{Retain: true})
	}
	if len(s.Deployments()) != 3 {
		t.Fatalf("deployments %v", names(s))
	}
	return s, cs
}

func TestUndeploySetDefaultRollback(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 0)
	s, cs := threeDeployments(t, f)
	order := func() string {
		var out []string
		for _, d := range s.Deployments() {
			for i, c := range cs {
				if d.Checksum == c {
					out = append(out, fmt.Sprint(i+1))
				}
			}
		}
		return strings.Join(out, ",")
	}
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"initial", func() error { return nil }, "3,2,1"},
		{"set-default 2", func() error { _, err := s.SetDefault(ctx, 2); return err }, "1,3,2"},
		{"set-default 0 is a no-op", func() error { _, err := s.SetDefault(ctx, 0); return err }, "1,3,2"},
		{"rollback", func() error { _, err := s.Rollback(ctx); return err }, "3,1,2"},
		{"undeploy 1", func() error { _, _, err := s.Undeploy(ctx, 1); return err }, "3,2"},
		{"undeploy 5 fails", func() error {
			if _, _, err := s.Undeploy(ctx, 5); !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("undeploy 5: %v", err)
			}
			return nil
		}, "3,2"},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := order(); got != st.want {
			t.Fatalf("%s: order %s, want %s", st.name, got, st.want)
		}
		// ostree reads the same list.
		if got := ostreeStatusOrder(t, f.path); got != strings.Join(names(s), ",") {
			t.Fatalf("%s: ostree admin status lists %s, strata %v", st.name, got, names(s))
		}
	}
	// The undeployed deployment's directory and kernel dir are gone.
	if dirs, _ := filepath.Glob(filepath.Join(f.path, "ostree/deploy/testos/deploy/*.0")); len(dirs) != 2 {
		t.Errorf("deployment dirs %v", dirs)
	}
	if dirs, _ := filepath.Glob(filepath.Join(f.path, "boot/ostree/testos-*")); len(dirs) != 2 {
		t.Errorf("boot dirs %v", dirs)
	}
	// And its commit was pruned (no ref keeps it).
	if ok, _ := s.Repo().HasObject(objects.KindCommit, cs[0]); ok {
		t.Error("undeployed commit not pruned")
	}
}

// ostreeStatusOrder returns "CSUM.SERIAL,..." as `ostree admin status`
// lists them.
func ostreeStatusOrder(t *testing.T, sysroot string) string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(ostree(t, "admin", "status", "--sysroot="+sysroot), "\n") {
		fs := strings.Fields(line)
		if len(fs) >= 2 && (fs[0] == "testos" || fs[0] == "*") {
			if fs[0] == "*" {
				fs = fs[1:]
			}
			out = append(out, fs[1])
		}
	}
	return strings.Join(out, ",")
}

func TestUndeployBootedRefused(t *testing.T) {
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1"}, t0)
	s := f.open()
	f.deploy(s, DeployOptions{})
	f.boot(s, s.Deployments()[0])
	s = f.open()
	if _, _, err := s.Undeploy(context.Background(), 0); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "booted") {
		t.Fatalf("undeploy booted: %v", err)
	}
}

// TestPinMatchesOstree: the origin file strata writes for pin and unpin is
// byte for byte ostree's, and a pinned deployment survives a deploy.
func TestPinMatchesOstree(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1"}, t0)
	s := f.open()
	d := f.deploy(s, DeployOptions{})
	o := ostreeSysroot(t, "testos")
	ostreeCommit(t, filepath.Join(o, "ostree/repo"), buildTree(t, treeSpec{version: "1"}), "testos/stable", "1", "2024-01-01 00:00:00")
	ostree(t, "admin", "deploy", "--sysroot="+o, "--os=testos", "testos/stable")
	oorigin := func() string {
		m, _ := filepath.Glob(filepath.Join(o, "ostree/deploy/testos/deploy/*.origin"))
		return readFile(t, m[0])
	}
	for _, pin := range []bool{true, false} {
		if changed, err := s.SetPinned(ctx, 0, pin); err != nil || !changed {
			t.Fatalf("pin %v: %v %v", pin, changed, err)
		}
		args := []string{"admin", "pin", "--sysroot=" + o, "0"}
		if !pin {
			args = []string{"admin", "pin", "--sysroot=" + o, "--unpin", "0"}
		}
		ostree(t, args...)
		if got, want := readFile(t, s.originPath(d)), oorigin(); got != want {
			t.Errorf("pin=%v: origin %q, ostree writes %q", pin, got, want)
		}
		if s.Deployments()[0].Pinned() != pin {
			t.Errorf("pin=%v: Pinned() wrong", pin)
		}
	}
	if changed, err := s.SetPinned(ctx, 0, false); err != nil || changed {
		t.Errorf("unpin twice: %v %v", changed, err)
	}
	// Pinned deployments are kept by a deploy that would drop them.
	if _, err := s.SetPinned(ctx, 0, true); err != nil {
		t.Fatal(err)
	}
	f.commit(treeSpec{version: "2"}, t0.Add(time.Hour))
	f.deploy(s, DeployOptions{})
	f.commit(treeSpec{version: "3"}, t0.Add(2*time.Hour))
	f.deploy(s, DeployOptions{})
	ds := s.Deployments()
	if len(ds) != 3 || !same(ds[2], d) || !ds[2].Pinned() {
		t.Fatalf("pinned deployment dropped: %v", names(s))
	}
	if !strings.Contains(ostree(t, "admin", "status", "--sysroot="+f.path), "Pinned: yes") {
		t.Error("ostree does not see the pin")
	}
}

func TestEditKargs(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1"}, t0)
	s := f.open()
	// --karg replaces (one console= would survive), --karg-append appends.
	f.deploy(s, DeployOptions{Karg: []string{"root=/dev/vda1", "quiet"}, KargAppend: []string{"console=tty0", "console=ttyS0"}})
	bv, _ := s.BootVersion()
	cases := []struct {
		edit KargsEdit
		want string
		err  error
	}{
		{KargsEdit{Append: []string{"debug"}}, "root=/dev/vda1 quiet console=tty0 console=ttyS0 debug", nil},
		{KargsEdit{Delete: []string{"quiet"}}, "root=/dev/vda1 console=tty0 console=ttyS0 debug", nil},
		{KargsEdit{Delete: []string{"console"}}, "", ErrInvalid}, // two values: say which
		{KargsEdit{Replace: []string{"root=/dev/vda2"}}, "root=/dev/vda2 console=tty0 console=ttyS0 debug", nil},
		{KargsEdit{Delete: []string{"console=tty0"}}, "root=/dev/vda2 console=ttyS0 debug", nil},
		{KargsEdit{Replace: []string{"console=hvc0"}}, "root=/dev/vda2 console=hvc0 debug", nil},
		{KargsEdit{Delete: []string{"nope"}}, "", ErrNotFound},
		{KargsEdit{Replace: []string{"ostree=/x"}}, "", ErrInvalid},
	}
	for _, c := range cases {
		got, err := s.EditKargs(ctx, 0, c.edit)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%+v: err %v, want %v", c.edit, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Fatalf("%+v: %q %v, want %q", c.edit, got, err, c.want)
		}
		nbv, _ := s.BootVersion()
		if nbv == bv {
			t.Fatalf("%+v: kargs change did not write a new boot version", c.edit)
		}
		bv = nbv
		if opts := s.Deployments()[0].Options(); bootloader.WithoutKarg(opts, "ostree") != c.want || !strings.Contains(opts, fmt.Sprintf("ostree=/ostree/boot.%d/", bv)) {
			t.Fatalf("entry options %q", opts)
		}
	}
}

func TestCleanupRemovesLeftovers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 0)
	c1 := f.commit(treeSpec{version: "1"}, t0)
	s := f.open()
	d := f.deploy(s, DeployOptions{})
	// Leftovers of interrupted operations: a staging dir, an unreferenced
	// deployment with origin, a boot dir nobody uses, a stale loader.0
	// and link farm, a stale deployment ref.
	junk := []string{
		filepath.Join(f.path, "ostree/deploy/testos", stagingPrefix+c1.String()+".7"),
		filepath.Join(f.path, "ostree/deploy/testos/deploy", c1.String()+".3"),
		filepath.Join(f.path, "boot/ostree/testos-"+strings.Repeat("ab", 32)),
		filepath.Join(f.path, "boot/loader.0/entries"),
		filepath.Join(f.path, "ostree/boot.0.1/testos"),
	}
	for _, j := range junk {
		must(t, os.MkdirAll(filepath.Join(j, "sub"), 0o755))
	}
	must(t, seal(junk[1], true))
	must(t, os.WriteFile(junk[1]+".origin", []byte("[origin]\nrefspec=x\n"), 0o644))
	must(t, s.Repo().SetRef("heads/ostree/0/1/0", &c1))
	if _, err := s.Cleanup(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, j := range append(junk, junk[1]+".origin") {
		if lexists(j) {
			t.Errorf("cleanup left %s", j)
		}
	}
	if _, err := s.Repo().ReadRef("heads/ostree/0/1/0"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("stale ref kept: %v", err)
	}
	if !lexists(s.DeploymentPath(d)) || len(s.Deployments()) != 1 {
		t.Fatal("cleanup removed the deployment")
	}
	if ok, _ := s.Repo().HasObject(objects.KindCommit, c1); !ok {
		t.Fatal("prune removed the deployed commit")
	}
}

// TestEtcMerge: local edits, additions, deletions and mode changes of the
// merge deployment's /etc are carried into the new deployment; untouched
// files take the new defaults.
func TestEtcMerge(t *testing.T) {
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1", etc: map[string]string{"a.conf": "a1\n", "b.conf": "b1\n"}}, t0)
	s := f.open()
	d1 := f.deploy(s, DeployOptions{})
	etc := filepath.Join(s.DeploymentPath(d1), "etc")
	must(t, os.WriteFile(filepath.Join(etc, "a.conf"), []byte("local\n"), 0o644))
	must(t, os.Remove(filepath.Join(etc, "motd")))
	must(t, os.WriteFile(filepath.Join(etc, "new.conf"), []byte("new\n"), 0o600))
	must(t, os.Chmod(filepath.Join(etc, "hosts"), 0o600))
	changes, err := s.ConfigDiff(context.Background(), "testos")
	if err != nil {
		t.Fatal(err)
	}
	// The order follows inode numbers, as ostree's does (pinned in
	// etcmerge's interop test); compare by path here.
	sort.Slice(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	if got := fmt.Sprint(changes); got != "[{77 a.conf} {77 hosts} {68 motd} {65 new.conf}]" {
		t.Errorf("config-diff %s", got)
	}
	f.commit(treeSpec{version: "2", etc: map[string]string{"a.conf": "a2\n", "b.conf": "b2\n"}}, t0.Add(time.Hour))
	d2 := f.deploy(s, DeployOptions{})
	etc2 := filepath.Join(s.DeploymentPath(d2), "etc")
	for name, want := range map[string]string{"a.conf": "local\n", "b.conf": "b2\n", "new.conf": "new\n", "motd": "<none>", "hosts": "127.0.0.1 localhost\n"} {
		got := "<none>"
		if data, err := os.ReadFile(filepath.Join(etc2, name)); err == nil {
			got = string(data)
		}
		if got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if st, err := os.Stat(filepath.Join(etc2, "hosts")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("hosts mode not carried over: %v %v", st, err)
	}
}

// TestEtcMergeConflict: a locally edited file that the new tree turns into
// a directory fails the deploy before anything is written.
func TestEtcMergeConflict(t *testing.T) {
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1", etc: map[string]string{"x.conf": "x\n"}}, t0)
	s := f.open()
	d1 := f.deploy(s, DeployOptions{})
	must(t, os.WriteFile(filepath.Join(s.DeploymentPath(d1), "etc/x.conf"), []byte("edited\n"), 0o644))
	f.commit(treeSpec{version: "2", etc: map[string]string{"x.conf/inner": "i\n"}}, t0.Add(time.Hour))
	before := listTree(t, f.path, func(rel string) bool { return rel == "ostree/repo" })
	_, err := s.Deploy(context.Background(), DeployOptions{OS: "testos", Revision: "testos/stable"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "x.conf") {
		t.Fatalf("err %v", err)
	}
	if after := listTree(t, f.path, func(rel string) bool { return rel == "ostree/repo" }); after != before {
		t.Errorf("a failed merge changed the sysroot:\n%s\nvs\n%s", before, after)
	}
}

func TestVarSeededOnlyWhenEmpty(t *testing.T) {
	f := newFixture(t, 0)
	// An empty stateroot var (not os-init's) gets the commit's /var.
	v := filepath.Join(f.path, "ostree/deploy/fresh/var")
	must(t, os.MkdirAll(v, 0o755))
	r := f.repo()
	commitTree(t, r, buildTree(t, treeSpec{version: "1", varFiles: map[string]string{"lib/app/state": "seed\n"}}), "testos/stable", "1", t0)
	s := f.open()
	f.deploy(s, DeployOptions{OS: "fresh"})
	if got := readFile(t, filepath.Join(v, "lib/app/state")); got != "seed\n" {
		t.Errorf("seeded var: %q", got)
	}
	// A stateroot with content keeps it untouched.
	f.deploy(s, DeployOptions{OS: "testos"})
	if lexists(filepath.Join(f.path, "ostree/deploy/testos/var/lib/app")) {
		t.Error("non-empty var was seeded")
	}
	must(t, os.WriteFile(filepath.Join(v, "lib/app/state"), []byte("mine\n"), 0o644))
	f.deploy(s, DeployOptions{OS: "fresh"})
	if got := readFile(t, filepath.Join(v, "lib/app/state")); got != "mine\n" {
		t.Errorf("var changed by a deploy: %q", got)
	}
}

func TestBootCounting(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, -1) // default: 3 tries
	f.commit(treeSpec{version: "1"}, t0)
	s := f.open()
	f.deploy(s, DeployOptions{})
	entries := func() string {
		m, _ := filepath.Glob(filepath.Join(f.path, "boot/loader/entries/*.conf"))
		var out []string
		for _, p := range m {
			out = append(out, filepath.Base(p))
		}
		return strings.Join(out, " ")
	}
	if got := entries(); got != "ostree-1-testos+3.conf" {
		t.Fatalf("entries %s", got)
	}
	// The boot loader counts down; the booted system blesses the entry.
	bv, _ := s.BootVersion()
	dir := filepath.Join(f.path, fmt.Sprintf("boot/loader.%d/entries", bv))
	must(t, os.Rename(filepath.Join(dir, "ostree-1-testos+3.conf"), filepath.Join(dir, "ostree-1-testos+2-1.conf")))
	s = f.open()
	f.boot(s, s.Deployments()[0])
	s = f.open()
	if s.Booted() == nil {
		t.Fatal("not booted")
	}
	if ok, err := s.BootComplete(ctx); err != nil || !ok {
		t.Fatalf("boot-complete: %v %v", ok, err)
	}
	if got := entries(); got != "ostree-1-testos.conf" {
		t.Fatalf("after boot-complete: %s", got)
	}
	if ok, err := s.BootComplete(ctx); err != nil || ok {
		t.Fatalf("second boot-complete: %v %v", ok, err)
	}
	// A new deployment gets +3; the carried-over entry keeps its name.
	f.commit(treeSpec{version: "2"}, t0.Add(time.Hour))
	f.deploy(s, DeployOptions{})
	if got := entries(); got != "ostree-1-testos.conf ostree-2-testos+3.conf" {
		t.Fatalf("entries %s", got)
	}
	// ostree reads the counted entries.
	if got := ostreeStatusOrder(t, f.path); got != strings.Join(names(s), ",") {
		t.Fatalf("ostree lists %s, strata %v", got, names(s))
	}
}

// TestDeployListFlags: where the new deployment goes and what stays, as
// ostree's simple_write_deployment decides.
func TestDeployListFlags(t *testing.T) {
	cases := []struct {
		name string
		o    DeployOptions
		want string // versions, default first
	}{
		{"default", DeployOptions{}, "4,3"},
		{"retain", DeployOptions{Retain: true}, "4,3,2,1"},
		{"not-as-default", DeployOptions{NotAsDefault: true}, "3,4"},
		{"not-as-default retain", DeployOptions{NotAsDefault: true, Retain: true}, "3,4,2,1"},
		{"retain-rollback", DeployOptions{RetainRollback: true}, "4,3,2,1"},
		{"no-merge", DeployOptions{NoMerge: true}, "4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 0)
			s, cs := threeDeployments(t, f)
			cs = append(cs, f.commit(treeSpec{version: "4", kernel: "kernel-4\n"}, t0.Add(4*time.Hour)))
			f.deploy(s, c.o)
			var got []string
			for _, d := range s.Deployments() {
				for i, c := range cs {
					if d.Checksum == c {
						got = append(got, fmt.Sprint(i+1))
					}
				}
			}
			if strings.Join(got, ",") != c.want {
				t.Fatalf("deployments %v, want %s", got, c.want)
			}
		})
	}
}
