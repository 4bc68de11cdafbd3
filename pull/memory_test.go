package pull

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/faultserver"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// manyTrees commits n directories, each its own dirtree, and returns the
// repo, the commit and the dirtrees' paths on a server.
func manyTrees(t *testing.T, n int) (*repo.Repo, objects.Checksum, []string) {
	t.Helper()
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("d%02d/f", i)] = fmt.Sprintf("file %d\n", i)
	}
	src := initRepo(t, repo.ModeArchive)
	c := makeCommit(t, src, "main", writeTree(t, files), commitOpts{})
	updateSummary(t, src, nil)
	cm, err := src.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	root, err := src.ReadDirTree(cm.RootTree)
	if err != nil {
		t.Fatal(err)
	}
	var trees []string
	for _, d := range root.Dirs {
		trees = append(trees, objPath(d.Tree, "dirtree"))
	}
	return src, c, trees
}

// peakHeap runs fn and returns the largest HeapAlloc seen while it ran,
// above what was in use before, sampled every millisecond.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
				peak.Store(ms.HeapAlloc - base)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	close(done)
	wg.Wait()
	return peak.Load()
}

// TestPullMetadataMemoryBounded: a hostile server sends every dirtree as a
// body that never ends. The pull fails, naming a dirtree and the 10 MiB
// cap ostree pull has (OSTREE_MAX_METADATA_SIZE), publishes nothing, and
// its peak heap stays under a bound that does not grow with the number of
// parallel fetches (the fetcher's memory budget lets two or so large
// bodies in at once; without it 32 fetches held 32 buffers).
func TestPullMetadataMemoryBounded(t *testing.T) {
	src, _, trees := manyTrees(t, 40)
	fs := faultserver.New(t, src.Path(), faultserver.Options{})
	for _, p := range trees {
		fs.Add(faultserver.Rule{Path: p, Fault: faultserver.Fault{Kind: faultserver.Endless}})
	}
	// Measured: about 42 MiB at 4 and at 32 parallel fetches (65-82 MiB
	// under -race); without the budget, 958 MiB and 5890 MiB.
	const bound = 128 << 20
	for _, parallel := range []int{4, 32} {
		t.Run(fmt.Sprint(parallel), func(t *testing.T) {
			dst := initRepo(t, repo.ModeArchive)
			fo := testFetch
			fo.MaxParallel = parallel
			var err error
			peak := peakHeap(func() {
				_, err = Pull(ctx, dst, urlSource(t, fs.URL, dst, fo), Options{Remote: "o", Refs: []string{"main"}, Parallel: parallel})
			})
			t.Logf("parallel %d: peak heap %.1f MiB: %v", parallel, float64(peak)/(1<<20), err)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), ".dirtree") || !strings.Contains(err.Error(), fmt.Sprint(MaxRemoteMetadataSize)) {
				t.Fatalf("pull of endless dirtrees: %v, want ErrTooLarge naming a dirtree and the %d-byte cap", err, MaxRemoteMetadataSize)
			}
			if peak > bound {
				t.Errorf("peak heap %d MiB over %d MiB with %d parallel fetches", peak>>20, bound>>20, parallel)
			}
			if _, err := dst.ReadRef("remotes/o/main"); !errors.Is(err, repo.ErrNotFound) {
				t.Errorf("ref after the failed pull: %v", err)
			}
			if objs := objectSet(t, dst); len(objs) != 0 {
				t.Errorf("published after the failed pull: %v", objs)
			}
		})
	}
}

// TestPullRefusesMetadataOverOstreeCap: a dirtree served with a declared
// size over 10 MiB is refused before its body is read, as ostree pull
// refuses it ("exceeded maximum size of 10485760 bytes").
func TestPullRefusesMetadataOverOstreeCap(t *testing.T) {
	src, _, trees := manyTrees(t, 2)
	served := t.TempDir()
	if out, err := exec.Command("cp", "-a", src.Path()+"/.", served).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	huge := make([]byte, MaxRemoteMetadataSize+1)
	if err := os.WriteFile(filepath.Join(served, trees[0]), huge, 0o644); err != nil {
		t.Fatal(err)
	}
	fs := faultserver.New(t, served, faultserver.Options{})
	dst := initRepo(t, repo.ModeArchive)
	_, err := Pull(ctx, dst, urlSource(t, fs.URL, dst, testFetch), Options{Remote: "o", Refs: []string{"main"}})
	name := strings.ReplaceAll(strings.TrimPrefix(trees[0], "objects/"), "/", "")
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), name) {
		t.Fatalf("pull of a dirtree of 10 MiB + 1: %v, want ErrTooLarge naming %s", err, name)
	}
	if _, err := dst.ReadRef("remotes/o/main"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("ref after the failed pull: %v", err)
	}
}
