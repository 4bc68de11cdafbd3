package pull

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-os/strata/fetch"
	"github.com/strata-os/strata/internal/faultserver"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// bigFixture commits n small files and one large incompressible one.
func bigFixture(t *testing.T, n int) (*repo.Repo, objects.Checksum, string) {
	t.Helper()
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("d%d/f%d", i%5, i)] = fmt.Sprintf("file %d\n", i)
	}
	big := make([]byte, 3<<20)
	rand.New(rand.NewSource(7)).Read(big)
	files["big"] = string(big)
	src := initRepo(t, repo.ModeArchive)
	c := makeCommit(t, src, "main", writeTree(t, files), commitOpts{})
	updateSummary(t, src, nil)
	// The large object's path, for the hooks.
	var bigPath string
	filepath.WalkDir(filepath.Join(src.Path(), "objects"), func(p string, d os.DirEntry, err error) error {
		if st, err := os.Stat(p); err == nil && st.Size() > 2<<20 {
			bigPath = strings.TrimPrefix(p, src.Path())
		}
		return nil
	})
	if bigPath == "" {
		t.Fatal("no large object")
	}
	return src, c, bigPath
}

// TestPullResumesAcrossRuns: a pull whose large transfer breaks for good
// keeps the received prefix; the next pull asks only for the rest (Range)
// and verifies prefix and rest as one object.
func TestPullResumesAcrossRuns(t *testing.T) {
	src, c, bigPath := bigFixture(t, 10)
	fs := faultserver.New(t, src.Path(), faultserver.Options{})
	rel := strings.TrimPrefix(bigPath, "/")
	fs.Add(faultserver.Rule{Path: rel, Times: 1, Fault: faultserver.Fault{Kind: faultserver.Truncate, After: 2 << 20}})
	dst := initRepo(t, repo.ModeBareUser)
	noRetry := testFetch
	noRetry.Retries = -1
	_, err := Pull(ctx, dst, urlSource(t, fs.URL, dst, noRetry), Options{Remote: "o", Refs: []string{"main"}})
	if err == nil {
		t.Fatal("pull with a broken transfer and no retries succeeded")
	}
	t.Logf("first pull: %v", err)
	ents, _ := os.ReadDir(PartialDir(dst))
	if len(ents) != 1 {
		t.Fatalf("partial files: %v", ents)
	}
	if _, err := Pull(ctx, dst, urlSource(t, fs.URL, dst, testFetch), Options{Remote: "o", Refs: []string{"main"}}); err != nil {
		t.Fatal(err)
	}
	var ranges []string
	for _, r := range fs.Requests() {
		if r.Path == rel {
			ranges = append(ranges, r.Range)
		}
	}
	if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] == "bytes=0-" {
		t.Errorf("requests of the large object: %q", ranges)
	}
	if ents, _ := os.ReadDir(PartialDir(dst)); len(ents) != 0 {
		t.Errorf("partial files left: %v", ents)
	}
	if got, _ := dst.ReadRef("remotes/o/main"); got != c {
		t.Error("ref not set")
	}
	fsckOK(t, dst)
}

// TestPullResumesWithTheSameSource: a Source that kept a partial download
// resumes it in its next pull (it looks for partial files it knows of, not
// for every object).
func TestPullResumesWithTheSameSource(t *testing.T) {
	src, c, bigPath := bigFixture(t, 10)
	fs := faultserver.New(t, src.Path(), faultserver.Options{})
	rel := strings.TrimPrefix(bigPath, "/")
	fs.Add(faultserver.Rule{Path: rel, Times: 1, Fault: faultserver.Fault{Kind: faultserver.Truncate, After: 2 << 20}})
	dst := initRepo(t, repo.ModeArchive)
	noRetry := testFetch
	noRetry.Retries = -1
	source := urlSource(t, fs.URL, dst, noRetry)
	if _, err := Pull(ctx, dst, source, Options{Remote: "o", Refs: []string{"main"}}); err == nil {
		t.Fatal("pull with a broken transfer and no retries succeeded")
	}
	if _, err := Pull(ctx, dst, source, Options{Remote: "o", Refs: []string{"main"}}); err != nil {
		t.Fatal(err)
	}
	var ranges []string
	for _, r := range fs.Requests() {
		if r.Path == rel {
			ranges = append(ranges, r.Range)
		}
	}
	if len(ranges) != 2 || ranges[1] != "bytes=2097152-" {
		t.Errorf("requests of the large object: %q", ranges)
	}
	if got, _ := dst.ReadRef("remotes/o/main"); got != c {
		t.Error("ref not set")
	}
	fsckOK(t, dst)
}

// TestPullResumeBadPrefix: a kept prefix that is wrong (a power cut left
// garbage) fails verification once, is thrown away and the object fetched
// whole.
func TestPullResumeBadPrefix(t *testing.T) {
	src, c, bigPath := bigFixture(t, 3)
	fs := faultserver.New(t, src.Path(), faultserver.Options{})
	dst := initRepo(t, repo.ModeArchive)
	// Plant a bogus prefix for the large object.
	name := filepath.Base(filepath.Dir(bigPath)) + strings.TrimSuffix(filepath.Base(bigPath), ".filez")
	if err := os.MkdirAll(PartialDir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(PartialDir(dst), name+".filez"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(ctx, dst, urlSource(t, fs.URL, dst, testFetch), Options{Remote: "o", Refs: []string{"main"}}); err != nil {
		t.Fatal(err)
	}
	if n := fs.Count(strings.TrimPrefix(bigPath, "/")); n != 2 {
		t.Errorf("large object requested %d times, want 2 (resume, then whole)", n)
	}
	if got, _ := dst.ReadRef("remotes/o/main"); got != c {
		t.Error("ref not set")
	}
	fsckOK(t, dst)
}

// TestPullInterruptedThenResumed: a pull cancelled half way publishes what
// it verified, moves no ref and writes no commit; the next pull fetches
// only the rest.
func TestPullInterruptedThenResumed(t *testing.T) {
	src, c, _ := bigFixture(t, 60)
	srv := serve(t, src.Path())
	dst := initRepo(t, repo.ModeArchive)
	cctx, cancel := context.WithCancel(ctx)
	var n atomic.Int32
	srv.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, ".filez") && n.Add(1) == 20 {
			cancel()
		}
		return false
	})
	_, err := Pull(cctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}, Parallel: 2})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted pull: %v", err)
	}
	if _, err := dst.ReadRef("remotes/o/main"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("ref written by an interrupted pull: %v", err)
	}
	if ok, _ := dst.HasObject(objects.KindCommit, c); ok {
		t.Error("commit written by an interrupted pull")
	}
	stored := 0
	for _, o := range objectSet(t, dst) {
		if strings.HasSuffix(o, ".file") {
			stored++
		}
	}
	if stored < 10 {
		t.Errorf("only %d verified objects kept", stored)
	}
	fsckOK(t, dst)
	srv.setHook(nil)
	srv.take()
	res, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}})
	if err != nil {
		t.Fatal(err)
	}
	fetched := countSuffix(srv.take(), ".filez")
	total := 0
	for _, o := range objectSet(t, src) {
		if strings.HasSuffix(o, ".file") {
			total++
		}
	}
	if fetched != total-stored || int(res.ContentFetched) != fetched {
		t.Errorf("resumed pull fetched %d objects, want %d (%d of %d were stored)", fetched, total-stored, stored, total)
	}
	fsckOK(t, dst)
}

// TestPullFaults: each misbehaving server ends in a successful retry or a
// clear error, never in a corrupt object or a moved ref.
func TestPullFaults(t *testing.T) {
	src, c, bigPath := bigFixture(t, 20)
	big := strings.TrimPrefix(bigPath, "/")
	small := ""
	for _, o := range objectSet(t, src) {
		if strings.HasSuffix(o, ".file") && !strings.Contains(big, o[2:10]) {
			small = "objects/" + o[:2] + "/" + strings.TrimSuffix(o[2:], ".file") + ".filez"
			break
		}
	}
	type F = faultserver.Fault
	const (
		status   = faultserver.Status
		reset    = faultserver.Reset
		truncate = faultserver.Truncate
		flip     = faultserver.Flip
		trickle  = faultserver.Trickle
		stall    = faultserver.Stall
		endless  = faultserver.Endless
		ignore   = faultserver.IgnoreRange
	)
	slow := testFetch
	slow.LowSpeedLimit, slow.LowSpeedTime = 100000, 150*time.Millisecond
	cases := []struct {
		name    string
		rules   []faultserver.Rule
		fo      fetch.Options
		wantErr error // nil: the pull succeeds
	}{
		{"500 twice on an object", []faultserver.Rule{{Path: small, Times: 2, Fault: F{Kind: status, Status: 500}}}, testFetch, nil},
		{"503 on the summary", []faultserver.Rule{{Path: "summary", Times: 1, Fault: F{Kind: status, Status: 503}}}, testFetch, nil},
		{"500 for ever on an object", []faultserver.Rule{{Path: small, Fault: F{Kind: status, Status: 500}}}, testFetch, errors.New("500")},
		{"404 on an object", []faultserver.Rule{{Path: small, Fault: F{Kind: status, Status: 404}}}, testFetch, repo.ErrNotFound},
		{"reset in the large object", []faultserver.Rule{{Path: big, Times: 2, Fault: F{Kind: reset, After: 1 << 20}}}, testFetch, nil},
		{"reset before a small object", []faultserver.Rule{{Path: small, Times: 1, Fault: F{Kind: reset}}}, testFetch, nil},
		{"truncated large object", []faultserver.Rule{{Path: big, Times: 1, Fault: F{Kind: truncate, After: 100000}}}, testFetch, nil},
		{"truncated, then Range ignored", []faultserver.Rule{{Path: big, Times: 1, Fault: F{Kind: truncate, After: 100000}}, {Path: big, Skip: 1, Times: 1, Fault: F{Kind: ignore}}}, testFetch, nil},
		{"truncated commit", []faultserver.Rule{{Path: objPath(c, "commit"), Times: 1, Fault: F{Kind: truncate, After: 10}}}, testFetch, nil},
		{"flipped bit in a small object", []faultserver.Rule{{Path: small, Times: 1, Fault: F{Kind: flip, After: 30}}}, testFetch, repo.ErrCorrupt},
		{"flipped bit in the large object", []faultserver.Rule{{Path: big, Times: 1, Fault: F{Kind: flip, After: 2 << 20}}}, testFetch, repo.ErrCorrupt},
		{"flipped bit in the commit", []faultserver.Rule{{Path: objPath(c, "commit"), Times: 1, Fault: F{Kind: flip, After: 20}}}, testFetch, repo.ErrCorrupt},
		{"slow trickle", []faultserver.Rule{{Path: small, Times: 1, Fault: F{Kind: trickle, Rate: 5000}}}, testFetch, nil},
		{"stall in the large object", []faultserver.Rule{{Path: big, Times: 1, Fault: F{Kind: stall, After: 1 << 20}}}, slow, nil},
		{"endless small object", []faultserver.Rule{{Path: small, Fault: F{Kind: endless}}}, testFetch, repo.ErrCorrupt},
		{"endless large object", []faultserver.Rule{{Path: big, Fault: F{Kind: endless}}}, testFetch, repo.ErrCorrupt},
		{"endless summary", []faultserver.Rule{{Path: "summary", Fault: F{Kind: endless}}}, testFetch, ErrTooLarge},
		{"endless dirtree", []faultserver.Rule{{Path: rootTree(t, src, c), Fault: F{Kind: endless}}}, testFetch, ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := faultserver.New(t, src.Path(), faultserver.Options{})
			fs.Add(tc.rules...)
			dst := initRepo(t, repo.ModeBareUser)
			start := time.Now()
			// A small metadata cap keeps the endless summary short.
			_, err := Pull(ctx, dst, urlSource(t, fs.URL, dst, tc.fo), Options{Remote: "o", Refs: []string{"main"}, MaxMetadataSize: 4 << 20})
			t.Logf("%v in %v (%d requests)", err, time.Since(start).Round(time.Millisecond), fs.Count(""))
			ref, _ := dst.ReadRef("remotes/o/main")
			switch {
			case tc.wantErr == nil:
				if err != nil {
					t.Fatalf("pull failed: %v", err)
				}
				if ref != c {
					t.Errorf("ref %s, want %s", ref, c)
				}
			default:
				if err == nil || !(errors.Is(err, tc.wantErr) || strings.Contains(err.Error(), tc.wantErr.Error())) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				if !ref.IsZero() {
					t.Error("ref moved")
				}
				if ok, _ := dst.HasObject(objects.KindCommit, c); ok {
					t.Error("commit written")
				}
			}
			fsckOK(t, dst)
		})
	}
}

func objPath(c objects.Checksum, ext string) string {
	h := c.String()
	return "objects/" + h[:2] + "/" + h[2:] + "." + ext
}

func rootTree(t *testing.T, r *repo.Repo, c objects.Checksum) string {
	t.Helper()
	cm, err := r.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	return objPath(cm.RootTree, "dirtree")
}
