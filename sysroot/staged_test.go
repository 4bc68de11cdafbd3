package sysroot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// bootedFixture is a sysroot with version 1 deployed and booted.
func bootedFixture(t *testing.T) (*fixture, *Sysroot) {
	t.Helper()
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1"}, t0)
	s := f.open()
	f.deploy(s, DeployOptions{Karg: []string{"root=/dev/vda1"}})
	f.boot(s, s.Deployments()[0])
	return f, f.open()
}

func TestStageAndFinalize(t *testing.T) {
	ctx := context.Background()
	f, s := bootedFixture(t)
	booted := s.Booted()
	bv, _ := s.BootVersion()
	must(t, os.WriteFile(filepath.Join(s.DeploymentPath(booted), "etc/hosts"), []byte("local\n"), 0o644))
	c2 := f.commit(treeSpec{version: "2"}, t0.Add(time.Hour))
	d := f.deploy(s, DeployOptions{Stage: true})
	if !d.Staged || d.Index != 0 || d.Checksum != c2 {
		t.Fatalf("staged %+v", d)
	}
	if nbv, _ := s.BootVersion(); nbv != bv {
		t.Fatal("staging changed the boot version")
	}
	if st := s.Staged(); st == nil || !same(st, d) || len(s.Deployments()) != 2 {
		t.Fatalf("after staging: %v", names(s))
	}
	// The state file is the GVariant ostree writes; ostree lists the
	// staged deployment too.
	if out := ostree(t, "admin", "status", "--sysroot="+f.path); !strings.Contains(out, d.Name()) {
		t.Logf("ostree admin status (not booted for ostree, staged not shown):\n%s", out)
	}
	// A second staging replaces the first.
	c3 := f.commit(treeSpec{version: "3"}, t0.Add(2*time.Hour))
	d3 := f.deploy(s, DeployOptions{Stage: true})
	if d3.Checksum != c3 || lexists(s.DeploymentPath(d)) {
		t.Fatalf("restaging: %v, old dir kept: %v", names(s), lexists(s.DeploymentPath(d)))
	}
	// Nothing is committed until finalize: a reboot (run dir cleared)
	// forgets the staged deployment, and cleanup removes its directory.
	fin, err := s.FinalizeStaged(ctx)
	if err != nil || fin == nil || fin.Checksum != c3 || fin.Staged {
		t.Fatalf("finalize: %+v %v", fin, err)
	}
	if got := names(s); len(got) != 2 || got[0] != d3.Name() || got[1] != booted.Name() {
		t.Fatalf("after finalize %v", got)
	}
	if nbv, _ := s.BootVersion(); nbv == bv {
		t.Fatal("finalize did not switch boot version")
	}
	if lexists(filepath.Join(f.run, stagedFile)) {
		t.Error("staged state left behind")
	}
	if got := readFile(t, filepath.Join(s.DeploymentPath(s.Deployments()[0]), "etc/hosts")); got != "local\n" {
		t.Errorf("/etc merge at finalize: hosts %q", got)
	}
	if opts := s.Deployments()[0].Options(); !strings.HasPrefix(opts, "root=/dev/vda1 ostree=") {
		t.Errorf("kernel arguments not inherited at finalize: %q", opts)
	}
	if fin, err := s.FinalizeStaged(ctx); err != nil || fin != nil {
		t.Errorf("finalize with nothing staged: %v %v", fin, err)
	}
}

func TestStagedDroppedByReboot(t *testing.T) {
	ctx := context.Background()
	f, s := bootedFixture(t)
	f.commit(treeSpec{version: "2"}, t0.Add(time.Hour))
	d := f.deploy(s, DeployOptions{Stage: true})
	must(t, os.Remove(filepath.Join(f.run, stagedFile))) // the tmpfs is gone
	s = f.open()
	if s.Staged() != nil || len(s.Deployments()) != 1 {
		t.Fatalf("after reboot: %v", names(s))
	}
	if _, err := s.Cleanup(ctx, false); err != nil {
		t.Fatal(err)
	}
	if lexists(s.DeploymentPath(d)) {
		t.Error("unfinalized staged deployment not cleaned up")
	}
}

func TestStagedLockedAndDiscarded(t *testing.T) {
	ctx := context.Background()
	f, s := bootedFixture(t)
	f.commit(treeSpec{version: "2"}, t0.Add(time.Hour))
	d := f.deploy(s, DeployOptions{Stage: true, LockFinalization: true})
	if fin, err := s.FinalizeStaged(ctx); err != nil || fin != nil {
		t.Fatalf("locked finalize: %v %v", fin, err)
	}
	if s.Staged() == nil {
		t.Fatal("locked finalize dropped the staged deployment")
	}
	// Making another deployment the default discards the staged one.
	if _, err := s.SetDefault(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if s.Staged() != nil || lexists(s.DeploymentPath(d)) || lexists(filepath.Join(f.run, stagedLockedFile)) {
		t.Fatalf("staged deployment not discarded: %v", names(s))
	}
}

// fakePuller moves the remote ref to a prepared commit.
type fakePuller struct {
	to    objects.Checksum
	calls []string
}

func (p *fakePuller) Pull(ctx context.Context, r *repo.Repo, remote, ref string, from objects.Checksum) error {
	p.calls = append(p.calls, fmt.Sprintf("%s:%s from=%v", remote, ref, !from.IsZero()))
	c := p.to
	return r.SetRef("remotes/"+remote+"/"+ref, &c)
}

func TestUpgrade(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 0)
	c1 := f.commit(treeSpec{version: "1"}, t0)
	s := f.open()
	f.deploy(s, DeployOptions{})
	up := func(o UpgradeOptions) (*UpgradeResult, error) {
		o.OS = "testos"
		return s.Upgrade(ctx, o)
	}
	if res, err := up(UpgradeOptions{}); err != nil || res.Changed {
		t.Fatalf("no update: %+v %v", res, err)
	}
	c2 := f.commit(treeSpec{version: "2"}, t0.Add(time.Hour))
	res, err := up(UpgradeOptions{})
	if err != nil || !res.Changed || res.To != c2 || s.Deployments()[0].Checksum != c2 {
		t.Fatalf("upgrade: %+v %v %v", res, err, names(s))
	}
	// Going back in time is refused unless allowed.
	must(t, s.Repo().SetRef("heads/testos/stable", &c1))
	if _, err := up(UpgradeOptions{}); !errors.Is(err, ErrDowngrade) || !strings.Contains(err.Error(), "chronologically older") {
		t.Fatalf("downgrade: %v", err)
	}
	if res, err := up(UpgradeOptions{AllowDowngrade: true}); err != nil || res.To != c1 || s.Deployments()[0].Checksum != c1 {
		t.Fatalf("allowed downgrade: %+v %v", res, err)
	}
	// A remote refspec goes through the Puller.
	d := s.Deployments()[0]
	origin := setOriginKey(cloneOrigin(d.Origin), "origin", "refspec", "upstream:testos/stable")
	origin = setOriginKey(origin, transientGroup, "pinned", "true")
	must(t, s.writeOrigin(d, origin))
	s = f.open()
	if _, err := up(UpgradeOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("remote without puller: %v", err)
	}
	p := &fakePuller{to: c2}
	res, err = up(UpgradeOptions{Puller: p})
	if err != nil || res.To != c2 || fmt.Sprint(p.calls) != "[upstream:testos/stable from=true]" {
		t.Fatalf("pull upgrade: %+v %v %v", res, err, p.calls)
	}
	nd := s.Deployments()[0]
	if nd.Refspec() != "upstream:testos/stable" || nd.Pinned() {
		t.Errorf("origin of the upgrade: refspec %q pinned %v", nd.Refspec(), nd.Pinned())
	}
}

// TestLockExcludesOstree: a process holding ostree's lock (an OFD lock on
// ostree/lock) makes strata wait or fail, and strata's lock makes ostree
// wait.
func TestLockExcludesOstree(t *testing.T) {
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1"}, t0)
	s := f.open()
	l, err := s.lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Open(f.path, Options{NoLockWait: true})
	must(t, err)
	_, err = s2.Deploy(context.Background(), DeployOptions{OS: "testos", Revision: "testos/stable"})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "ostree/lock") || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second deploy: %v", err)
	}
	// ostree waits for strata's lock: cleanup (which locks) times out.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ostree", "admin", "cleanup", "--sysroot="+f.path)
	if err := cmd.Run(); err == nil {
		t.Fatal("ostree admin cleanup ran while strata held the lock")
	}
	l.unlock()
	if lexists(filepath.Join(f.path, LockPath)) {
		t.Error("lock file not removed on unlock")
	}
	// Waiting: a holder that lets go after a moment.
	l, err = s.lock(context.Background())
	must(t, err)
	waited := ""
	s3, err := Open(f.path, Options{OnLockWait: func(p string) { waited = p }})
	must(t, err)
	go func() { time.Sleep(200 * time.Millisecond); l.unlock() }()
	if _, err := s3.Deploy(context.Background(), DeployOptions{OS: "testos", Revision: "testos/stable"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(waited, "held by strata") {
		t.Errorf("OnLockWait got %q", waited)
	}
}
