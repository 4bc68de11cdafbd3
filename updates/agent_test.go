package updates

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

// fakeSystem is a machine: booted and staged commits, a boot id, and a
// candidate the remote offers. reboot() boots the staged commit, unless
// failNew says the new version fails its health checks (then the boot
// counter brings back the old one).
type fakeSystem struct {
	mu        sync.Mutex
	booted    string
	staged    string
	boot      int
	offer     *Candidate
	failNew   bool
	rebootReq []time.Time
	clock     Clock
	stageErr  error
}

func (s *fakeSystem) Facts(context.Context) (Facts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Facts{Booted: s.booted, Staged: s.staged, BootID: strconv.Itoa(s.boot)}, nil
}
func (s *fakeSystem) Check(context.Context) (*Candidate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offer, nil
}
func (s *fakeSystem) Stage(_ context.Context, c *Candidate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stageErr != nil {
		return s.stageErr
	}
	s.staged = c.Checksum
	return nil
}
func (s *fakeSystem) Reboot(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rebootReq = append(s.rebootReq, s.clock.Now())
	return nil
}

// reboot performs a requested reboot.
func (s *fakeSystem) reboot() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.boot++
	if s.staged != "" && !s.failNew {
		s.booted = s.staged
	}
	s.staged = ""
}

const (
	v1 = "1111111111111111111111111111111111111111111111111111111111111111"
	v2 = "2222222222222222222222222222222222222222222222222222222222222222"
	v3 = "3333333333333333333333333333333333333333333333333333333333333333"
)

func TestPeriodicWaitsForWindowAndRebootsInside(t *testing.T) {
	cfg, err := ParseConfig("p.toml", []byte("[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Wed\"]\nstart_time = \"01:00\"\nlength_minutes = 30\n"))
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{now: mustTime(t, "2026-12-07T10:00:00Z")} // Monday
	sys := &fakeSystem{booted: v1, offer: &Candidate{Checksum: v2, Timestamp: mustTime(t, "2026-12-01T00:00:00Z")}, clock: clk}
	a := &Agent{Config: cfg, System: sys, Clock: clk, StatePath: filepath.Join(t.TempDir(), "state.json"), NodeID: "n"}
	// One step: staged at once, waiting for Wednesday's window.
	s, err := a.Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Phase != PhaseWaitWindow || sys.staged != v2 || len(sys.rebootReq) != 0 || !s.Until.Equal(mustTime(t, "2026-12-09T01:00:00Z")) {
		t.Fatalf("first step: %+v staged=%s reboots=%v", s, sys.staged, sys.rebootReq)
	}
	st, _ := LoadState(a.StatePath)
	if st.Status.Phase != PhaseWaitWindow || st.Status.Reason == "" {
		t.Fatalf("state file: %+v", st.Status)
	}
	// The run sleeps until the window and reboots inside it.
	s, err = a.Run(context.Background(), 8*24*time.Hour)
	if err != nil || s.Phase != PhaseRebooting {
		t.Fatalf("run: %+v %v", s, err)
	}
	if len(sys.rebootReq) != 1 {
		t.Fatalf("reboots %v", sys.rebootReq)
	}
	at := sys.rebootReq[0]
	if in, _ := InWindow(cfg.Windows, at, time.UTC); !in {
		t.Fatalf("rebooted at %s, outside the window", at)
	}
	// With less patience than the wait, the run stops and says why.
	clk.now = mustTime(t, "2026-12-09T02:00:00Z")
	sys.rebootReq = nil
	s, err = a.Run(context.Background(), time.Hour)
	if err != nil || s.Phase != PhaseWaitWindow || len(sys.rebootReq) != 0 || !s.Until.Equal(mustTime(t, "2026-12-16T01:00:00Z")) {
		t.Fatalf("short run: %+v %v %v", s, err, sys.rebootReq)
	}
}

func TestImmediateAndFailedUpdateNotTakenAgain(t *testing.T) {
	cfg, _ := ParseConfig("i.toml", nil)
	clk := &fakeClock{now: mustTime(t, "2026-12-07T10:00:00Z")}
	sys := &fakeSystem{booted: v1, offer: &Candidate{Checksum: v2}, clock: clk}
	a := &Agent{Config: cfg, System: sys, Clock: clk, StatePath: filepath.Join(t.TempDir(), "state.json"), NodeID: "n"}
	s, err := a.Run(context.Background(), time.Hour)
	if err != nil || s.Phase != PhaseRebooting || len(sys.rebootReq) != 1 {
		t.Fatalf("%+v %v", s, err)
	}
	sys.reboot()
	sys.offer = &Candidate{Checksum: v3}
	sys.failNew = true
	if s, _ = a.Run(context.Background(), time.Hour); s.Phase != PhaseRebooting {
		t.Fatalf("v3: %+v", s)
	}
	sys.reboot() // v3 fails its health check: back on v2
	s, err = a.Run(context.Background(), time.Hour)
	if err != nil || s.Phase != PhaseUpToDate || len(sys.rebootReq) != 2 || sys.staged != "" {
		t.Fatalf("after v3 failed: %+v %v reboots=%d staged=%s", s, err, len(sys.rebootReq), sys.staged)
	}
	t.Log(s.Reason)
}

func TestDeadEndNeverTaken(t *testing.T) {
	cfg, _ := ParseConfig("i.toml", nil)
	clk := &fakeClock{now: mustTime(t, "2026-12-07T10:00:00Z")}
	for _, meta := range []map[string]string{
		{KeyDeadEnd: "true", KeyDeadEndReason: "breaks NFS"},
		{"org.fedoraproject.coreos.updates.deadend": "true"},
		{KeyEndOfLife: "rebase to stable/2"},
	} {
		sys := &fakeSystem{booted: v1, offer: &Candidate{Checksum: v2, Metadata: meta}, clock: clk}
		a := &Agent{Config: cfg, System: sys, Clock: clk, StatePath: filepath.Join(t.TempDir(), "state.json"), NodeID: "n"}
		s, err := a.Run(context.Background(), time.Hour)
		if err != nil || s.Phase != PhaseDeadEnd || sys.staged != "" || len(sys.rebootReq) != 0 {
			t.Fatalf("%v: %+v %v", meta, s, err)
		}
	}
}

// Of 1000 machines, the share that takes a phased update follows the
// rollout's schedule within 5 points, at every tenth of the way.
func TestRolloutFollowsScheduleOver1000Machines(t *testing.T) {
	start := mustTime(t, "2026-12-01T00:00:00Z")
	meta := map[string]string{
		KeyStartEpoch:      strconv.FormatInt(start.Unix(), 10),
		KeyStartValue:      "0.1",
		KeyDurationMinutes: "2880",
	}
	ro, err := ParseRollout(meta)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var ws []float64
	for range 1000 {
		mid := fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		id, err := NodeUUID(mid)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, Wariness(id))
	}
	commitTime := start.Add(-time.Hour)
	for i := -1; i <= 11; i++ {
		now := start.Add(time.Duration(i) * 2880 * time.Minute / 10)
		want := ro.Progress(now)
		took := 0
		for _, w := range ws {
			if ok, at := ro.Admit(now, commitTime, w); ok {
				took++
			} else if !at.After(now) {
				t.Fatalf("wariness %v at %s: wait until %s, not after now", w, now, at)
			}
		}
		got := float64(took) / 1000
		if got < want-0.05 || got > want+0.05 {
			t.Errorf("at %s: %.3f took it, schedule says %.3f", now.Format(time.RFC3339), got, want)
		}
		t.Logf("t=%+d/10: %.3f took it (schedule %.3f)", i, got, want)
	}
	// A machine told when it may take it is admitted then.
	for _, w := range ws[:50] {
		_, at := ro.Admit(start, commitTime, w)
		if ok, _ := ro.Admit(at, commitTime, w); !ok && !at.IsZero() {
			t.Fatalf("wariness %v not admitted at %s", w, at)
		}
	}
}

func TestRolloutClock(t *testing.T) {
	start := mustTime(t, "2026-12-01T00:00:00Z")
	ro, _ := ParseRollout(map[string]string{KeyStartEpoch: strconv.FormatInt(start.Unix(), 10), KeyStartValue: "0.5", KeyDurationMinutes: "60"})
	commitTime := start.Add(-time.Hour)
	// A clock in 1970 (no RTC, no NTP yet): before the commit was made, so
	// nobody takes it, not even a machine of wariness 0 with start_value 0.5.
	past := time.Unix(0, 0)
	if ok, at := ro.Admit(past, commitTime, 0); ok || !at.Equal(commitTime) {
		t.Fatalf("1970 clock: %v %s", ok, at)
	}
	if p := ro.Progress(past); p != 0 {
		t.Fatalf("progress in 1970: %v", p)
	}
	// Between the commit and the start: nothing yet.
	if ok, _ := ro.Admit(start.Add(-time.Minute), commitTime, 0); ok {
		t.Fatal("before the start")
	}
	// Far future: progress is clamped to 1 (the rollout is over).
	if p := ro.Progress(start.AddDate(100, 0, 0)); p != 1 {
		t.Fatalf("progress in 2126: %v", p)
	}
	if p := ro.Progress(start.Add(30 * time.Minute)); p != 0.75 {
		t.Fatalf("half way: %v", p)
	}
	// Bad metadata is refused, not taken as "no rollout".
	if _, err := ParseRollout(map[string]string{KeyStartEpoch: "soon"}); err == nil {
		t.Fatal("bad start_epoch accepted")
	}
	// Agent side: a clock before the commit waits and says why.
	cfg, _ := ParseConfig("i.toml", nil)
	clk := &fakeClock{now: past}
	sys := &fakeSystem{booted: v1, offer: &Candidate{Checksum: v2, Timestamp: commitTime, Metadata: map[string]string{KeyStartEpoch: strconv.FormatInt(start.Unix(), 10)}}, clock: clk}
	a := &Agent{Config: cfg, System: sys, Clock: clk, StatePath: filepath.Join(t.TempDir(), "state.json"), NodeID: "n"}
	s, err := a.Run(context.Background(), time.Hour)
	if err != nil || s.Phase != PhaseWaitRollout || sys.staged != "" {
		t.Fatalf("%+v %v", s, err)
	}
	t.Log(s.Reason)
}

// NodeUUID is systemd's app-specific id construction: HMAC-SHA256 keyed
// by the machine id, v4-marked.
func TestNodeUUID(t *testing.T) {
	a, err := NodeUUID("e0f3745b108f471cbd4883c6fbed8cdd\n")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NodeUUID("e0f3745b108f471cbd4883c6fbed8cde")
	if len(a) != 32 || a == b || a[12] != '4' || a == "e0f3745b108f471cbd4883c6fbed8cdd" {
		t.Fatalf("%s %s", a, b)
	}
	if _, err := NodeUUID("not-an-id"); err == nil {
		t.Fatal("bad machine-id accepted")
	}
}

type downLocker struct{ calls int }

func (d *downLocker) PreReboot(context.Context) error {
	d.calls++
	return errors.New("dial tcp 127.0.0.1:1: connection refused")
}
func (d *downLocker) SteadyState(context.Context) error { return d.PreReboot(context.TODO()) }

// An unreachable FleetLock server delays the reboot, retried with
// backoff; the machine never reboots without the lock.
func TestFleetLockUnreachableNeverReboots(t *testing.T) {
	cfg, _ := ParseConfig("f.toml", []byte("[updates]\nstrategy = \"fleet_lock\"\n[updates.fleet_lock]\nbase_url = \"http://127.0.0.1:1/\"\n"))
	clk := &fakeClock{now: mustTime(t, "2026-12-07T10:00:00Z")}
	sys := &fakeSystem{booted: v1, offer: &Candidate{Checksum: v2}, clock: clk}
	lk := &downLocker{}
	a := &Agent{Config: cfg, System: sys, Locker: lk, Clock: clk, StatePath: filepath.Join(t.TempDir(), "state.json"), NodeID: "n"}
	var waits []time.Duration
	for range 8 {
		before := clk.Now()
		s, err := a.Step(context.Background())
		if err != nil || s.Phase != PhaseWaitLock {
			t.Fatalf("%+v %v", s, err)
		}
		waits = append(waits, s.Until.Sub(before))
		clk.Sleep(context.Background(), s.Until.Sub(before))
	}
	if len(sys.rebootReq) != 0 || sys.staged != v2 || lk.calls != 8 {
		t.Fatalf("reboots %v staged %s calls %d", sys.rebootReq, sys.staged, lk.calls)
	}
	want := []time.Duration{10, 20, 40, 80, 160, 320, 600, 600}
	for i := range want {
		if waits[i] != want[i]*time.Second {
			t.Fatalf("backoff %v, want %v s", waits, want)
		}
	}
}
