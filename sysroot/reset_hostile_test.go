package sysroot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ResetCleanup takes the stateroot to remove from the origin's
// reset-from key: a name that is no stateroot name ("..", a path) is
// refused, and the directory it points at, outside ostree/deploy, is
// untouched.
func TestResetCleanupRefusesBadResetFrom(t *testing.T) {
	f := newFixture(t, -1)
	f.commit(treeSpec{version: "1"}, time.Unix(1700000000, 0))
	s := f.open()
	f.boot(s, f.deploy(s, DeployOptions{}))
	s = f.open()
	ctx := context.Background()
	if _, _, err := s.Reset(ctx, ResetOptions{}); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(filepath.Dir(f.path), "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	sentinel := filepath.Join(outside, "sentinel")
	if err := os.WriteFile(sentinel, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	origins, _ := filepath.Glob(filepath.Join(f.path, "ostree/deploy/testos-reset-1/deploy/*.origin"))
	if len(origins) != 1 {
		t.Fatalf("origins: %v", origins)
	}
	b, err := os.ReadFile(origins[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../../../outside", "..", "a/b"} {
		nb := strings.Replace(string(b), "reset-from=testos", "reset-from="+bad, 1)
		if nb == string(b) {
			t.Fatalf("no reset-from in:\n%s", b)
		}
		if err := os.WriteFile(origins[0], []byte(nb), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := f.open().ResetCleanup(ctx, "testos-reset-1")
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("reset-from=%s: %v", bad, err)
		}
		if got := readFile(t, sentinel); got != "keep\n" {
			t.Fatalf("reset-from=%s: sentinel %q", bad, got)
		}
		if _, err := os.Stat(filepath.Join(f.path, "ostree/deploy/testos/var")); err != nil {
			t.Fatalf("reset-from=%s: %v", bad, err)
		}
	}
	if n := len(f.open().Deployments()); n != 2 {
		t.Fatalf("%d deployments", n)
	}
}
