package pull

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// TestPullPublishesAsItGoes: while a pull runs, what it staged is published
// every FlushInterval, from its one staging directory (no commit, no ref
// before the end); the finished pull is complete.
func TestPullPublishesAsItGoes(t *testing.T) {
	src, c, _ := bigFixture(t, 60)
	srv := serve(t, src.Path())
	dst := initRepo(t, repo.ModeBareUser)
	published := func() (files int) {
		filepath.WalkDir(filepath.Join(dst.Path(), "objects"), func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".file") {
				files++
			}
			return nil
		})
		return files
	}
	stagings := func() (n int) {
		ents, _ := os.ReadDir(filepath.Join(dst.Path(), "tmp"))
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), "staging-") {
				n++
			}
		}
		return n
	}
	var (
		reqs, seen, maxStaging atomic.Int32
		commitEarly            atomic.Bool
	)
	srv.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, ".filez") {
			return false
		}
		if n := int32(stagings()); n > maxStaging.Load() {
			maxStaging.Store(n)
		}
		if ok, _ := dst.HasObject(objects.KindCommit, c); ok {
			commitEarly.Store(true)
		}
		if reqs.Add(1) == 40 {
			// Objects received so far are published within a few
			// flush intervals, while the pull is still running.
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if n := published(); n > 0 {
					seen.Store(int32(n))
					break
				}
			}
		}
		return false
	})
	res, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}, Parallel: 2, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if seen.Load() == 0 {
		t.Error("nothing published while the pull ran")
	}
	if maxStaging.Load() != 1 {
		t.Errorf("%d staging directories at once, want 1", maxStaging.Load())
	}
	if commitEarly.Load() {
		t.Error("commit published before the objects were all fetched")
	}
	if got, _ := dst.ReadRef("remotes/o/main"); got != c {
		t.Error("ref not set")
	}
	if res.ContentFetched != int64(published()) {
		t.Errorf("%d content objects fetched, %d stored", res.ContentFetched, published())
	}
	fsckOK(t, dst)
}
