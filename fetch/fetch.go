// Package fetch reads files of a repository published as static files: an
// archive-mode repo under an http://, https:// or file:// base URL.
//
// A Fetcher knows nothing about objects or checksums. It hands out the bytes
// the server sent; verifying them is the caller's job (pull tees every stream
// into a hasher and refuses a mismatch). What the Fetcher guarantees is
// transport hygiene: bounded parallel requests over shared keep-alive
// connections, retries with backoff on transient failures (5xx, 408, 429,
// resets, truncated bodies, stalls), transparent resumption of an interrupted
// body with an HTTP Range request, size caps enforced while reading, a
// low-speed abort, a per-request timeout, and ctx cancellation everywhere.
//
// Errors name the URL (with any password redacted). Two sentinels can be
// tested with errors.Is: ErrNotFound (HTTP 404/410, a missing file://
// file), which is never retried, and ErrTooLarge (a cap was exceeded).
// ErrTooSlow marks an attempt aborted by the low-speed limit.
package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: the server answered 404 or 410, or a file:// file does
	// not exist. Not retried.
	ErrNotFound = errors.New("not found")
	// ErrTooLarge: the resource is, or turned out while reading to be,
	// larger than the cap the caller gave. Not retried.
	ErrTooLarge = errors.New("larger than allowed")
	// ErrTooSlow: an attempt moved fewer than Options.LowSpeedLimit bytes
	// per second for Options.LowSpeedTime. Retried like a reset.
	ErrTooSlow = errors.New("transfer too slow")
	// ErrChanged: a resumed download found the resource changed (its ETag
	// or Last-Modified differ from the first response). Not retried: the
	// caller must start again from offset 0.
	ErrChanged = errors.New("resource changed during download")
)

// Defaults, chosen to match ostree's.
const (
	// DefaultMaxParallel is ostree's _OSTREE_MAX_OUTSTANDING_FETCHER_REQUESTS.
	DefaultMaxParallel = 8
	// DefaultRetries is ostree's default --network-retries.
	DefaultRetries = 5
	// DefaultLowSpeedLimit and DefaultLowSpeedTime are the libcurl backend's
	// CURLOPT_LOW_SPEED_LIMIT / CURLOPT_LOW_SPEED_TIME.
	DefaultLowSpeedLimit = 1000
	DefaultLowSpeedTime  = 30 * time.Second
	// DefaultConnectTimeout bounds dialing and the TLS handshake.
	DefaultConnectTimeout = 30 * time.Second
	// DefaultUserAgent is sent unless Options.UserAgent says otherwise.
	DefaultUserAgent = "strata (libostree-compatible)"
	// DefaultBackoff and DefaultMaxBackoff shape the retry delays.
	DefaultBackoff    = 250 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// Options configures a Fetcher. The zero value is usable: every field has a
// default, documented on the field. The TLS fields mirror ostree's remote
// keys of the same names.
type Options struct {
	// MaxParallel bounds the requests in flight at once across all calls
	// (a Stream holds its slot while fn runs); 0 means DefaultMaxParallel.
	MaxParallel int
	// Retries is how many times one call retries after a transient failure
	// (ostree's n-network-retries); 0 means DefaultRetries, negative means
	// no retries.
	Retries int
	// Backoff is the first retry delay, doubled on each further retry up to
	// MaxBackoff, each delay drawn uniformly from [d/2, d]. A Retry-After
	// header up to MaxBackoff is honoured. 0 means the defaults.
	Backoff, MaxBackoff time.Duration
	// LowSpeedLimit (bytes/s) and LowSpeedTime: an attempt whose transfer
	// rate stays below the limit for LowSpeedTime is aborted with
	// ErrTooSlow (and retried). Time spent waiting for the caller to read
	// does not count. 0 means the defaults; a negative LowSpeedLimit turns
	// the check off.
	LowSpeedLimit int64
	LowSpeedTime  time.Duration
	// Timeout bounds one attempt, from dial to the last byte read; 0 means
	// no bound (the low-speed check still catches stalls). Bound a whole
	// call, retries included, with ctx.
	Timeout time.Duration
	// ConnectTimeout bounds dial + TLS handshake; 0 means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration

	// TLSCAPath is a PEM file of trusted roots used instead of the system
	// pool (tls-ca-path).
	TLSCAPath string
	// TLSClientCertPath and TLSClientKeyPath are a PEM client certificate
	// and key presented to the server (tls-client-cert-path,
	// tls-client-key-path); both or neither.
	TLSClientCertPath, TLSClientKeyPath string
	// TLSPermissive accepts any server certificate (tls-permissive). Off by
	// default; never turn it on without a reason.
	TLSPermissive bool

	// DisableHTTP2 speaks HTTP/1.1 only (ostree's http2=false). By default
	// https:// negotiates HTTP/2 with ALPN.
	DisableHTTP2 bool
	// H2C speaks HTTP/2 only: over cleartext http:// with prior knowledge,
	// and over https:// (no HTTP/1.1 fallback for either).
	H2C bool
	// Proxy is an HTTP proxy URL (the remote's proxy key); "" uses the
	// environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY).
	Proxy string
	// UserAgent replaces DefaultUserAgent.
	UserAgent string
	// Header is added to every request (ostree's --http-header).
	Header http.Header
	// GetMemory bounds the bytes that Get calls hold at once while they
	// receive bodies larger than SmallGet: such a call first reserves its
	// declared size (or its cap, when the size is not declared) and waits
	// while the reservations of the others leave no room, so a hostile
	// server cannot make MaxParallel Gets each fill a buffer. A body larger
	// than GetMemory reserves all of it. 0 means DefaultGetMemory.
	GetMemory int64
}

// DefaultGetMemory is Options.GetMemory's default: two 10 MiB metadata
// objects (ostree's OSTREE_MAX_METADATA_SIZE) and change.
const DefaultGetMemory = 24 << 20

// SmallGet is the body size that Get reads without reserving memory.
const SmallGet = 256 << 10

// Stats counts a Fetcher's traffic since New. Bytes counts body bytes
// received, including bytes discarded when a server ignored a Range request.
type Stats struct {
	Requests int64 // HTTP requests sent (or files opened for file://)
	Bytes    int64 // body bytes received (or read from disk)
	Retries  int64 // attempts repeated after a transient failure
}

// Fetcher fetches paths under one base URL. It is safe for concurrent use;
// all calls share one connection pool and one parallelism bound.
type Fetcher struct {
	base    *url.URL
	dir     string // file:// root, or "" for HTTP
	client  *http.Client
	tr      *http.Transport
	opt     Options
	slots   chan struct{}
	retries int
	monitor *monitor // low-speed checks
	getMem  *semaphore.Weighted

	requests, bytes, retried atomic.Int64
}

// New returns a Fetcher for base, an http://, https:// or file:// URL of a
// repository root. TLS files are read here; a bad one is an error naming it.
func New(base string, o Options) (*Fetcher, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("fetch: base URL %q: %w", base, err)
	}
	if o.MaxParallel <= 0 {
		o.MaxParallel = DefaultMaxParallel
	}
	retries := o.Retries
	switch {
	case retries == 0:
		retries = DefaultRetries
	case retries < 0:
		retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.LowSpeedLimit == 0 {
		o.LowSpeedLimit = DefaultLowSpeedLimit
	}
	if o.LowSpeedTime <= 0 {
		o.LowSpeedTime = DefaultLowSpeedTime
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.GetMemory <= 0 {
		o.GetMemory = DefaultGetMemory
	}
	f := &Fetcher{base: u, opt: o, slots: make(chan struct{}, o.MaxParallel), retries: retries,
		monitor: newMonitor(o.LowSpeedLimit, o.LowSpeedTime), getMem: semaphore.NewWeighted(o.GetMemory)}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("fetch: base URL %s: file URL with host %q", u.Redacted(), u.Host)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("fetch: base URL %s: no path", u.Redacted())
		}
		f.dir = u.Path
		return f, nil
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("fetch: base URL %s: no host", u.Redacted())
		}
	default:
		return nil, fmt.Errorf("fetch: base URL %s: unsupported scheme %q (want http, https or file)", u.Redacted(), u.Scheme)
	}
	tr, err := newTransport(&o)
	if err != nil {
		return nil, err
	}
	f.tr = tr
	// Redirects are followed (ostree does too); headers, Range included,
	// are carried along.
	f.client = &http.Client{Transport: tr}
	return f, nil
}

func newTransport(o *Options) (*http.Transport, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLSCAPath != "" {
		pem, err := os.ReadFile(o.TLSCAPath)
		if err != nil {
			return nil, fmt.Errorf("fetch: tls-ca-path: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("fetch: tls-ca-path %s: no PEM certificate in it", o.TLSCAPath)
		}
		tlsConf.RootCAs = pool
	}
	if (o.TLSClientCertPath == "") != (o.TLSClientKeyPath == "") {
		return nil, errors.New("fetch: tls-client-cert-path and tls-client-key-path go together")
	}
	if o.TLSClientCertPath != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSClientCertPath, o.TLSClientKeyPath)
		if err != nil {
			return nil, fmt.Errorf("fetch: client certificate %s / key %s: %w", o.TLSClientCertPath, o.TLSClientKeyPath, err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	}
	tlsConf.InsecureSkipVerify = o.TLSPermissive

	proxy := http.ProxyFromEnvironment
	if o.Proxy != "" {
		pu, err := url.Parse(o.Proxy)
		if err != nil {
			return nil, fmt.Errorf("fetch: proxy %q: %w", o.Proxy, err)
		}
		proxy = http.ProxyURL(pu)
	}
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	var protos http.Protocols
	switch {
	case o.H2C:
		protos.SetHTTP2(true)
		protos.SetUnencryptedHTTP2(true)
	case o.DisableHTTP2:
		protos.SetHTTP1(true)
	default:
		protos.SetHTTP1(true)
		protos.SetHTTP2(true)
	}
	return &http.Transport{
		Proxy:               proxy,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: o.ConnectTimeout,
		ForceAttemptHTTP2:   !o.DisableHTTP2,
		Protocols:           &protos,
		MaxConnsPerHost:     o.MaxParallel,
		MaxIdleConnsPerHost: o.MaxParallel,
		IdleConnTimeout:     90 * time.Second,
		// Objects are compressed already, and transparent gzip would
		// break Range offsets and byte counts.
		DisableCompression: true,
	}, nil
}

// Close releases idle connections. Calls in flight are not interrupted
// (cancel their ctx for that).
func (f *Fetcher) Close() error {
	if f.tr != nil {
		f.tr.CloseIdleConnections()
	}
	return nil
}

// Stats returns the traffic counters.
func (f *Fetcher) Stats() Stats {
	return Stats{Requests: f.requests.Load(), Bytes: f.bytes.Load(), Retries: f.retried.Load()}
}

// URL returns the URL path resolves to (password redacted), for messages.
func (f *Fetcher) URL(path string) string {
	u, err := f.resolve(path)
	if err != nil {
		return f.base.Redacted() + "/" + path
	}
	return u.Redacted()
}

// resolve joins a repository-relative path ("objects/ab/cd.filez") to the
// base. Absolute paths and ".." are refused: a path never leaves the repo.
func (f *Fetcher) resolve(path string) (*url.URL, error) {
	if path == "" || strings.HasPrefix(path, "/") || strings.ContainsAny(path, "\x00?#\\") {
		return nil, fmt.Errorf("fetch: invalid path %q", path)
	}
	for _, el := range strings.Split(path, "/") {
		if el == "" || el == "." || el == ".." {
			return nil, fmt.Errorf("fetch: invalid path %q", path)
		}
	}
	return f.base.JoinPath(path), nil
}

// Get fetches path whole. A maxSize > 0 caps the body: a larger declared
// length fails before the body is read, a longer body fails as soon as the
// cap is passed, both with ErrTooLarge naming the URL and the cap.
// Transient failures are retried (a broken body resumes with Range). A
// body over SmallGet is received under the Fetcher's memory budget
// (Options.GetMemory).
func (f *Fetcher) Get(ctx context.Context, path string, maxSize int64) ([]byte, error) {
	b, err := f.Open(ctx, path, 0, maxSize)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	n := b.Size()
	// A declared size is allocated at once up to 64 MiB; beyond that (or
	// undeclared) the buffer grows with what actually arrives.
	exact := n >= 0 && n <= 64<<20
	var head []byte
	if n < 0 || n > SmallGet {
		// Reserve what the body can need: its declared size, else its
		// cap. A body that turns out small reserves nothing.
		if !exact {
			head = make([]byte, SmallGet)
			k, err := io.ReadFull(b, head)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return head[:k], nil
			}
			if err != nil {
				return nil, err
			}
		}
		w := n
		if w < 0 {
			w = maxSize
		}
		if w <= 0 || w > f.opt.GetMemory {
			w = f.opt.GetMemory
		}
		if err := f.getMem.Acquire(ctx, w); err != nil {
			return nil, err
		}
		defer f.getMem.Release(w)
	}
	if exact {
		// Declared (and within the cap, or Open would have failed): read
		// exactly that, then make sure nothing follows.
		data := make([]byte, n)
		if _, err := io.ReadFull(b, data); err != nil {
			return nil, err
		}
		if _, err := b.Read(make([]byte, 1)); err != io.EOF {
			if err == nil {
				err = fmt.Errorf("fetch %s: body longer than its declared %d bytes", f.URL(path), n)
			}
			return nil, err
		}
		return data, nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, 2*SmallGet))
	buf.Write(head)
	if _, err := buf.ReadFrom(b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Stream is Open, fn, Close: it calls fn once with the body of path from
// offset on. The error returned is fn's when fn fails (whether or not it
// came from the reader), else the body's final read error if it had one
// (even when fn ignored it), else nil. When Open fails (ErrNotFound, ...),
// fn is not called. fn must not retain the reader, and must not call the
// Fetcher when MaxParallel slots could all be taken (the body holds one).
func (f *Fetcher) Stream(ctx context.Context, path string, offset, maxSize int64, fn func(r io.Reader) error) error {
	b, err := f.Open(ctx, path, offset, maxSize)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := fn(b); err != nil {
		return err
	}
	return b.err()
}

// Open starts fetching path from byte offset on and returns its body,
// which reads exactly those bytes: offset 0 is a whole fetch, offset > 0
// resumes a partial download ("Range: bytes=offset-"; when the server
// ignores Range and sends everything, the first offset bytes are read and
// dropped, so the body still starts at offset). Open returns once the
// response headers are in: ErrNotFound for a missing resource, ErrTooLarge
// when the declared size passes maxSize, ErrChanged when offset is beyond
// the end.
//
// Transient failures in the middle of the body are hidden from the reader:
// the body waits (backoff), asks again from where it stopped, and goes on,
// with If-Range so that a changed resource is ErrChanged, never a splice of
// two versions. Read returns an error only once retries are exhausted, ctx
// is done (ctx stays in use until Close), or a permanent error occurs; the
// error is sticky. A maxSize > 0 caps the resource's total size, offset
// included: reading past it fails with ErrTooLarge.
//
// The body holds one of the MaxParallel slots until Close, which the caller
// must call. A Body is not safe for concurrent use.
func (f *Fetcher) Open(ctx context.Context, path string, offset, maxSize int64) (*Body, error) {
	u, err := f.resolve(path)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("fetch %s: negative offset %d", u.Redacted(), offset)
	}
	if maxSize > 0 && offset > maxSize {
		return nil, fmt.Errorf("fetch %s: offset %d beyond the %d-byte cap: %w", u.Redacted(), offset, maxSize, ErrTooLarge)
	}
	if f.dir != "" {
		return f.openFile(ctx, u, offset, maxSize)
	}
	s := &stream{f: f, ctx: ctx, url: u, name: u.Redacted(), pos: offset, maxSize: maxSize, size: -1}
	if err := s.open(); err != nil {
		return nil, err
	}
	size := int64(-1)
	if s.size >= 0 {
		size = s.size - s.pos
	}
	return &Body{r: s, size: size}, nil
}

// Body is an open download (see Open).
type Body struct {
	r interface {
		io.Reader
		close()
		final() error
	}
	size   int64
	closed bool
}

// Read reads the next bytes of the resource.
func (b *Body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("fetch: read of a closed body")
	}
	return b.r.Read(p)
}

// Size is the number of bytes from the offset to the end as the server
// declared it, or -1 when it did not.
func (b *Body) Size() int64 { return b.size }

// Close ends the download and frees its slot. It always returns nil.
func (b *Body) Close() error {
	if !b.closed {
		b.closed = true
		b.r.close()
	}
	return nil
}

// err is the final read error, if any.
func (b *Body) err() error { return b.r.final() }

// backoff returns the delay before retry number n (1-based).
func (f *Fetcher) backoff(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 && retryAfter <= f.opt.MaxBackoff {
		return retryAfter
	}
	d := f.opt.Backoff
	for i := 1; i < n && d < f.opt.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, f.opt.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// acquire takes a parallelism slot.
func (f *Fetcher) acquire(ctx context.Context) error {
	select {
	case f.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *Fetcher) release() { <-f.slots }

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
