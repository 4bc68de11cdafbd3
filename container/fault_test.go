package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// faultProxy sits before the registry and breaks the GETs of one blob:
// mode "reset" sends after bytes then closes the connection, "flip"
// inverts one byte, "503" answers 503; times counts how many requests
// are broken. It records the Range headers and the body bytes served.
type faultProxy struct {
	mu      sync.Mutex
	target  string // digest whose GETs are broken
	mode    string
	after   int
	times   int
	ranges  []string
	served  int64
	servedB map[string]int64
	// byPath records every GET's Range header ("" for none) by path.
	byPath map[string][]string
}

type countingWriter struct {
	http.ResponseWriter
	p    *faultProxy
	path string
	cut  int // bytes left before a reset (-1: never)
	flip int // offset to flip (-1: never)
	off  int
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.flip >= c.off && c.flip < c.off+len(b) {
		b = append([]byte(nil), b...)
		b[c.flip-c.off] ^= 0xff
	}
	if c.cut >= 0 && len(b) > c.cut {
		n, _ := c.ResponseWriter.Write(b[:c.cut])
		c.count(n)
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		conn, _, err := c.ResponseWriter.(http.Hijacker).Hijack()
		if err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
		return n, errors.New("connection cut by the test")
	}
	n, err := c.ResponseWriter.Write(b)
	if c.cut >= 0 {
		c.cut -= n
	}
	c.off += n
	c.count(n)
	return n, err
}

func (c *countingWriter) count(n int) {
	c.p.mu.Lock()
	c.p.served += int64(n)
	c.p.servedB[c.path] += int64(n)
	c.p.mu.Unlock()
}

func (p *faultProxy) start(t *testing.T, registry string) string {
	p.servedB = map[string]int64{}
	p.byPath = map[string][]string{}
	u, _ := url.Parse("http://" + registry)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, p: p, path: r.URL.Path, cut: -1, flip: -1}
		if r.Method == http.MethodGet {
			p.mu.Lock()
			p.byPath[r.URL.Path] = append(p.byPath[r.URL.Path], r.Header.Get("Range"))
			p.mu.Unlock()
		}
		if r.Method == http.MethodGet && p.target != "" && strings.HasSuffix(r.URL.Path, "/blobs/"+p.target) {
			p.mu.Lock()
			p.ranges = append(p.ranges, r.Header.Get("Range"))
			fire := p.times > 0
			if fire {
				p.times--
			}
			p.mu.Unlock()
			if fire {
				switch p.mode {
				case "503":
					http.Error(w, "injected", http.StatusServiceUnavailable)
					return
				case "reset":
					cw.cut = p.after
				case "flip":
					cw.flip = p.after
				case "norange":
					r.Header.Del("Range")
				}
			}
		}
		rp.ServeHTTP(cw, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// bigLayerImage pushes an encapsulated image whose biggest layer is
// several MiB of incompressible data, and returns the digest of that layer.
func bigLayerImage(t *testing.T, addr string) (objects.Checksum, string) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "usr/lib/big"), 0o755)
	os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755)
	f, _ := os.Create(filepath.Join(tree, "usr/lib/big/blob"))
	io.CopyN(f, xorshift{}, 6<<20)
	f.Close()
	os.WriteFile(filepath.Join(tree, "usr/bin/x"), []byte("x"), 0o755)
	src := filepath.Join(dir, "src")
	run(t, "ostree", "--repo="+src, "init", "--mode=archive")
	run(t, "ostree", "--repo="+src, "commit", "-b", "os", "--tree=dir="+tree)
	r, _ := repo.Open(src)
	c, _ := r.ResolveRev("os")
	if _, err := Encapsulate(context.Background(), r, c, ImageRef{Registry, addr + "/big:v1"}, EncapsulateOptions{MaxLayers: 4}); err != nil {
		t.Fatal(err)
	}
	im, err := resolve(context.Background(), ImageRef{Registry, addr + "/big:v1"}, Access{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.src.close()
	var big Descriptor
	for _, l := range im.manifest.Layers {
		if l.Size > big.Size {
			big = l
		}
	}
	return c, big.Digest
}

type xorshift struct{}

var seed uint64 = 88172645463325252

func (xorshift) Read(p []byte) (int, error) {
	for i := range p {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		p[i] = byte(seed)
	}
	return len(p), nil
}

func TestPullFaults(t *testing.T) {
	ctx := context.Background()
	registry, _ := startRegistry(t)
	want, big := bigLayerImage(t, registry)
	retryDelay = 0

	t.Run("reset resumes with Range", func(t *testing.T) {
		p := &faultProxy{target: big, mode: "reset", after: 3 << 20, times: 2}
		addr := p.start(t, registry)
		r, _ := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeArchive, repo.InitOptions{})
		res, err := Pull(ctx, r, ImageRef{Registry, addr + "/big:v1"}, PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.BaseCommit != want {
			t.Fatalf("imported %s, want %s", res.BaseCommit, want)
		}
		if len(p.ranges) != 3 || p.ranges[0] != "" || !strings.HasPrefix(p.ranges[1], "bytes=") || !strings.HasPrefix(p.ranges[2], "bytes=") {
			t.Fatalf("requests of the broken layer: %q (want a first GET and two Range resumes)", p.ranges)
		}
		// Resumed, not started over: each resume starts past 0, and the
		// client read the layer about once in all.
		for _, rg := range p.ranges[1:] {
			var off int64
			if _, err := fmt.Sscanf(rg, "bytes=%d-", &off); err != nil || off <= 0 {
				t.Fatalf("resume %q does not continue the download", rg)
			}
		}
		if res.BytesFetched > 7<<20 {
			t.Fatalf("fetched %d bytes for ~6.3 MB of layers", res.BytesFetched)
		}
		run(t, "ostree", "--repo="+r.Path(), "fsck")
	})
	t.Run("503 then success", func(t *testing.T) {
		p := &faultProxy{target: big, mode: "503", times: 2}
		addr := p.start(t, registry)
		r, _ := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
		if _, err := Pull(ctx, r, ImageRef{Registry, addr + "/big:v1"}, PullOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("flipped byte: refused, nothing published, a re-run completes", func(t *testing.T) {
		p := &faultProxy{target: big, mode: "flip", after: 1 << 20, times: 1}
		addr := p.start(t, registry)
		r, _ := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
		_, err := Pull(ctx, r, ImageRef{Registry, addr + "/big:v1"}, PullOptions{Jobs: 1})
		if err == nil || !strings.Contains(err.Error(), "layer "+big) {
			t.Fatalf("flipped layer: %v", err)
		}
		refs, _ := r.ListRefs()
		for _, ref := range refs {
			if strings.Contains(ref.Path, strings.TrimPrefix(big, "sha256:")) || strings.Contains(ref.Path, "image") {
				t.Fatalf("published %s after a corrupt layer", ref.Path)
			}
		}
		res, err := Pull(ctx, r, ImageRef{Registry, addr + "/big:v1"}, PullOptions{})
		if err != nil || res.BaseCommit != want {
			t.Fatalf("re-run: %v", err)
		}
		run(t, "ostree", "--repo="+r.Path(), "fsck")
	})
	t.Run("truncated for good: clear error", func(t *testing.T) {
		p := &faultProxy{target: big, mode: "reset", after: 1000, times: 100}
		addr := p.start(t, registry)
		r, _ := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBareUser, repo.InitOptions{})
		_, err := Pull(ctx, r, ImageRef{Registry, addr + "/big:v1"}, PullOptions{Retries: 2})
		if err == nil || !strings.Contains(err.Error(), "layer "+big) || errors.Is(err, errdefs.ErrCorrupt) {
			t.Fatalf("cut layer: %v", err)
		}
	})
}

// snapshot returns a copy of the Range headers of every GET by path and
// of the body bytes served by path, taken under the proxy's lock (its
// handlers may still be writing).
func (p *faultProxy) snapshot() (map[string][]string, map[string]int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	byPath := map[string][]string{}
	for k, v := range p.byPath {
		byPath[k] = append([]string(nil), v...)
	}
	served := map[string]int64{}
	for k, v := range p.servedB {
		served[k] = v
	}
	return byPath, served
}

// total is the body bytes served in all.
func (p *faultProxy) total() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served
}
