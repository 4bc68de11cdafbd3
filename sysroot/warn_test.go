package sysroot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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

// A stale temporary that cannot be removed (here a non-empty directory
// under a dead writer's temporary name) does not fail Cleanup: it reaches
// Options.Warner, naming the path.
func TestCleanupWarnsStaleTempNotRemoved(t *testing.T) {
	f := newFixture(t, 0)
	f.commit(treeSpec{version: "1"}, t0)
	f.deploy(f.open(), DeployOptions{})
	// PID 0x7ffffffe does not exist: the temporary is stale.
	stale := filepath.Join(f.path, "ostree", ".boot.1.tmp-2147483646-1-00000000")
	must(t, os.MkdirAll(filepath.Join(stale, "sub"), 0o755))
	var w warnings
	s, err := Open(f.path, Options{RunDir: f.run, Root: f.root, Cmdline: f.cmd, Warner: &w})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cleanup(context.Background(), false); err != nil {
		t.Fatalf("cleanup failed on a housekeeping error: %v", err)
	}
	if j := strings.Join(w.errs, "\n"); !strings.Contains(j, "stale temporary not removed") || !strings.Contains(j, stale) {
		t.Fatalf("warnings %q: want the stale temporary %s named", w.errs, stale)
	}
}
