package fleetlock_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/fleetlock"
)

// endless is a body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// The client against a hostile server: every answer but a plain 200 from
// the server asked is a failure (the caller must not reboot), the body is
// read bounded, a stalled server runs into the timeout, and a redirect is
// not followed (another host's 200 is not the lock).
func TestClientHostileServer(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK) // "granted", by a host nobody asked
	}))
	defer other.Close()
	stall := make(chan struct{})
	defer close(stall)
	for _, tc := range []struct {
		name  string
		h     http.HandlerFunc
		kind  string // a *fleetlock.Error of this kind, or "" for a transport error
		inMsg string
	}{
		{"endless error body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(500)
			_, _ = io.Copy(w, endless{})
		}, fleetlock.KindGenericError, ""},
		{"huge json", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(500)
			_, _ = io.WriteString(w, `{"kind":"failed_lock","value":"`+strings.Repeat("a", 1<<20)+`"}`)
		}, fleetlock.KindGenericError, ""},
		{"wrong content", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(409)
			_, _ = io.WriteString(w, "<html>busy</html>")
		}, fleetlock.KindGenericError, "<html>busy</html>"},
		{"redirect to another host", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
		}, fleetlock.KindGenericError, "307"},
		{"stalled", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // so the server sees the client hang up
			select {
			case <-stall:
			case <-r.Context().Done():
			}
		}, "", "Timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := httptest.NewServer(tc.h)
			defer hs.Close()
			c := &fleetlock.Client{BaseURL: hs.URL, ID: "a", Group: "default", HTTP: &http.Client{Timeout: 300 * time.Millisecond}}
			if tc.name == "redirect to another host" {
				c.HTTP = nil // the default client: it must not follow either
			}
			start := time.Now()
			err := c.PreReboot(context.Background())
			if err == nil {
				t.Fatal("took the lock")
			}
			var fe *fleetlock.Error
			if isFE := errors.As(err, &fe); isFE != (tc.kind != "") || (isFE && fe.Kind != tc.kind) {
				t.Fatalf("%T %v", err, err)
			}
			if len(err.Error()) > 70<<10 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			if !strings.Contains(err.Error(), tc.inMsg) {
				t.Fatalf("%q does not say %q", err, tc.inMsg)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
}
