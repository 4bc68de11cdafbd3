package pull

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/fetch"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sign"
	"github.com/strata-os/strata/summary"
)

// writeTree creates files (path -> content) under a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, data := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type commitOpts struct {
	ts       time.Time
	bindRefs []string
	noBind   bool
	sizes    bool
}

// makeCommit commits dir to branch of r and returns the commit.
func makeCommit(t *testing.T, r *repo.Repo, branch, dir string, o commitOpts) objects.Checksum {
	t.Helper()
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	m := commit.NewMTree(nil)
	if err := commit.AddDir(ctx, tx, m, dir, commit.Filter{}, nil); err != nil {
		t.Fatal(err)
	}
	ts := o.ts
	if ts.IsZero() {
		ts = time.Unix(1700000000, 0)
	}
	co := commit.Options{Branch: branch, Subject: "test " + branch, Timestamp: ts, BindRefs: o.bindRefs, NoBindings: o.noBind}
	if o.sizes {
		tree, _, err := m.Write(tx)
		if err != nil {
			t.Fatal(err)
		}
		co.Metadata = objects.Metadata{{Key: "ostree.sizes", Value: sizesOf(t, tx, tree)}}
	}
	res, err := commit.Write(ctx, tx, m, co)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return res.Checksum
}

// sizesOf builds ostree.sizes for the files of a staged tree (archive
// sizes as stored in an archive repo: read back through the txn's repo
// after commit is not possible, so entries carry the content size for
// both; the tests only compare counts and sums).
func sizesOf(t *testing.T, tx *repo.Txn, tree objects.Checksum) gvariant.Variant {
	t.Helper()
	var items []any
	seen := map[objects.Checksum]bool{}
	var walk func(c objects.Checksum)
	walk = func(c objects.Checksum) {
		data, err := tx.ReadStagedMetadata(objects.KindDirTree, c)
		if err != nil {
			t.Fatal(err)
		}
		dt, err := objects.ParseDirTree(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range dt.Files {
			if seen[f.Checksum] {
				continue
			}
			seen[f.Checksum] = true
			b := append([]byte(nil), f.Checksum[:]...)
			b = binary.AppendUvarint(b, 1000)
			b = binary.AppendUvarint(b, 2000)
			b = append(b, 1)
			items = append(items, b)
		}
		for _, d := range dt.Dirs {
			walk(d.Tree)
		}
	}
	walk(tree)
	return gvariant.Variant{Type: gvariant.MustParseType("aay"), Value: items}
}

// updateSummary regenerates r's summary (unsigned, or signed by key).
func updateSummary(t *testing.T, r *repo.Repo, key ed25519.PrivateKey) {
	t.Helper()
	data, err := summary.Generate(r, summary.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sig objects.Metadata
	if key != nil {
		sig, err = sign.Append(nil, sign.Ed25519Key, ed25519.Sign(key, data))
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := summary.Publish(r, data, sig); err != nil {
		t.Fatal(err)
	}
}

// signCommit adds an ed25519 signature to c.
func signCommit(t *testing.T, r *repo.Repo, c objects.Checksum, key ed25519.PrivateKey) {
	t.Helper()
	if err := sign.SignCommit(context.Background(), r, c, sign.Ed25519Signer{Key: key}); err != nil {
		t.Fatal(err)
	}
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func initRepo(t *testing.T, mode repo.Mode) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), mode, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// server serves a repository directory and records the paths asked for.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string
	// hook, when set, may answer a request itself (returning true).
	hook func(w http.ResponseWriter, r *http.Request) bool
}

func serve(t *testing.T, dir string) *server {
	t.Helper()
	s := &server{}
	fsrv := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.URL.Path)
		hook := s.hook
		s.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		fsrv.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

// take returns and clears the recorded requests.
func (s *server) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.requests
	s.requests = nil
	return out
}

func countSuffix(reqs []string, suffix string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasSuffix(r, suffix) {
			n++
		}
	}
	return n
}

// testFetch makes retries quick.
var testFetch = fetch.Options{Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}

func httpSource(t *testing.T, s *server, dst *repo.Repo) Source {
	t.Helper()
	return urlSource(t, s.URL, dst, testFetch)
}

func urlSource(t *testing.T, url string, dst *repo.Repo, o fetch.Options) Source {
	t.Helper()
	src, err := OpenSource(url, "", PartialDir(dst), o)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// objectSet lists a repo's objects as "CHECKSUM.KIND" (file objects as
// ".file" whatever the mode), sorted.
func objectSet(t *testing.T, r *repo.Repo) []string {
	t.Helper()
	var out []string
	root := filepath.Join(r.Path(), "objects")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = strings.Replace(rel, "/", "", 1)
		rel = strings.Replace(rel, ".filez", ".file", 1)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// fsckOK fails the test unless r passes a full fsck.
func fsckOK(t *testing.T, r *repo.Repo) {
	t.Helper()
	rep, err := r.Fsck(context.Background(), repo.FsckOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		for _, p := range rep.Problems {
			t.Error(p)
		}
		t.Fatalf("fsck of %s failed", r.Path())
	}
}
