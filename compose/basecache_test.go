package compose

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// TestBaseCacheRoundTrip: a base tree stored in the cache and restored
// composes to the same commit as the tree itself.
func TestBaseCacheRoundTrip(t *testing.T) {
	ctx := context.Background()
	o := &Options{CacheDir: t.TempDir()}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	makeFixture(t, src, false)
	if hit, err := restoreBase(ctx, o, "k1", filepath.Join(t.TempDir(), "x")); err != nil || hit {
		t.Fatalf("empty cache: hit %v err %v", hit, err)
	}
	if err := storeBase(ctx, o, "k1", src); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "root")
	if hit, err := restoreBase(ctx, o, "k1", dst); err != nil || !hit {
		t.Fatalf("restore: hit %v err %v", hit, err)
	}
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var sums []objects.Checksum
	for _, root := range []string{src, dst} {
		s, err := ParseSpec(filepath.Join(t.TempDir(), "spec.toml"), []byte(fixtureSpec))
		if err != nil {
			t.Fatal(err)
		}
		if err := configure(ctx, s, root, 1700000000); err != nil {
			t.Fatal(err)
		}
		lay, err := layout(root, nopWarner{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Normalize(root, false); err != nil {
			t.Fatal(err)
		}
		c, err := commitTree(ctx, s, &Options{Repo: r}, "fixture", root, 1700000000, lay.Kernels)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, c)
	}
	if sums[0] != sums[1] {
		t.Fatalf("restored base composes to %s, the original to %s", sums[1], sums[0])
	}
	// Only baseKeep bases stay.
	for _, k := range []string{"k2", "k3", "k4", "k5", "k6"} {
		if err := storeBase(ctx, o, k, dst); err != nil {
			t.Fatal(err)
		}
	}
	br, _ := baseRepo(o)
	refs, _ := br.ListRefs()
	if len(refs) != baseKeep {
		t.Fatalf("%d bases kept, want %d", len(refs), baseKeep)
	}
}
