package etcmerge

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/testtree"
)

// TestTesttree: a local /etc holding every entry kind (setuid, foreign
// owners, symlinks of every sort, hard links, xattrs, empty directories,
// long and unicode names, deep paths, a 3 MiB file) is carried whole into
// an empty new /etc, and a copy of it made with cp -a shows no change.
func TestTesttree(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	local := testtree.Build(t, mkdir(t, filepath.Join(root, "local")))
	orig, next := mkdir(t, filepath.Join(root, "orig")), mkdir(t, filepath.Join(root, "next"))

	p, err := NewPlan(ctx, orig, local, next)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, a := p.Counts(); a < 20 {
		t.Fatalf("only %d added", a)
	}
	if err := p.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if d := diffSnapshots(snapshot(t, next, true), snapshot(t, local, true)); d != "" {
		t.Errorf("merged tree differs from the local one:\n%s", d)
	}

	cp := filepath.Join(root, "cp")
	if out, err := exec.Command("cp", "-a", local, cp).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	changes, err := Diff(ctx, local, cp)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 0 {
		t.Errorf("copy differs: %v", changes)
	}
}

func mkdir(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
