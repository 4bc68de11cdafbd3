package fetch

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseContentRange(t *testing.T) {
	for _, c := range []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 0-9/10", 0, 10, true},
		{"bytes 5-9/*", 5, -1, true},
		{"bytes */42", -1, 42, true},
		{"bytes 9-5/10", 0, 0, false},
		{"bytes 0-10/10", 0, 0, false},
		{"bytes -1-5/10", 0, 0, false},
		{"items 0-9/10", 0, 0, false},
		{"bytes 0-9", 0, 0, false},
		{"bytes a-9/10", 0, 0, false},
		{"", 0, 0, false},
	} {
		start, total, err := parseContentRange(c.in)
		if (err == nil) != c.ok || c.ok && (start != c.start || total != c.total) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v", c.in, start, total, err)
		}
	}
}

func TestBackoff(t *testing.T) {
	f := &Fetcher{opt: Options{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for range 50 {
			if d := f.backoff(n, 0); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
	if d := f.backoff(1, 700*time.Millisecond); d != 700*time.Millisecond {
		t.Errorf("Retry-After 700ms: %v", d)
	}
	if d := f.backoff(1, time.Hour); d > 100*time.Millisecond {
		t.Errorf("Retry-After of an hour is not honoured past MaxBackoff: %v", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	if d := parseRetryAfter("3"); d != 3*time.Second {
		t.Errorf("3: %v", d)
	}
	if d := parseRetryAfter(time.Now().Add(time.Minute).UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")); d < 50*time.Second || d > time.Minute {
		t.Errorf("date: %v", d)
	}
	if d := parseRetryAfter("soon"); d != 0 {
		t.Errorf("soon: %v", d)
	}
}

// TestMonitor: one goroutine checks every watched attempt, cancels a slow
// one with ErrTooSlow, leaves a fast one and a slow caller alone, and
// exits once nothing is watched.
func TestMonitor(t *testing.T) {
	m := newMonitor(1000, 40*time.Millisecond) // 40 bytes per window
	var slowCause, fastCause, callerCause atomic.Value
	cancelInto := func(v *atomic.Value) context.CancelCauseFunc {
		return func(err error) { v.Store(err) }
	}
	slow := m.startWatchdog(cancelInto(&slowCause))
	fast := m.startWatchdog(cancelInto(&fastCause))
	caller := m.startWatchdog(cancelInto(&callerCause))
	slow.enter() // waits for the network and gets nothing
	deadline := time.Now().Add(2 * time.Second)
	for slowCause.Load() == nil && time.Now().Before(deadline) {
		fast.enter()
		time.Sleep(time.Millisecond)
		fast.leave(100) // 100 bytes a millisecond
		// caller never waits for the network: its slowness is its own.
	}
	if slowCause.Load() != ErrTooSlow {
		t.Errorf("slow attempt: cause %v, want ErrTooSlow", slowCause.Load())
	}
	if c := fastCause.Load(); c != nil {
		t.Errorf("fast attempt cancelled: %v", c)
	}
	if c := callerCause.Load(); c != nil {
		t.Errorf("attempt with a slow caller cancelled: %v", c)
	}
	slow.stop()
	fast.stop()
	caller.stop()
	for time.Now().Before(deadline) {
		m.mu.Lock()
		running := m.running
		m.mu.Unlock()
		if !running {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Error("monitor goroutine still running with nothing to watch")
}
