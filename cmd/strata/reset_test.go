package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// strata reset and reset --cleanup through the binary on a sysroot that
// is not booted (--os names the stateroot), checked with ostree admin
// status.
func TestResetCLI(t *testing.T) {
	f := newAdminFixture(t)
	sr := "--sysroot=" + f.sysroot
	f.ok("admin", "deploy", sr, "--os=testos", "testos/stable")
	varFile := filepath.Join(f.sysroot, "ostree/deploy/testos/var/lib/kept")
	if err := os.WriteFile(varFile, []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.fail("no deployment of stateroot", "reset", sr, "--os=nosuchos")
	out := f.ok("reset", sr, "--os=testos")
	if !strings.HasPrefix(out, "Next boot: testos-reset-1 ") {
		t.Fatalf("reset: %q", out)
	}
	st := ostreeOut(t, "admin", "status", "--sysroot="+f.sysroot)
	if !strings.Contains(st, "testos-reset-1 ") || !strings.Contains(st, "testos ") {
		t.Fatalf("ostree admin status after reset:\n%s", st)
	}
	if _, err := os.Stat(filepath.Join(f.sysroot, "ostree/deploy/testos-reset-1/var/lib/kept")); !os.IsNotExist(err) {
		t.Fatalf("the new stateroot's /var is not empty: %v", err)
	}
	if out := f.ok("reset", sr, "--cleanup", "--os=testos-reset-1"); out != "Removed stateroot testos\n" {
		t.Fatalf("cleanup: %q", out)
	}
	st = ostreeOut(t, "admin", "status", "--sysroot="+f.sysroot)
	if strings.Contains(st, "testos ") || !strings.Contains(st, "testos-reset-1 ") {
		t.Fatalf("ostree admin status after cleanup:\n%s", st)
	}
	if out := f.ok("reset", sr, "--cleanup", "--os=testos-reset-1"); out != "Nothing to clean up\n" {
		t.Fatalf("second cleanup: %q", out)
	}
}
