package pull

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-os/strata/internal/faultserver"
	"github.com/strata-os/strata/repo"
)

type warnings struct {
	mu   sync.Mutex
	errs []string
}

func (w *warnings) Warn(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, err.Error())
}

// A pull whose partial downloads cannot be kept (the partial directory is
// blocked by a file) still succeeds, and says through the Warner that resume
// was turned off for the large object.
func TestPullWarnsResumeTurnedOff(t *testing.T) {
	src, c, _ := bigFixture(t, 10)
	fs := faultserver.New(t, src.Path(), faultserver.Options{})
	dst := initRepo(t, repo.ModeArchive)
	pd := PartialDir(dst)
	if err := os.MkdirAll(filepath.Dir(pd), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pd, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	var w warnings
	if _, err := Pull(ctx, dst, urlSource(t, fs.URL, dst, testFetch), Options{Remote: "o", Refs: []string{"main"}, Warner: &w}); err != nil {
		t.Fatalf("pull failed on a housekeeping error: %v", err)
	}
	if got, _ := dst.ReadRef("remotes/o/main"); got != c {
		t.Fatal("ref not set")
	}
	found := false
	for _, e := range w.errs {
		found = found || strings.Contains(e, "resume turned off")
	}
	if !found {
		t.Fatalf("warnings %q: want resume turned off for the large object", w.errs)
	}
}

// A pull into a repository on tmpfs (no FS_TOPDIR_FL) reports the refused
// staging ioctl through the Warner and completes.
func TestPullWarnsSpreadStaging(t *testing.T) {
	src, c, _ := bigFixture(t, 3)
	shm, err := os.MkdirTemp("/dev/shm", "strata-pull-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	dst, err := repo.Init(filepath.Join(shm, "repo"), repo.ModeArchive, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var w warnings
	if _, err := Pull(ctx, dst, NewLocalSource(src), Options{Refs: []string{"main"}, Warner: &w}); err != nil {
		t.Fatal(err)
	}
	if got, _ := dst.ReadRef("heads/main"); got != c {
		t.Fatal("ref not set")
	}
	if len(w.errs) == 0 || !strings.Contains(strings.Join(w.errs, "\n"), "FS_TOPDIR_FL") {
		t.Fatalf("warnings %q: want the refused FS_TOPDIR_FL ioctl", w.errs)
	}
}
