package sysroot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Factory reset on a booted sysroot: a new stateroot with the image's
// /etc and an empty /var, the old one kept and reachable by rollback
// until ResetCleanup removes it. ostree admin status agrees at each step.
func TestResetAndCleanup(t *testing.T) {
	f := newFixture(t, -1)
	f.commit(treeSpec{version: "1", etc: map[string]string{"motd": "image motd\n"}}, time.Unix(1700000000, 0))
	s := f.open()
	d := f.deploy(s, DeployOptions{KargAppend: []string{"console=ttyS0", "quiet"}})
	f.boot(s, d)
	s = f.open()
	// Local state on the old stateroot.
	oldEtc := filepath.Join(s.DeploymentPath(s.Booted()), "etc")
	if err := os.WriteFile(filepath.Join(oldEtc, "motd"), []byte("edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The install's mounts (fstab) are kept.
	if err := os.WriteFile(filepath.Join(oldEtc, "fstab"), []byte("UUID=ABCD-1234 /boot/efi vfat umask=0077 0 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	oldVar := filepath.Join(f.path, "ostree/deploy/testos/var")
	if err := os.WriteFile(filepath.Join(oldVar, "lib/data"), []byte("user data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, newOS, err := s.Reset(ctx, ResetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if newOS != "testos-reset-1" || res.Deployment.OS != newOS || res.Deployment.Checksum != d.Checksum {
		t.Fatalf("reset: %s %+v", newOS, res.Deployment)
	}
	s = f.open()
	deps := s.Deployments()
	if len(deps) != 2 || deps[0].OS != newOS || deps[1].OS != "testos" {
		t.Fatalf("deployments: %v", names(s))
	}
	if got := readFile(t, filepath.Join(s.DeploymentPath(deps[0]), "etc/motd")); got != "image motd\n" {
		t.Fatalf("new /etc/motd: %q", got)
	}
	if got := readFile(t, filepath.Join(s.DeploymentPath(deps[0]), "etc/fstab")); got != "UUID=ABCD-1234 /boot/efi vfat umask=0077 0 2\n" {
		t.Fatalf("new /etc/fstab: %q", got)
	}
	if got := readFile(t, filepath.Join(oldEtc, "motd")); got != "edited\n" {
		t.Fatalf("old /etc/motd: %q", got)
	}
	if _, err := os.Stat(filepath.Join(f.path, "ostree/deploy", newOS, "var/lib/data")); !os.IsNotExist(err) {
		t.Fatalf("new /var has the old data: %v", err)
	}
	if !strings.Contains(deps[0].Options(), "console=ttyS0 quiet") {
		t.Fatalf("kernel arguments not kept: %s", deps[0].Options())
	}
	st := ostree(t, "admin", "status", "--sysroot="+f.path)
	if !strings.Contains(st, newOS+" "+d.Checksum.String()+".0") || !strings.Contains(st, "testos "+d.Checksum.String()+".0") {
		t.Fatalf("ostree admin status:\n%s", st)
	}
	if i, j := strings.Index(st, newOS+" "), strings.Index(st, "testos "+d.Checksum.String()); i > j {
		t.Fatalf("new stateroot not first:\n%s", st)
	}

	// Boot the new stateroot; rollback goes back to the old one.
	f.boot(s, deps[0])
	s = f.open()
	back, err := s.Rollback(ctx)
	if err != nil || back.OS != "testos" {
		t.Fatalf("rollback: %+v %v", back, err)
	}
	s = f.open()
	if s.Deployments()[0].OS != "testos" {
		t.Fatalf("after rollback: %v", names(s))
	}
	// Forward again (set-default the reset deployment), then clean up.
	if _, err := s.SetDefault(ctx, 1); err != nil {
		t.Fatal(err)
	}
	s = f.open()
	gone, err := s.ResetCleanup(ctx, "")
	if err != nil || gone != "testos" {
		t.Fatalf("cleanup: %q %v", gone, err)
	}
	s = f.open()
	if ds := s.Deployments(); len(ds) != 1 || ds[0].OS != newOS {
		t.Fatalf("after cleanup: %v", names(s))
	}
	if _, err := os.Stat(filepath.Join(f.path, "ostree/deploy/testos")); !os.IsNotExist(err) {
		t.Fatalf("old stateroot still there: %v", err)
	}
	st = ostree(t, "admin", "status", "--sysroot="+f.path)
	if strings.Contains(st, "testos "+d.Checksum.String()) || !strings.Contains(st, newOS) {
		t.Fatalf("ostree admin status after cleanup:\n%s", st)
	}
	if _, err := s.Rollback(ctx); err == nil {
		t.Fatal("rollback after cleanup")
	}
	// A second cleanup finds nothing to do.
	if gone, err := f.open().ResetCleanup(ctx, ""); err != nil || gone != "" {
		t.Fatalf("second cleanup: %q %v", gone, err)
	}
}

// TestResetRollbackSkipsBadDeployment: the replaced stateroot's newest
// deployment failed its health check (marked bad, the loader fell back to
// the older one); a rollback from the reset goes to the older, good one,
// not to the one the loader would skip.
func TestResetRollbackSkipsBadDeployment(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 3)
	f.commit(treeSpec{version: "1"}, time.Unix(1700000000, 0))
	s := f.open()
	good := f.deploy(s, DeployOptions{})
	f.boot(s, good)
	s = f.open()
	f.commit(treeSpec{version: "2"}, time.Unix(1700003600, 0))
	bad := f.deploy(s, DeployOptions{})
	f.boot(s, bad)
	s = f.open()
	if err := s.MarkBootBad(ctx); err != nil {
		t.Fatal(err)
	}
	// The loader skipped the bad entry: the good one is booted.
	s = f.open()
	for _, d := range s.Deployments() {
		if d.Checksum == good.Checksum {
			f.boot(s, d)
		}
	}
	s = f.open()
	if _, _, err := s.Reset(ctx, ResetOptions{}); err != nil {
		t.Fatal(err)
	}
	s = f.open()
	f.boot(s, s.Deployments()[0])
	s = f.open()
	back, err := s.Rollback(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if back.OS != "testos" || back.Checksum != good.Checksum {
		t.Fatalf("rollback to %s %s, want the good deployment %s (not the bad %s)", back.OS, back.Checksum, good.Checksum, bad.Checksum)
	}
}
