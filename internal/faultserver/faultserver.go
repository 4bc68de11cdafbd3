// Package faultserver is an HTTP test server over a directory that misbehaves
// on request: status errors, connection resets and truncated bodies in the
// middle of a response, flipped bits, a slow trickle, a stall, a body that
// never ends, Range ignored. Tests of anything that downloads (fetch, pull)
// use it to show that every fault ends in a clear error or a successful
// retry, never in corrupt data.
//
// Faults are chosen by rules, deterministically: a rule matches a path (or
// every path) and counts the requests it matches, 1, 2, 3, ...; it fires on
// the requests numbered Skip+1 .. Skip+Times (every matching request after
// the first Skip when Times is 0). Every rule that matches a request counts
// it; the first rule (in the order added) whose window includes it fires.
// A request that no rule fires on is served correctly, with single Range
// requests ("bytes=a-", "bytes=a-b", "bytes=-n") and If-Range honoured.
//
// The server serves the directory's regular files at "/" + their relative
// path; anything else is a 404. Over HTTP/1.1 a Reset fault is a TCP RST
// (SO_LINGER 0) and a Truncate fault a clean close (FIN) before the declared
// Content-Length; over HTTP/2 both reset the stream (RST_STREAM), the only
// way HTTP/2 can end a body early.
package faultserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Kind is a kind of fault.
type Kind int

const (
	// None serves the request correctly (useful to make a window in the
	// count: a rule with None that fires shadows later rules).
	None Kind = iota
	// Status answers Fault.Status (500, 503, 429, 404, ...) with a short
	// body and Fault.RetryAfter as Retry-After when set.
	Status
	// Reset sends the headers and Fault.After body bytes, then resets the
	// connection (HTTP/1.1: TCP RST; HTTP/2: RST_STREAM).
	Reset
	// Truncate declares the right Content-Length, sends Fault.After body
	// bytes and closes the connection (HTTP/2: RST_STREAM).
	Truncate
	// Flip serves the right length with the lowest bit of the body byte at
	// resource offset Fault.After inverted (no effect if the response does
	// not include that offset).
	Flip
	// Trickle sends Fault.After bytes at full speed, then Fault.Rate bytes
	// per second (default 100) until the body is done or the client leaves.
	Trickle
	// Stall sends the headers and Fault.After body bytes, then nothing,
	// holding the connection open until the client leaves.
	Stall
	// Endless sends the resource without a Content-Length and then zero
	// bytes forever, until the client leaves.
	Endless
	// IgnoreRange answers 200 with the whole resource even when a Range
	// was asked for (what some servers and proxies do).
	IgnoreRange
)

var kindNames = [...]string{"none", "status", "reset", "truncate", "flip", "trickle", "stall", "endless", "ignore-range"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Fault is what happens to a request a rule fires on.
type Fault struct {
	Kind       Kind
	Status     int    // Status: the code
	RetryAfter string // Status: Retry-After header value, if any
	After      int64  // Reset, Truncate, Stall, Trickle: body bytes sent first; Flip: resource offset
	Rate       int    // Trickle: bytes per second (default 100)
	// Delay holds the response back (before its headers) for this long,
	// or until the client leaves; with Kind None it makes a slow server.
	Delay time.Duration
}

// Rule selects requests for a fault. See the package comment for counting.
type Rule struct {
	// Path is the request path relative to the root, without a leading
	// slash ("objects/ab/cdef.filez"); "" matches every request.
	Path  string
	Skip  int // matching requests let through before the window
	Times int // requests faulted; 0 means every one after Skip
	Fault Fault
}

// Options configures a Server.
type Options struct {
	// TLS serves https with a self-signed certificate (see CAFile).
	TLS bool
	// HTTP2 offers HTTP/2: by ALPN with TLS, as h2c (prior knowledge)
	// beside HTTP/1.1 without.
	HTTP2 bool
	// ClientCAs, with TLS, makes the server require a client certificate
	// signed by one of these.
	ClientCAs *x509.CertPool
}

// Request is one served request, for assertions.
type Request struct {
	Path   string      // relative path, as in Rule.Path
	Range  string      // the Range header, if any
	Header http.Header // all request headers
	Proto  string      // "HTTP/1.1", "HTTP/2.0"
	Fault  Kind        // the fault that fired (None if served correctly)
	Code   int         // the status sent
	Bytes  int64       // body bytes written
}

// Server is a running fault-injecting server. Its methods are safe for
// concurrent use.
type Server struct {
	// URL is the base URL of the served root, without a trailing slash.
	URL string

	root   string
	srv    *httptest.Server
	done   chan struct{}
	caFile string

	mu    sync.Mutex
	rules []*rule
	log   []Request
	bytes int64
	conns int
}

type rule struct {
	Rule
	seen int
}

// New serves root until the test ends (Close is registered with
// tb.Cleanup; calling it earlier is fine).
func New(tb testing.TB, root string, o Options) *Server {
	tb.Helper()
	s := &Server{root: root, done: make(chan struct{})}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	if o.TLS {
		s.srv.EnableHTTP2 = o.HTTP2
		if o.ClientCAs != nil {
			s.srv.TLS = &tls.Config{ClientCAs: o.ClientCAs, ClientAuth: tls.RequireAndVerifyClientCert}
		}
		s.srv.StartTLS()
		der := s.srv.Certificate().Raw
		s.caFile = filepath.Join(tb.TempDir(), "faultserver-ca.pem")
		if err := os.WriteFile(s.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			tb.Fatal(err)
		}
	} else {
		if o.HTTP2 {
			var p http.Protocols
			p.SetHTTP1(true)
			p.SetUnencryptedHTTP2(true)
			s.srv.Config.Protocols = &p
		}
		s.srv.Start()
	}
	s.URL = s.srv.URL
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server, ending stalled and endless responses first.
func (s *Server) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// CAFile is a PEM file holding the certificate of a TLS server (for
// fetch.Options.TLSCAPath); "" without TLS.
func (s *Server) CAFile() string { return s.caFile }

// Certificate is the TLS server's certificate, nil without TLS.
func (s *Server) Certificate() *x509.Certificate {
	if s.caFile == "" {
		return nil
	}
	return s.srv.Certificate()
}

// Add appends rules.
func (s *Server) Add(rules ...Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rules {
		s.rules = append(s.rules, &rule{Rule: r})
	}
}

// Reset drops all rules and zeroes the log and counters.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules, s.log, s.bytes, s.conns = nil, nil, 0, 0
}

// Requests returns the log of requests served so far, in order of arrival.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Count returns how many requests for path ("" for all) were served.
func (s *Server) Count(p string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.log {
		if p == "" || r.Path == p {
			n++
		}
	}
	return n
}

// Conns returns how many connections clients opened so far (keep-alive
// and HTTP/2 multiplexing keep it low).
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Bytes returns the body bytes written so far.
func (s *Server) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// pick counts the request against every matching rule and returns the
// fault to apply and its index in the log.
func (s *Server) pick(req Request) (Fault, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := Fault{}
	fired := false
	for _, r := range s.rules {
		if r.Path != "" && r.Path != req.Path {
			continue
		}
		r.seen++
		if !fired && r.seen > r.Skip && (r.Times == 0 || r.seen <= r.Skip+r.Times) {
			f, fired = r.Fault, true
		}
	}
	req.Fault = f.Kind
	s.log = append(s.log, req)
	return f, len(s.log) - 1
}

func (s *Server) record(i, code int, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log[i].Code = code
	s.log[i].Bytes += n
	s.bytes += n
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rel := strings.TrimPrefix(r.URL.Path, "/")
	f, i := s.pick(Request{Path: rel, Range: r.Header.Get("Range"), Header: r.Header.Clone(), Proto: r.Proto})
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.done:
			t.Stop()
			return
		}
	}
	if f.Kind == Status {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		s.record(i, f.Status, 0)
		http.Error(w, http.StatusText(f.Status), f.Status)
		return
	}
	clean := path.Clean("/" + rel)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.record(i, http.StatusMethodNotAllowed, 0)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if clean != "/"+rel || rel == "" {
		s.record(i, http.StatusNotFound, 0)
		http.NotFound(w, r)
		return
	}
	data, mod, err := s.read(filepath.Join(s.root, filepath.FromSlash(rel)))
	if err != nil {
		s.record(i, http.StatusNotFound, 0)
		http.NotFound(w, r)
		return
	}
	size := int64(len(data))
	etag := fmt.Sprintf(`"%x-%x"`, size, mod.UnixNano())
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")

	start, end, code := int64(0), size, http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" && f.Kind != IgnoreRange && f.Kind != Endless {
		if ir := r.Header.Get("If-Range"); ir == "" || ir == etag || ir == h.Get("Last-Modified") {
			a, b, ok := parseRange(rg, size)
			switch {
			case !ok && a < 0:
				// Unparsable or multi-range: serve it all.
			case !ok:
				h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
				s.record(i, http.StatusRequestedRangeNotSatisfiable, 0)
				http.Error(w, "range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
				return
			default:
				start, end, code = a, b, http.StatusPartialContent
				h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b-1, size))
			}
		}
	}
	body := data[start:end]
	if f.Kind == Flip && f.After >= start && f.After < end {
		body = append([]byte(nil), body...)
		body[f.After-start] ^= 1
	}
	if f.Kind != Endless {
		h.Set("Content-Length", strconv.FormatInt(int64(len(body)), 10))
	}
	if r.Method == http.MethodHead {
		s.record(i, code, 0)
		w.WriteHeader(code)
		return
	}
	switch f.Kind {
	case Reset, Truncate, Stall, Trickle:
		first := min(max(f.After, 0), int64(len(body)))
		if f.Kind == Reset && r.ProtoMajor == 1 {
			s.resetConn(w, i, code, body[:first])
			return
		}
		w.WriteHeader(code)
		s.write(w, i, code, body[:first])
		flush(w)
		switch f.Kind {
		case Reset, Truncate:
			// ErrAbortHandler: HTTP/1.1 closes the connection, HTTP/2
			// resets the stream; the server does not log it.
			panic(http.ErrAbortHandler)
		case Stall:
			select {
			case <-r.Context().Done():
			case <-s.done:
			}
			return
		case Trickle:
			s.trickle(w, r, i, code, body[first:], f.Rate)
			return
		}
	case Endless:
		w.WriteHeader(code)
		if !s.write(w, i, code, body) {
			return
		}
		zeros := make([]byte, 32<<10)
		for {
			select {
			case <-r.Context().Done():
				return
			case <-s.done:
				return
			default:
			}
			if !s.write(w, i, code, zeros) {
				return
			}
		}
	}
	w.WriteHeader(code)
	s.write(w, i, code, body)
}

// write writes p, records it, and reports whether the client is still there.
func (s *Server) write(w http.ResponseWriter, i, code int, p []byte) bool {
	n, err := w.Write(p)
	s.record(i, code, int64(n))
	return err == nil
}

func flush(w http.ResponseWriter) {
	_ = http.NewResponseController(w).Flush()
}

func (s *Server) trickle(w http.ResponseWriter, r *http.Request, i, code int, rest []byte, rate int) {
	if rate <= 0 {
		rate = 100
	}
	const tick = 20 * time.Millisecond
	per := max(rate*int(tick)/int(time.Second), 1)
	t := time.NewTicker(time.Duration(int64(time.Second) * int64(per) / int64(rate)))
	defer t.Stop()
	for len(rest) > 0 {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-t.C:
		}
		n := min(per, len(rest))
		if !s.write(w, i, code, rest[:n]) {
			return
		}
		flush(w)
		rest = rest[n:]
	}
}

// resetConn answers over a hijacked HTTP/1.1 connection: headers and head,
// then a TCP reset.
func (s *Server) resetConn(w http.ResponseWriter, i, code int, head []byte) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	_ = w.Header().Write(buf)
	buf.WriteString("\r\n")
	n, _ := buf.Write(head)
	_ = buf.Flush()
	s.record(i, code, int64(n))
	if tc, ok := conn.(*net.TCPConn); ok {
		// Give the client a moment to take the bytes before the RST (a
		// RST can make the kernel drop data not yet read).
		time.Sleep(5 * time.Millisecond)
		_ = tc.SetLinger(0)
	}
}

func (s *Server) read(p string) ([]byte, time.Time, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !st.Mode().IsRegular() {
		return nil, time.Time{}, fmt.Errorf("%s: not a regular file", p)
	}
	data, err := os.ReadFile(p)
	return data, st.ModTime(), err
}

// parseRange parses one byte range against size. ok is false with a < 0
// when the header is to be ignored (bad syntax, several ranges), and with
// a >= 0 when it cannot be satisfied.
func parseRange(v string, size int64) (a, b int64, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return -1, 0, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return -1, 0, false
	}
	if first == "" { // suffix: the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return -1, 0, false
		}
		if n == 0 {
			return 0, 0, false
		}
		return max(size-n, 0), size, true
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return -1, 0, false
	}
	b = size
	if last != "" {
		e, err := strconv.ParseInt(last, 10, 64)
		if err != nil || e < a {
			return -1, 0, false
		}
		b = min(e+1, size)
	}
	if a >= size {
		return 0, 0, false
	}
	return a, b, true
}
