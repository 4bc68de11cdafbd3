package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// errAttemptTimeout is the cause of an attempt cancelled by Options.Timeout.
var errAttemptTimeout = errors.New("request timed out")

// statusError is a non-2xx answer.
type statusError struct {
	code       int
	status     string
	retryAfter time.Duration
}

func (e *statusError) Error() string { return "HTTP " + e.status }

// retryable reports whether a failed attempt may be repeated. Everything
// from the network is, except certificate problems (they do not heal) and
// the sentinels the caller has to act on.
func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		c := se.code
		return c == http.StatusRequestTimeout || c == http.StatusTooManyRequests ||
			(c >= 500 && c != http.StatusNotImplemented && c != http.StatusHTTPVersionNotSupported)
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrChanged) ||
		errors.Is(err, errProtocol) || errors.Is(err, context.Canceled) && !errors.Is(err, ErrTooSlow) {
		return false
	}
	var (
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		certInvalid x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		recordErr   tls.RecordHeaderError
		urlErr      *url.Error
	)
	if errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &certInvalid) ||
		errors.As(err, &verifyErr) || errors.As(err, &recordErr) {
		return false
	}
	if errors.As(err, &urlErr) {
		msg := urlErr.Err.Error()
		if strings.Contains(msg, "unsupported protocol scheme") || strings.Contains(msg, "HTTP response to HTTPS client") {
			return false
		}
	}
	return true
}

// errProtocol marks a server answer that makes no sense (a 206 for another
// range, a bad Content-Range); retrying would not help.
var errProtocol = errors.New("protocol error")

// stream is the reader Stream hands to fn: one logical download made of as
// many HTTP attempts as it takes.
type stream struct {
	f       *Fetcher
	ctx     context.Context
	url     *url.URL
	name    string
	pos     int64 // offset of the next byte fn gets
	maxSize int64
	size    int64 // total size of the resource, -1 if unknown
	eof     bool

	etag, lastModified string // validators of the first response

	retries    int
	retryAfter time.Duration
	pending    error // transient failure to retry before the next attempt
	err        error // final error, sticky

	// The attempt in flight.
	body   io.ReadCloser
	cancel context.CancelCauseFunc
	actx   context.Context
	timer  *time.Timer
	wd     *watchdog
	held   bool
}

func (s *stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if s.err != nil {
			return 0, s.err
		}
		if err := s.ctx.Err(); err != nil {
			// Bytes the transport buffered are not handed out after a
			// cancel.
			return 0, s.fail(err)
		}
		if s.body == nil {
			if s.eof {
				return 0, io.EOF
			}
			if err := s.open(); err != nil {
				return 0, err
			}
			continue
		}
		if s.maxSize > 0 && int64(len(p)) > s.maxSize-s.pos+1 {
			p = p[:s.maxSize-s.pos+1] // one byte past the cap shows it is passed
		}
		n, err := s.read(p)
		s.pos += int64(n)
		if s.maxSize > 0 && s.pos > s.maxSize {
			over := s.pos - s.maxSize
			s.pos = s.maxSize
			return n - int(over), s.fail(fmt.Errorf("more than %d bytes: %w", s.maxSize, ErrTooLarge))
		}
		switch {
		case err == io.EOF && s.size >= 0 && s.pos < s.size:
			err = fmt.Errorf("body ended at byte %d of %d: %w", s.pos, s.size, io.ErrUnexpectedEOF)
		case err == io.EOF:
			s.eof = true
			s.endAttempt()
			return n, io.EOF
		}
		if err != nil {
			err = s.cause(err)
			s.endAttempt()
			if s.ctx.Err() != nil || !retryable(err) {
				return n, s.fail(err)
			}
			s.pending = err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// fail records err as the final error, wrapped with the URL.
func (s *stream) fail(err error) error {
	s.endAttempt()
	if cerr := s.ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = cerr
	}
	if s.retries > 0 {
		s.err = fmt.Errorf("fetch %s: %w (after %d retries)", s.name, err, s.retries)
	} else {
		s.err = fmt.Errorf("fetch %s: %w", s.name, err)
	}
	return s.err
}

// cause replaces the transport's error by the reason the attempt was
// cancelled, when it was cancelled by us.
func (s *stream) cause(err error) error {
	if s.actx != nil {
		if c := context.Cause(s.actx); c == ErrTooSlow || c == errAttemptTimeout {
			return c
		}
	}
	return err
}

// open starts an attempt at s.pos, retrying transient failures.
func (s *stream) open() error {
	for {
		if s.pending != nil {
			if s.retries >= s.f.retries {
				return s.fail(s.pending)
			}
			s.retries++
			s.f.retried.Add(1)
			if err := sleep(s.ctx, s.f.backoff(s.retries, s.retryAfter)); err != nil {
				return s.fail(err)
			}
			s.pending, s.retryAfter = nil, 0
		}
		err := s.attempt()
		if err == nil {
			return nil
		}
		err = s.cause(err)
		s.endAttempt()
		if s.ctx.Err() != nil || !retryable(err) {
			return s.fail(err)
		}
		var se *statusError
		if errors.As(err, &se) {
			s.retryAfter = se.retryAfter
		}
		s.pending = err
	}
}

// attempt sends one request for the bytes from s.pos on. On success s.body
// is positioned at s.pos (or s.eof is set).
func (s *stream) attempt() error {
	if err := s.f.acquire(s.ctx); err != nil {
		return err
	}
	s.held = true
	s.actx, s.cancel = context.WithCancelCause(s.ctx)
	if d := s.f.opt.Timeout; d > 0 {
		cancel := s.cancel
		s.timer = time.AfterFunc(d, func() { cancel(errAttemptTimeout) })
	}
	if s.f.opt.LowSpeedLimit > 0 {
		s.wd = s.f.monitor.startWatchdog(s.cancel)
	}
	req, err := http.NewRequestWithContext(s.actx, http.MethodGet, s.url.String(), nil)
	if err != nil {
		return err
	}
	for k, vs := range s.f.opt.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("User-Agent", s.f.opt.UserAgent)
	if s.pos > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(s.pos, 10)+"-")
		if s.etag != "" && !strings.HasPrefix(s.etag, "W/") {
			req.Header.Set("If-Range", s.etag)
		} else if s.lastModified != "" {
			req.Header.Set("If-Range", s.lastModified)
		}
	}
	s.f.requests.Add(1)
	s.wd.enter()
	resp, err := s.f.client.Do(req)
	s.wd.leave(0)
	if err != nil {
		return err
	}
	s.body = resp.Body
	first := s.etag == "" && s.lastModified == ""
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")

	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		if !first && (etag != s.etag || lm != s.lastModified) {
			return ErrChanged
		}
		if err := s.setSize(resp.ContentLength); err != nil {
			return err
		}
		if s.pos > 0 {
			// The server ignored Range: read up to where we were.
			if _, err := io.CopyN(io.Discard, readerFunc(s.read), s.pos); err != nil {
				if err == io.EOF {
					err = fmt.Errorf("body ended before offset %d: %w", s.pos, io.ErrUnexpectedEOF)
				}
				return err
			}
		}
	case code == http.StatusPartialContent:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return err
		}
		if start != s.pos {
			return fmt.Errorf("%w: asked for bytes from %d, got a range from %d", errProtocol, s.pos, start)
		}
		if total < 0 && resp.ContentLength >= 0 {
			total = start + resp.ContentLength
		}
		if err := s.setSize(total); err != nil {
			return err
		}
	case code == http.StatusRequestedRangeNotSatisfiable && s.pos > 0:
		// "bytes */N": the resource has N bytes; N == pos means we have all.
		_, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err == nil && total == s.pos {
			s.endAttempt()
			s.size, s.eof = total, true
			return nil
		}
		return fmt.Errorf("%w: offset %d is beyond the end (%s)", ErrChanged, s.pos, resp.Header.Get("Content-Range"))
	case code == http.StatusNotFound || code == http.StatusGone:
		drain(resp.Body)
		return fmt.Errorf("HTTP %s: %w", resp.Status, ErrNotFound)
	default:
		drain(resp.Body)
		return &statusError{code: code, status: resp.Status, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	}
	if first {
		s.etag, s.lastModified = etag, lm
	}
	return nil
}

// setSize records the resource's total size n (-1: unknown) and checks it
// against the cap and against what an earlier attempt said.
func (s *stream) setSize(n int64) error {
	if n < 0 {
		return nil
	}
	if s.maxSize > 0 && n > s.maxSize {
		return fmt.Errorf("%d bytes, more than %d: %w", n, s.maxSize, ErrTooLarge)
	}
	if s.size >= 0 && n != s.size {
		return fmt.Errorf("%w: %d bytes, then %d", ErrChanged, s.size, n)
	}
	s.size = n
	return nil
}

// read reads the current body, counting bytes and time spent waiting.
func (s *stream) read(p []byte) (int, error) {
	s.wd.enter()
	n, err := s.body.Read(p)
	s.wd.leave(n)
	s.f.bytes.Add(int64(n))
	return n, err
}

// endAttempt closes the attempt in flight, if any, and frees its slot.
func (s *stream) endAttempt() {
	if s.body != nil {
		s.body.Close()
		s.body = nil
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.wd.stop()
	s.wd = nil
	if s.cancel != nil {
		s.cancel(context.Canceled)
		s.cancel, s.actx = nil, nil
	}
	if s.held {
		s.held = false
		s.f.release()
	}
}

func (s *stream) close()       { s.endAttempt() }
func (s *stream) final() error { return s.err }

// drain reads a little of an error body so its connection can be reused.
func drain(r io.Reader) { _, _ = io.CopyN(io.Discard, r, 4<<10) }

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// parseContentRange parses "bytes a-b/n", "bytes a-b/*" and "bytes */n",
// returning a (-1 for "*") and n (-1 for "*").
func parseContentRange(v string) (start, total int64, err error) {
	bad := func() (int64, int64, error) {
		return 0, 0, fmt.Errorf("%w: bad Content-Range %q", errProtocol, v)
	}
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return bad()
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return bad()
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total < 0 {
			return bad()
		}
	}
	if rng == "*" {
		return -1, total, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return bad()
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start || (total >= 0 && end >= total) {
		return bad()
	}
	return start, total, nil
}

// parseRetryAfter reads a Retry-After header (seconds or an HTTP date).
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// watchdog aborts an attempt whose rate stays below limit bytes/s over a
// window of time spent waiting for the network: time the caller spends
// between reads is not counted, so a slow consumer is not taken for a slow
// server. A nil *watchdog does nothing. Its checks run on the Fetcher's
// monitor goroutine, every window/8 (5 ms to 1 s).
type watchdog struct {
	m      *monitor
	cancel context.CancelCauseFunc
	start  time.Time
	// Clock readings are nanoseconds since start.
	waitStart atomic.Int64 // when the current wait began, or -1
	waited    atomic.Int64 // total of the finished waits
	got       atomic.Int64 // bytes received
	samples   []sample     // the monitor's, of the last window
}

type sample struct{ wait, got int64 }

func (m *monitor) startWatchdog(cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{m: m, cancel: cancel, start: time.Now(), samples: []sample{{0, 0}}}
	w.waitStart.Store(-1)
	m.add(w)
	return w
}

func (w *watchdog) now() int64 { return int64(time.Since(w.start)) }

func (w *watchdog) enter() {
	if w != nil {
		w.waitStart.Store(w.now())
	}
}

func (w *watchdog) leave(n int) {
	if w == nil {
		return
	}
	if ws := w.waitStart.Swap(-1); ws >= 0 {
		w.waited.Add(w.now() - ws)
	}
	w.got.Add(int64(n))
}

// stop ends the checks. A check already under way may still cancel the
// attempt, which is ending anyway.
func (w *watchdog) stop() {
	if w != nil {
		w.m.remove(w)
	}
}

// check samples the watchdog and reports whether the rate over the last
// window is below the limit. Only the monitor calls it.
func (w *watchdog) check() bool {
	m := w.m
	wait := w.waited.Load()
	if ws := w.waitStart.Load(); ws >= 0 {
		wait += w.now() - ws
	}
	got := w.got.Load()
	if wait == w.samples[len(w.samples)-1].wait {
		return false
	}
	w.samples = append(w.samples, sample{wait, got})
	win := int64(m.window)
	for len(w.samples) > 1 && w.samples[1].wait <= wait-win {
		w.samples = w.samples[1:]
	}
	s := w.samples[0]
	return wait-s.wait >= win && float64(got-s.got) < m.need
}

// monitor runs the low-speed checks of a Fetcher's attempts from one
// goroutine, which runs only while some attempt is watched: a goroutine
// and a ticker per request cost more than the check.
type monitor struct {
	window time.Duration
	need   float64 // bytes per window
	tick   time.Duration

	mu      sync.Mutex
	watched map[*watchdog]struct{}
	running bool
}

func newMonitor(limit int64, window time.Duration) *monitor {
	return &monitor{window: window, need: float64(limit) * window.Seconds(),
		tick: min(max(window/8, 5*time.Millisecond), time.Second), watched: map[*watchdog]struct{}{}}
}

func (m *monitor) add(w *watchdog) {
	m.mu.Lock()
	m.watched[w] = struct{}{}
	if !m.running {
		m.running = true
		go m.run()
	}
	m.mu.Unlock()
}

func (m *monitor) remove(w *watchdog) {
	m.mu.Lock()
	delete(m.watched, w)
	m.mu.Unlock()
}

func (m *monitor) run() {
	t := time.NewTicker(m.tick)
	defer t.Stop()
	var batch []*watchdog
	for range t.C {
		m.mu.Lock()
		if len(m.watched) == 0 {
			m.running = false
			m.mu.Unlock()
			return
		}
		batch = batch[:0]
		for w := range m.watched {
			batch = append(batch, w)
		}
		m.mu.Unlock()
		for _, w := range batch {
			if w.check() {
				m.remove(w)
				w.cancel(ErrTooSlow)
			}
		}
	}
}
