package faultserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func setup(t *testing.T, o Options) (*Server, []byte, *http.Client) {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, 100<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.MkdirAll(filepath.Join(dir, "objects/ab"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "objects/ab/x.filez"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := New(t, dir, o)
	tr := &http.Transport{DisableCompression: true}
	if o.HTTP2 && !o.TLS {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = &p
	}
	t.Cleanup(tr.CloseIdleConnections)
	return s, data, &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// get fetches p with an optional Range, returning the status, the body
// read until the first error, and that error.
func get(t *testing.T, c *http.Client, url, rng string) (int, http.Header, []byte, error) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

func TestServes(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		s, data, c := setup(t, Options{HTTP2: h2})
		u := s.URL + "/objects/ab/x.filez"
		for _, tc := range []struct {
			rng  string
			code int
			body []byte
			crng string
		}{
			{"", 200, data, ""},
			{"bytes=100-", 206, data[100:], "bytes 100-102399/102400"},
			{"bytes=100-199", 206, data[100:200], "bytes 100-199/102400"},
			{"bytes=-10", 206, data[len(data)-10:], "bytes 102390-102399/102400"},
			{"bytes=102400-", 416, nil, "bytes */102400"},
			{"bytes=1-2,5-6", 200, data, ""},
		} {
			code, h, body, err := get(t, c, u, tc.rng)
			if err != nil || code != tc.code || tc.body != nil && !bytes.Equal(body, tc.body) || h.Get("Content-Range") != tc.crng {
				t.Errorf("h2=%v Range %q: %d %q, %d bytes, %v", h2, tc.rng, code, h.Get("Content-Range"), len(body), err)
			}
		}
		for _, p := range []string{"/missing", "/objects", "/objects/ab/../ab/x.filez", "/"} {
			if code, _, _, err := get(t, c, s.URL+p, ""); code != 404 || err != nil {
				t.Errorf("%s: %d %v, want 404", p, code, err)
			}
		}
		want := "HTTP/1.1"
		if h2 {
			want = "HTTP/2.0"
		}
		if r := s.Requests()[0]; r.Proto != want || r.Path != "objects/ab/x.filez" || r.Code != 200 || r.Bytes != int64(len(data)) {
			t.Errorf("first request logged as %+v", r)
		}
	}
}

// TestRules: the counting of Skip and Times, per path and global, and the
// first matching rule wins.
func TestRules(t *testing.T) {
	s, _, c := setup(t, Options{})
	u := s.URL + "/objects/ab/x.filez"
	s.Add(
		Rule{Path: "objects/ab/x.filez", Skip: 1, Times: 2, Fault: Fault{Kind: Status, Status: 503}},
		Rule{Times: 4, Fault: Fault{Kind: Status, Status: 500}},
	)
	var codes []int
	for range 6 {
		code, _, _, err := get(t, c, u, "")
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, code)
	}
	if got := fmt.Sprint(codes); got != "[500 503 503 500 200 200]" {
		t.Errorf("codes %s", got)
	}
	if n := s.Count("objects/ab/x.filez"); n != 6 {
		t.Errorf("Count %d", n)
	}
	s.Reset()
	if code, _, _, _ := get(t, c, u, ""); code != 200 || s.Count("") != 1 {
		t.Errorf("after Reset: %d, %d requests", code, s.Count(""))
	}
}

// TestFaultKinds: what a plain client sees for each fault.
func TestFaultKinds(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		s, data, c := setup(t, Options{HTTP2: h2})
		const p = "objects/ab/x.filez"
		u := s.URL + "/" + p
		try := func(f Fault, rng string) (int, []byte, error) {
			s.Reset()
			s.Add(Rule{Path: p, Fault: f})
			code, _, body, err := get(t, c, u, rng)
			return code, body, err
		}
		if _, body, err := try(Fault{Kind: Truncate, After: 1000}, ""); err == nil || len(body) > 1000 || !bytes.Equal(body, data[:len(body)]) {
			t.Errorf("h2=%v truncate: %d bytes, %v", h2, len(body), err)
		}
		if !h2 {
			if _, body, err := try(Fault{Kind: Truncate, After: 1000}, ""); !errors.Is(err, io.ErrUnexpectedEOF) || len(body) != 1000 {
				t.Errorf("truncate over HTTP/1.1: %d bytes, %v", len(body), err)
			}
		}
		if _, body, err := try(Fault{Kind: Reset, After: 1000}, "bytes=10-"); err == nil || len(body) > 1000 {
			t.Errorf("h2=%v reset: %d bytes, %v", h2, len(body), err)
		}
		if code, body, err := try(Fault{Kind: Flip, After: 5}, ""); err != nil || code != 200 || body[5] != data[5]^1 || !bytes.Equal(body[6:], data[6:]) {
			t.Errorf("h2=%v flip: %v", h2, err)
		}
		if code, body, err := try(Fault{Kind: Flip, After: 5}, "bytes=6-"); err != nil || code != 206 || !bytes.Equal(body, data[6:]) {
			t.Errorf("h2=%v flip outside the range changed something: %v", h2, err)
		}
		if code, body, err := try(Fault{Kind: IgnoreRange}, "bytes=10-"); err != nil || code != 200 || !bytes.Equal(body, data) {
			t.Errorf("h2=%v ignore range: %d, %v", h2, code, err)
		}
		start := time.Now()
		if code, body, err := try(Fault{Kind: Trickle, After: int64(len(data)) - 50, Rate: 500}, ""); err != nil || code != 200 || !bytes.Equal(body, data) || time.Since(start) < 80*time.Millisecond {
			t.Errorf("h2=%v trickle: %v after %v", h2, err, time.Since(start))
		}
		if code, _, err := try(Fault{Kind: Status, Status: 503, RetryAfter: "1"}, ""); err != nil || code != 503 {
			t.Errorf("h2=%v status: %d, %v", h2, code, err)
		}
		// Stall and Endless until the client gives up.
		short := *c
		short.Timeout = 200 * time.Millisecond
		s.Reset()
		s.Add(Rule{Path: p, Fault: Fault{Kind: Stall, After: 10}})
		if _, _, body, err := get(t, &short, u, ""); err == nil || len(body) != 10 {
			t.Errorf("h2=%v stall: %d bytes, %v", h2, len(body), err)
		}
		s.Reset()
		s.Add(Rule{Path: p, Fault: Fault{Kind: Endless}})
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.CopyN(io.Discard, resp.Body, 10<<20)
		resp.Body.Close()
		if n != 10<<20 || err != nil || resp.ContentLength != -1 {
			t.Errorf("h2=%v endless: %d bytes, %v, length %d", h2, n, err, resp.ContentLength)
		}
	}
}

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		in   string
		a, b int64
		ok   bool
	}{
		{"bytes=0-", 0, 10, true},
		{"bytes=3-4", 3, 5, true},
		{"bytes=3-40", 3, 10, true},
		{"bytes=-4", 6, 10, true},
		{"bytes=-40", 0, 10, true},
		{"bytes=10-", 0, 0, false},
		{"bytes=-0", 0, 0, false},
		{"bytes=5-3", -1, 0, false},
		{"bytes=1-2,4-5", -1, 0, false},
		{"lines=1-2", -1, 0, false},
		{"bytes=x-", -1, 0, false},
	} {
		a, b, ok := parseRange(c.in, 10)
		if a != c.a || ok != c.ok || ok && b != c.b {
			t.Errorf("parseRange(%q) = %d, %d, %v", c.in, a, b, ok)
		}
	}
}
