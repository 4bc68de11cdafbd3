package fetch_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-os/strata/fetch"
	fs "github.com/strata-os/strata/internal/faultserver"
)

const bigPath = "objects/ab/cdef.filez"

// TestFaults: every fault ends in a successful retry or a clear error, with
// the retry count asserted, over HTTP/1.1 and HTTP/2.
func TestFaults(t *testing.T) {
	type tc struct {
		name    string
		rule    fs.Rule
		more    []fs.Rule // added after rule
		opt     func(o *fetch.Options)
		offset  int64
		retries int64 // Stats.Retries after the call
		wantErr error // nil: the exact bytes must arrive
		errText string
	}
	once := func(f fs.Fault) fs.Rule { return fs.Rule{Path: bigPath, Times: 1, Fault: f} }
	always := func(f fs.Fault) fs.Rule { return fs.Rule{Path: bigPath, Fault: f} }
	slow := func(o *fetch.Options) {
		o.LowSpeedLimit = 5000
		o.LowSpeedTime = 150 * time.Millisecond
	}
	cases := []tc{
		{name: "500 once", rule: once(fs.Fault{Kind: fs.Status, Status: 500}), retries: 1},
		{name: "502 twice", rule: fs.Rule{Path: bigPath, Times: 2, Fault: fs.Fault{Kind: fs.Status, Status: 502}}, retries: 2},
		{name: "503 always", rule: always(fs.Fault{Kind: fs.Status, Status: 503}), retries: 3, errText: "503 Service Unavailable (after 3 retries)"},
		{name: "429 Retry-After", rule: once(fs.Fault{Kind: fs.Status, Status: 429, RetryAfter: "0"}), retries: 1},
		{name: "408 once", rule: once(fs.Fault{Kind: fs.Status, Status: 408}), retries: 1},
		{name: "403 is final", rule: always(fs.Fault{Kind: fs.Status, Status: 403}), retries: 0, errText: "403 Forbidden"},
		{name: "501 is final", rule: always(fs.Fault{Kind: fs.Status, Status: 501}), retries: 0, errText: "501"},
		{name: "404 is ErrNotFound", rule: always(fs.Fault{Kind: fs.Status, Status: 404}), retries: 0, wantErr: fetch.ErrNotFound},
		{name: "410 is ErrNotFound", rule: always(fs.Fault{Kind: fs.Status, Status: 410}), retries: 0, wantErr: fetch.ErrNotFound},
		{name: "reset mid-body once", rule: once(fs.Fault{Kind: fs.Reset, After: 100 << 10}), retries: 1},
		{name: "reset before the body", rule: once(fs.Fault{Kind: fs.Reset}), retries: 1},
		{name: "reset always", rule: always(fs.Fault{Kind: fs.Reset}), retries: 3, errText: "after 3 retries"},
		{name: "truncated once", rule: once(fs.Fault{Kind: fs.Truncate, After: 5000}), retries: 1},
		{name: "truncated twice, progress each time", rule: fs.Rule{Path: bigPath, Times: 2, Fault: fs.Fault{Kind: fs.Truncate, After: 100 << 10}}, retries: 2},
		{name: "truncated always, no progress", rule: always(fs.Fault{Kind: fs.Truncate}), retries: 3, errText: "after 3 retries"},
		{name: "ignores Range", rule: always(fs.Fault{Kind: fs.IgnoreRange}), offset: 12345, retries: 0},
		{name: "ignores Range on the resume", rule: once(fs.Fault{Kind: fs.Truncate, After: 5000}), more: []fs.Rule{{Path: bigPath, Fault: fs.Fault{Kind: fs.IgnoreRange}}}, retries: 1},
		{name: "stall once", rule: once(fs.Fault{Kind: fs.Stall, After: 1000}), opt: slow, retries: 1},
		{name: "stall always", rule: always(fs.Fault{Kind: fs.Stall}), opt: func(o *fetch.Options) { slow(o); o.Retries = 1 }, retries: 1, wantErr: fetch.ErrTooSlow},
		{name: "trickle below the limit", rule: always(fs.Fault{Kind: fs.Trickle, Rate: 1000}), opt: func(o *fetch.Options) { slow(o); o.Retries = 1 }, retries: 1, wantErr: fetch.ErrTooSlow},
		{name: "trickle above the limit", rule: fs.Rule{Path: "config", Fault: fs.Fault{Kind: fs.Trickle, Rate: 1000}}, opt: func(o *fetch.Options) { o.LowSpeedLimit = 100; o.LowSpeedTime = 100 * time.Millisecond }},
		{name: "per-request timeout", rule: always(fs.Fault{Kind: fs.Stall}), opt: func(o *fetch.Options) {
			o.Timeout = 100 * time.Millisecond
			o.LowSpeedLimit = -1
			o.Retries = 2
		}, retries: 2, errText: "request timed out (after 2 retries)"},
		{name: "endless body hits the cap", rule: always(fs.Fault{Kind: fs.Endless}), retries: 0, wantErr: fetch.ErrTooLarge},
	}
	for _, proto := range []string{"http1", "h2c"} {
		for _, c := range cases {
			t.Run(proto+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				fx := newFixture(t)
				s := fs.New(t, fx.dir, fs.Options{HTTP2: proto == "h2c"})
				s.Add(c.rule)
				s.Add(c.more...)
				o := fast()
				o.H2C = proto == "h2c"
				if c.opt != nil {
					c.opt(&o)
				}
				f := newFetcher(t, s.URL, o)
				path := bigPath
				if c.rule.Path != "" {
					path = c.rule.Path
				}
				want := fx.files[path][c.offset:]
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				got, err := readStream(ctx, f, path, c.offset, 1<<20)
				took := time.Since(start)
				st := f.Stats()
				if st.Retries != c.retries {
					t.Errorf("%d retries, want %d (err %v)", st.Retries, c.retries, err)
				}
				if st.Requests != c.retries+1 || int(st.Requests) != s.Count(path) {
					t.Errorf("%d requests, server saw %d, want %d", st.Requests, s.Count(path), c.retries+1)
				}
				if took > 5*time.Second {
					t.Errorf("took %v", took)
				}
				switch {
				case c.wantErr == nil && c.errText == "":
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("got %d bytes, %v; want %d exact bytes", len(got), err, len(want))
					}
				default:
					if err == nil {
						t.Fatalf("no error; want one")
					}
					if c.wantErr != nil && !errors.Is(err, c.wantErr) {
						t.Errorf("error %v; want %v", err, c.wantErr)
					}
					if !strings.Contains(err.Error(), c.errText) || !strings.Contains(err.Error(), s.URL+"/"+path) {
						t.Errorf("error %q; want it to contain %q and the URL", err, c.errText)
					}
					if n := min(len(got), len(want)); !bytes.Equal(got[:n], want[:n]) {
						t.Errorf("the %d bytes before the error are wrong", len(got))
					}
				}
				// A resumed request asks for the bytes it lacks.
				reqs := s.Requests()
				for i, r := range reqs {
					if i == 0 && c.offset == 0 && r.Range != "" {
						t.Errorf("first request has Range %q", r.Range)
					}
				}
				if proto == "http1" && c.name == "truncated once" && (len(reqs) != 2 || reqs[1].Range != "bytes=5000-") {
					t.Errorf("resume after a truncation at 5000: requests %+v", reqs)
				}
			})
		}
	}
}

// TestFlip: the Fetcher hands out what the server sent; catching a flipped
// bit is the caller's checksum's job. The next fetch is clean.
func TestFlip(t *testing.T) {
	fx := newFixture(t)
	s := fs.New(t, fx.dir, fs.Options{})
	s.Add(fs.Rule{Path: bigPath, Times: 1, Fault: fs.Fault{Kind: fs.Flip, After: 777}})
	f := newFetcher(t, s.URL, fast())
	want := fx.files[bigPath]
	got, err := f.Get(context.Background(), bigPath, 0)
	if err != nil || len(got) != len(want) || got[777] != want[777]^1 || !bytes.Equal(got[778:], want[778:]) {
		t.Fatalf("flipped fetch: %d bytes, %v", len(got), err)
	}
	got, err = f.Get(context.Background(), bigPath, 0)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("second fetch: %d bytes, %v", len(got), err)
	}
}

// TestCaps: a declared length over the cap fails before the body is read, a
// body that passes it fails as soon as it does; both name the URL and cap.
func TestCaps(t *testing.T) {
	fx := newFixture(t)
	s := fs.New(t, fx.dir, fs.Options{})
	for _, base := range []string{s.URL, "file://" + fx.dir} {
		f := newFetcher(t, base, fast())
		_, err := f.Get(context.Background(), bigPath, 1000)
		if !errors.Is(err, fetch.ErrTooLarge) || !strings.Contains(err.Error(), "1000") || !strings.Contains(err.Error(), bigPath) {
			t.Errorf("%s: Get over the cap: %v", base, err)
		}
		if f.Stats().Retries != 0 {
			t.Errorf("%s: a cap error was retried", base)
		}
		n := int64(len(fx.files[bigPath]))
		if got, err := f.Get(context.Background(), bigPath, n); err != nil || int64(len(got)) != n {
			t.Errorf("%s: Get at exactly the cap: %d bytes, %v", base, len(got), err)
		}
		// Stream caps the total size, offset included.
		if _, err := readStream(context.Background(), f, bigPath, 10, n-1); !errors.Is(err, fetch.ErrTooLarge) {
			t.Errorf("%s: Stream over the cap: %v", base, err)
		}
	}
	// Without a Content-Length the cap is enforced while reading.
	s.Add(fs.Rule{Path: "config", Fault: fs.Fault{Kind: fs.Endless}})
	f := newFetcher(t, s.URL, fast())
	got, err := f.Get(context.Background(), "config", 4096)
	if !errors.Is(err, fetch.ErrTooLarge) || !strings.Contains(err.Error(), "4096") || got != nil {
		t.Errorf("endless body: %d bytes, %v", len(got), err)
	}
	if b := f.Stats().Bytes; b > 4096+64<<10 {
		t.Errorf("read %d bytes of an endless body capped at 4096", b)
	}
}

// TestCancel: a cancelled ctx stops a stalled body, a backoff wait and a
// wait for a parallelism slot promptly, with an error that says so.
func TestCancel(t *testing.T) {
	fx := newFixture(t)
	s := fs.New(t, fx.dir, fs.Options{})
	s.Add(fs.Rule{Path: bigPath, Fault: fs.Fault{Kind: fs.Stall, After: 1000}})
	s.Add(fs.Rule{Path: "config", Fault: fs.Fault{Kind: fs.Status, Status: 503}})
	o := fast()
	o.Backoff, o.MaxBackoff = time.Minute, time.Minute
	o.MaxParallel = 1
	f := newFetcher(t, s.URL, o)

	check := func(name string, run func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		err := run(ctx)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s: took %v after cancel", name, took)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled", name, err)
		}
	}
	check("stalled body", func(ctx context.Context) error {
		_, err := readStream(ctx, f, bigPath, 0, 0)
		return err
	})
	check("backoff", func(ctx context.Context) error {
		_, err := f.Get(ctx, "config", 100)
		return err
	})
	check("slot", func(ctx context.Context) error {
		// Hold the only slot in a Stream whose fn waits, then ask again.
		held := make(chan struct{})
		release := make(chan struct{})
		go f.Stream(context.Background(), "refs/heads/main", 0, 0, func(io.Reader) error {
			close(held)
			<-release
			return nil
		})
		<-held
		defer close(release)
		_, err := f.Get(ctx, "refs/heads/main", 100)
		return err
	})
	if _, err := f.Get(canceled(), "refs/heads/main", 100); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled ctx: %v", err)
	}
	ff := newFetcher(t, "file://"+fx.dir, fast())
	if _, err := ff.Get(canceled(), "refs/heads/main", 100); !errors.Is(err, context.Canceled) {
		t.Errorf("file Get with a cancelled ctx: %v", err)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestParallelBound: no more than MaxParallel requests are in flight.
func TestParallelBound(t *testing.T) {
	fx := newFixture(t)
	s := fs.New(t, fx.dir, fs.Options{})
	o := fast()
	o.MaxParallel = 3
	f := newFetcher(t, s.URL, o)
	var cur, peak atomic.Int32
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			err := f.Stream(context.Background(), "config", 0, 0, func(r io.Reader) error {
				n := cur.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
				cur.Add(-1)
				_, err := io.Copy(io.Discard, r)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p != 3 {
		t.Errorf("peak of %d requests in flight, want 3", p)
	}
}

// TestResumeChanged: a resume that finds the resource changed (If-Range
// fails, the server sends the new whole) is ErrChanged, not a splice.
func TestResumeChanged(t *testing.T) {
	fx := newFixture(t)
	s := fs.New(t, fx.dir, fs.Options{})
	s.Add(fs.Rule{Path: bigPath, Times: 1, Fault: fs.Fault{Kind: fs.Truncate, After: 50 << 10}})
	f := newFetcher(t, s.URL, fast())
	err := f.Stream(context.Background(), bigPath, 0, 0, func(r io.Reader) error {
		buf := make([]byte, 1000)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		p := fx.dir + "/" + bigPath
		changed := bytes.Repeat([]byte{'x'}, len(fx.files[bigPath]))
		if err := writeFileTime(p, changed, time.Now().Add(time.Hour)); err != nil {
			return err
		}
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if !errors.Is(err, fetch.ErrChanged) {
		t.Fatalf("%v, want ErrChanged", err)
	}
	reqs := s.Requests()
	if len(reqs) != 2 || reqs[1].Header.Get("If-Range") == "" {
		t.Errorf("requests %+v: want a resume with If-Range", reqs)
	}
}

func writeFileTime(p string, data []byte, mtime time.Time) error {
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	return os.Chtimes(p, mtime, mtime)
}

// TestInterruptAndResume: a download cut at a random point (ctx cancelled,
// as by Ctrl-C) is finished by a later Open from the byte count it had,
// and the pieces make the exact file.
func TestInterruptAndResume(t *testing.T) {
	fx := newFixture(t)
	want := fx.files[bigPath]
	s := fs.New(t, fx.dir, fs.Options{HTTP2: true})
	for _, base := range []string{s.URL, "file://" + fx.dir} {
		for _, h2c := range []bool{false, true} {
			o := fast()
			o.H2C = h2c && strings.HasPrefix(base, "http:")
			f := newFetcher(t, base, o)
			rng := rand.New(rand.NewPCG(3, uint64(len(base))))
			for range 5 {
				cut := rng.Int64N(int64(len(want)))
				ctx, cancel := context.WithCancel(context.Background())
				var part []byte
				err := f.Stream(ctx, bigPath, 0, 0, func(r io.Reader) error {
					buf := make([]byte, 1000)
					for int64(len(part)) < cut {
						n, err := r.Read(buf[:min(int64(len(buf)), cut-int64(len(part)))])
						part = append(part, buf[:n]...)
						if err != nil {
							return err
						}
					}
					cancel()
					_, err := io.Copy(io.Discard, r)
					return err
				})
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("%s: interrupted download: %v", base, err)
				}
				rest, err := readStream(context.Background(), f, bigPath, int64(len(part)), int64(len(want)))
				if err != nil || !bytes.Equal(append(part, rest...), want) {
					t.Fatalf("%s: cut at %d, resumed from %d: %d more bytes, %v", base, cut, len(part), len(rest), err)
				}
			}
		}
	}
}

// TestServerGone: a refused connection is retried, then reported.
func TestServerGone(t *testing.T) {
	fx := newFixture(t)
	s := fs.New(t, fx.dir, fs.Options{})
	s.Close()
	f := newFetcher(t, s.URL, fast())
	_, err := f.Get(context.Background(), "config", 1000)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "after 3 retries") {
		t.Errorf("%v", err)
	}
}
