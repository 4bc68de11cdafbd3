package fetch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/fetch"
	"github.com/strata-os/strata/internal/faultserver"
)

// TestMain fails the run when goroutines outlive the tests (a leaked
// watchdog, body or connection).
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if n, ok := settle(before, 5*time.Second); !ok {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "goroutine leak: %d before the tests, %d after\n%s", before, n, buf)
			code = 1
		}
	}
	os.Exit(code)
}

// settle waits until at most want goroutines run.
func settle(want int, d time.Duration) (int, bool) {
	deadline := time.Now().Add(d)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return n, true
		}
		if time.Now().After(deadline) {
			return n, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fixture is a served directory: small and big files of known content.
type fixture struct {
	dir   string
	files map[string][]byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	fx := &fixture{dir: dir, files: map[string][]byte{
		"config":                   []byte("[core]\nrepo_version=1\nmode=archive-z2\n"),
		"objects/ab/cdef.filez":    big,
		"objects/01/small.dirtree": big[:16<<10],
		"refs/heads/main":          []byte(strings.Repeat("ab", 32) + "\n"),
	}}
	for name, data := range fx.files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

// fast are options for tests: quick backoff, a short low-speed window.
func fast() fetch.Options {
	return fetch.Options{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Retries: 3}
}

func newFetcher(t *testing.T, base string, o fetch.Options) *fetch.Fetcher {
	t.Helper()
	f, err := fetch.New(base, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// readStream is Stream collecting the bytes.
func readStream(ctx context.Context, f *fetch.Fetcher, path string, offset, maxSize int64) ([]byte, error) {
	var got []byte
	err := f.Stream(ctx, path, offset, maxSize, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	return got, err
}

// transports are the ways a repo can be served.
var transports = []struct {
	name  string
	srv   faultserver.Options
	opt   func(o *fetch.Options, s *faultserver.Server)
	proto string
}{
	{"http1", faultserver.Options{}, nil, "HTTP/1.1"},
	{"h2c", faultserver.Options{HTTP2: true}, func(o *fetch.Options, _ *faultserver.Server) { o.H2C = true }, "HTTP/2.0"},
	{"https-h2", faultserver.Options{TLS: true, HTTP2: true}, func(o *fetch.Options, s *faultserver.Server) { o.TLSCAPath = s.CAFile() }, "HTTP/2.0"},
	{"https-http1", faultserver.Options{TLS: true, HTTP2: true}, func(o *fetch.Options, s *faultserver.Server) {
		o.TLSCAPath = s.CAFile()
		o.DisableHTTP2 = true
	}, "HTTP/1.1"},
}

func TestGetAndStream(t *testing.T) {
	ctx := context.Background()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			fx := newFixture(t)
			s := faultserver.New(t, fx.dir, tr.srv)
			o := fast()
			if tr.opt != nil {
				tr.opt(&o, s)
			}
			f := newFetcher(t, s.URL+"/", o)
			checkGetAndStream(t, ctx, f, fx)
			for _, r := range s.Requests() {
				if r.Proto != tr.proto {
					t.Errorf("%s: served over %s, want %s", r.Path, r.Proto, tr.proto)
				}
				if ua := r.Header.Get("User-Agent"); ua != fetch.DefaultUserAgent {
					t.Errorf("User-Agent %q", ua)
				}
			}
			st := f.Stats()
			if st.Retries != 0 || st.Requests != int64(s.Count("")) || st.Bytes != s.Bytes() {
				t.Errorf("stats %+v; server saw %d requests, %d bytes", st, s.Count(""), s.Bytes())
			}
		})
	}
	t.Run("file", func(t *testing.T) {
		fx := newFixture(t)
		f := newFetcher(t, "file://"+fx.dir, fast())
		checkGetAndStream(t, ctx, f, fx)
	})
}

func checkGetAndStream(t *testing.T, ctx context.Context, f *fetch.Fetcher, fx *fixture) {
	t.Helper()
	for name, want := range fx.files {
		got, err := f.Get(ctx, name, 1<<20)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Get %s: %d bytes, %v; want %d bytes", name, len(got), err, len(want))
		}
	}
	big := fx.files["objects/ab/cdef.filez"]
	for _, off := range []int64{0, 1, 4095, int64(len(big)) - 1, int64(len(big))} {
		got, err := readStream(ctx, f, "objects/ab/cdef.filez", off, 0)
		if err != nil || !bytes.Equal(got, big[off:]) {
			t.Errorf("Stream from %d: %d bytes, %v; want %d bytes", off, len(got), err, len(big)-int(off))
		}
	}
	b, err := f.Open(ctx, "objects/ab/cdef.filez", 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b.Size() != int64(len(big))-1000 {
		t.Errorf("Open from 1000: Size %d, want %d", b.Size(), len(big)-1000)
	}
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, big[1000:]) {
		t.Errorf("Open from 1000: %d bytes, %v", len(got), err)
	}
	b.Close()
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Errorf("Read after Close: no error")
	}
	if _, err := readStream(ctx, f, "objects/ab/cdef.filez", int64(len(big))+1, 0); !errors.Is(err, fetch.ErrChanged) {
		t.Errorf("Stream beyond the end: %v, want ErrChanged", err)
	}
	for _, name := range []string{"objects/00/missing.filez", "refs/heads/main/x"} {
		_, err := f.Get(ctx, name, 100)
		if !errors.Is(err, fetch.ErrNotFound) || !strings.Contains(err.Error(), name) {
			t.Errorf("Get %s: %v, want ErrNotFound naming it", name, err)
		}
		called := false
		err = f.Stream(ctx, name, 0, 0, func(io.Reader) error { called = true; return nil })
		if !errors.Is(err, fetch.ErrNotFound) || called {
			t.Errorf("Stream %s: %v (fn called: %v), want ErrNotFound", name, err, called)
		}
	}
	for _, bad := range []string{"", "/config", "../config", "objects/../config", "objects//x", "a?b"} {
		if _, err := f.Get(ctx, bad, 100); err == nil || errors.Is(err, fetch.ErrNotFound) {
			t.Errorf("Get %q: %v, want an invalid-path error", bad, err)
		}
	}
}
