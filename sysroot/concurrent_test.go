package sysroot

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// faultClean checks that nothing of an interrupted or concurrent attempt
// is left: one loader.N, the live ostree/boot.N and its link farm only,
// no staging directory, no temporary file, a directory and an origin for
// each deployment and nothing else, a boot directory per kernel in use.
func faultClean(t *testing.T, f *fixture) {
	t.Helper()
	s := f.open()
	bv, sub := s.BootVersion()
	want := map[string]bool{
		fmt.Sprintf("boot/loader.%d", bv): true, "boot/loader": true,
		fmt.Sprintf("ostree/boot.%d", bv): true, fmt.Sprintf("ostree/boot.%d.%d", bv, sub): true,
		"ostree/deploy/testos/deploy": true, "ostree/deploy/testos/var": true,
	}
	for _, d := range s.Deployments() {
		want[d.RelPath()], want[d.RelPath()+".origin"] = true, true
		want["boot/ostree/testos-"+d.BootChecksum] = true
	}
	var got []string
	for _, pattern := range []string{"boot/loader*", "ostree/boot.*", "ostree/deploy/testos/*", "ostree/deploy/testos/.*", "ostree/deploy/testos/deploy/*", "ostree/deploy/testos/deploy/.*", "boot/ostree/*", "ostree/.*"} {
		m, err := filepath.Glob(filepath.Join(f.path, pattern))
		must(t, err)
		got = append(got, m...)
	}
	for _, p := range got {
		rel, _ := filepath.Rel(f.path, p)
		if !want[rel] {
			t.Errorf("left behind: %s", rel)
		}
		delete(want, rel)
	}
	for rel := range want {
		t.Errorf("missing: %s", rel)
	}
}

// TestConcurrentOperations: deploy, cleanup, pin, kernel-argument edits
// and rollback, each on its own Sysroot, all at once, twice over: the lock
// serializes them, each succeeds, and the sysroot ends consistent.
func TestConcurrentOperations(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, -1)
	faultTwo(f)
	f.commit(treeSpec{version: "3", kernel: "kernel-3\n"}, t0.Add(2*time.Hour))
	ops := map[string]func(s *Sysroot) error{
		"deploy": func(s *Sysroot) error {
			_, err := s.Deploy(ctx, DeployOptions{OS: "testos", Revision: "testos/stable", Retain: true})
			return err
		},
		"cleanup": func(s *Sysroot) error { _, err := s.Cleanup(ctx, true); return err },
		"pin":     func(s *Sysroot) error { _, err := s.SetPinned(ctx, 1, true); return err },
		"kargs": func(s *Sysroot) error {
			_, err := s.EditKargs(ctx, 0, KargsEdit{Append: []string{"console=ttyS0"}})
			return err
		},
		"rollback": func(s *Sysroot) error { _, err := s.Rollback(ctx); return err },
	}
	for round := 0; round < 2; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		errs := map[string]error{}
		for name, op := range ops {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := Open(f.path, Options{RunDir: f.run, Cmdline: f.cmd})
				if err == nil {
					err = op(s)
				}
				mu.Lock()
				errs[name] = err
				mu.Unlock()
			}()
		}
		wg.Wait()
		for name, err := range errs {
			if err != nil {
				t.Errorf("round %d: %s: %v", round, name, err)
			}
		}
		entries, err := faultBootable(f.path)
		must(t, err)
		s, order := faultStatus(t, f)
		if strings.Join(entries, ",") != strings.Join(order, ",") || ostreeStatusOrder(t, f.path) != strings.Join(order, ",") {
			t.Fatalf("round %d: entries %v, strata %v, ostree %s", round, entries, order, ostreeStatusOrder(t, f.path))
		}
		if len(order) != 3+round {
			t.Fatalf("round %d: %d deployments, want %d: %v", round, len(order), 3+round, order)
		}
		pinned := 0
		for _, d := range s.Deployments() {
			if d.Pinned() {
				pinned++
			}
		}
		if pinned == 0 {
			t.Errorf("round %d: the pin is lost", round)
		}
		faultClean(t, f)
		faultFsck(t, f)
	}
}

// TestLockExcludesOstreeDeploy: while strata holds the sysroot lock, a
// concurrent `ostree admin deploy` waits and changes nothing; it deploys
// once the lock is released, and both tools then read the same sysroot.
func TestLockExcludesOstreeDeploy(t *testing.T) {
	f := newFixture(t, -1)
	s := faultV1(f)
	faultV2(f)
	before := listTree(t, filepath.Join(f.path, "boot"), nil)
	beforeDeploy := listTree(t, filepath.Join(f.path, "ostree/deploy"), func(rel string) bool { return strings.Count(rel, "/") > 2 })
	l, err := s.lock(context.Background())
	must(t, err)
	locked := true
	defer func() {
		if locked {
			l.unlock()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ostree", "admin", "deploy", "--sysroot="+f.path, "--os=testos", "testos/stable")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("ostree admin deploy ran under strata's lock: %v\n%s", err, out.String())
	case <-time.After(700 * time.Millisecond):
	}
	if got := listTree(t, filepath.Join(f.path, "boot"), nil); got != before {
		t.Fatalf("ostree changed boot/ under strata's lock:\n%s", got)
	}
	if got := listTree(t, filepath.Join(f.path, "ostree/deploy"), func(rel string) bool { return strings.Count(rel, "/") > 2 }); got != beforeDeploy {
		t.Fatalf("ostree changed ostree/deploy under strata's lock:\n%s", got)
	}
	l.unlock()
	locked = false
	if err := <-done; err != nil {
		t.Fatalf("ostree admin deploy after the lock was released: %v\n%s", err, out.String())
	}
	entries, err := faultBootable(f.path)
	must(t, err)
	_, order := faultStatus(t, f)
	if len(order) != 2 || strings.Join(entries, ",") != strings.Join(order, ",") || ostreeStatusOrder(t, f.path) != strings.Join(order, ",") {
		t.Fatalf("after ostree's deploy: entries %v, strata %v", entries, order)
	}
}

// TestLockHeldByOstree: a lock taken with ostree's protocol (an OFD lock
// on ostree/lock, no content) makes a non-waiting strata fail with
// ErrLocked naming the lock and the holder, changing nothing; a waiting
// one says whom it waits for and proceeds when the lock is released.
func TestLockHeldByOstree(t *testing.T) {
	f := newFixture(t, -1)
	faultV1(f)
	faultV2(f)
	p := filepath.Join(f.path, LockPath)
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	must(t, err)
	must(t, unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}))
	release := func() {
		if fd >= 0 {
			unix.Unlink(p)
			unix.Close(fd)
			fd = -1
		}
	}
	defer release()
	before := listTree(t, filepath.Join(f.path, "boot"), nil)
	s, err := Open(f.path, Options{RunDir: f.run, Cmdline: f.cmd, NoLockWait: true})
	must(t, err)
	_, err = s.Deploy(context.Background(), DeployOptions{OS: "testos", Revision: "testos/stable"})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "another process (ostree?)") {
		t.Fatalf("deploy under ostree's lock: %v", err)
	}
	if got := listTree(t, filepath.Join(f.path, "boot"), nil); got != before {
		t.Fatal("a refused deploy changed boot/")
	}
	waiting := make(chan string, 1)
	s, err = Open(f.path, Options{RunDir: f.run, Cmdline: f.cmd, OnLockWait: func(m string) { waiting <- m }})
	must(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := s.Deploy(context.Background(), DeployOptions{OS: "testos", Revision: "testos/stable"})
		done <- err
	}()
	select {
	case m := <-waiting:
		if m != p+" (held by another process (ostree?))" {
			t.Errorf("OnLockWait: %q", m)
		}
	case err := <-done:
		t.Fatalf("deploy did not wait: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("deploy neither waited nor finished")
	}
	release()
	must(t, <-done)
	if _, order := faultStatus(t, f); len(order) != 2 {
		t.Fatalf("after the lock was released: %v", order)
	}
	if lexists(p) {
		t.Error("the lock file is left behind")
	}
}
