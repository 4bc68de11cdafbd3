package pull

import (
	"context"
	"encoding/binary"
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

// TestPullResumesLargeObjectWithRange: a transfer that breaks half way
// resumes with a Range request from where it broke, and the object is
// verified whole.
func TestPullResumesLargeObjectWithRange(t *testing.T) {
	src, c, bigPath := bigFixture(t, 10)
	srv := serve(t, src.Path())
	var broke atomic.Bool
	var rangeHdr atomic.Value
	srv.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != bigPath {
			return false
		}
		if h := r.Header.Get("Range"); h != "" {
			rangeHdr.Store(h)
			return false
		}
		if broke.Swap(true) {
			return false
		}
		data, _ := os.ReadFile(filepath.Join(src.Path(), bigPath))
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-body
	})
	dst := initRepo(t, repo.ModeBareUser)
	if _, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}}); err != nil {
		t.Fatal(err)
	}
	h, _ := rangeHdr.Load().(string)
	if !strings.HasPrefix(h, "bytes=") || h == "bytes=0-" {
		t.Errorf("no resuming Range request (got %q)", h)
	}
	t.Logf("resumed with %s", h)
	if got, _ := dst.ReadRef("remotes/o/main"); got != c {
		t.Error("ref not set")
	}
	if ents, _ := os.ReadDir(PartialDir(dst)); len(ents) != 0 {
		t.Errorf("partial files left: %v", ents)
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
	small := ""
	for _, o := range objectSet(t, src) {
		if strings.HasSuffix(o, ".file") && !strings.Contains(bigPath, o[2:10]) {
			small = "/objects/" + o[:2] + "/" + strings.TrimSuffix(o[2:], ".file") + ".filez"
			break
		}
	}
	read := func(p string) []byte {
		data, err := os.ReadFile(filepath.Join(src.Path(), p))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	once := func(path string, fn func(w http.ResponseWriter, r *http.Request)) func(w http.ResponseWriter, r *http.Request) bool {
		var done atomic.Bool
		return func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != path || done.Swap(true) {
				return false
			}
			fn(w, r)
			return true
		}
	}
	always := func(path string, fn func(w http.ResponseWriter, r *http.Request)) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != path {
				return false
			}
			fn(w, r)
			return true
		}
	}
	status := func(code int) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
	}
	reset := func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	truncated := func(p string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			data := read(p)
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	}
	wrong := func(p string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			data := read(p)
			data[len(data)-10] ^= 0x55
			w.Write(data)
		}
	}
	// endless sends the object's real header, then empty deflate blocks
	// for ever: valid so far, never ending.
	endless := func(p string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			data := read(p)
			hlen := 8 + int(binary.BigEndian.Uint32(data))
			w.Write(data[:hlen])
			buf := make([]byte, 0, 64<<10)
			for len(buf)+5 <= cap(buf) {
				buf = append(buf, 0, 0, 0, 0xff, 0xff)
			}
			for r.Context().Err() == nil {
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
		}
	}
	trickle := func(p string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			data := read(p)
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			for i := 0; i < len(data); i += 16 {
				w.Write(data[i:min(i+16, len(data))])
				w.(http.Flusher).Flush()
				time.Sleep(time.Millisecond)
			}
		}
	}
	cases := []struct {
		name    string
		hook    func(w http.ResponseWriter, r *http.Request) bool
		wantErr error // nil: the pull succeeds
		errText string
	}{
		{"500 once on an object", once(small, status(500)), nil, ""},
		{"503 once on the summary", once("/summary", status(503)), errors.New("any"), "503"},
		{"always 500 on an object", always(small, status(500)), errors.New("any"), "500"},
		{"reset on an object", once(small, reset), nil, ""},
		{"truncated large object", once(bigPath, truncated(bigPath)), nil, ""},
		{"truncated small object", once(small, truncated(small)), nil, ""},
		{"wrong bytes", once(small, wrong(small)), repo.ErrCorrupt, ""},
		{"wrong bytes in the large object", once(bigPath, wrong(bigPath)), repo.ErrCorrupt, ""},
		{"endless body", always(small, endless(small)), repo.ErrCorrupt, ""},
		{"endless body of the large object", always(bigPath, endless(bigPath)), repo.ErrCorrupt, ""},
		{"slow trickle", once(small, trickle(small)), nil, ""},
		{"object missing", always(small, status(404)), repo.ErrNotFound, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, src.Path())
			srv.setHook(tc.hook)
			dst := initRepo(t, repo.ModeBareUser)
			start := time.Now()
			_, err := Pull(ctx, dst, httpSource(t, srv, dst), Options{Remote: "o", Refs: []string{"main"}})
			t.Logf("%v in %v", err, time.Since(start).Round(time.Millisecond))
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
				if err == nil || (tc.errText == "" && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("got %v, want %v %q", err, tc.wantErr, tc.errText)
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
