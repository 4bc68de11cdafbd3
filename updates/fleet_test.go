package updates

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-os/strata/fleetlock"
	"github.com/strata-os/strata/internal/etcdtest"
)

type fleetMachine struct {
	sys   *fakeSystem
	agent *Agent
}

// Five machines with the fleet_lock strategy, one slot, strata's
// FleetLock server on a real etcd: they reboot into v2 one at a time,
// each releasing the slot only once it booted v2, until all five run it.
// Then v3 breaks the first machine that takes it: that machine keeps the
// lock, the other four stay on v2 until an operator releases it.
func TestFleetLockFiveMachines(t *testing.T) {
	e := etcdtest.Start(t)
	st, err := fleetlock.DialEtcd(context.Background(), []string{e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := &fleetlock.Server{Store: st, Groups: map[string]uint64{"default": 1}}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	cfg, err := ParseConfig("f.toml", []byte(fmt.Sprintf("[updates]\nstrategy = \"fleet_lock\"\n[updates.fleet_lock]\nbase_url = %q\n", hs.URL+"/")))
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{now: mustTime(t, "2026-12-07T10:00:00Z")}
	var ms []*fleetMachine
	for i := range 5 {
		id := fmt.Sprintf("%032x", i+1)
		sys := &fakeSystem{booted: v1, offer: &Candidate{Checksum: v2}, clock: clk}
		ms = append(ms, &fleetMachine{sys: sys, agent: &Agent{
			Config: cfg, System: sys, Clock: clk, NodeID: id,
			Locker:    &fleetlock.Client{BaseURL: cfg.BaseURL, ID: id, Group: cfg.Group},
			StatePath: filepath.Join(t.TempDir(), "state.json"),
		}})
	}
	ctx := context.Background()
	holders := func() []string {
		all, err := st.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return all["default"].Holders
	}
	// Rounds: each machine's timer fires; a machine that asked for a
	// reboot reboots before the next round.
	rebooting, refused := 0, 0
	for round := 0; round < 40; round++ {
		for _, m := range ms {
			if len(m.sys.rebootReq) > 0 && m.sys.boot < len(m.sys.rebootReq) {
				m.sys.reboot()
				rebooting--
			}
			s, err := m.agent.Step(ctx)
			if err != nil {
				t.Fatal(err)
			}
			switch s.Phase {
			case PhaseRebooting:
				rebooting++
			case PhaseWaitLock:
				refused++
			}
			if h := holders(); len(h) > 1 || rebooting > 1 {
				t.Fatalf("round %d: holders %v, %d rebooting", round, h, rebooting)
			}
			clk.Sleep(ctx, time.Minute)
		}
	}
	for i, m := range ms {
		if m.sys.booted != v2 || len(m.sys.rebootReq) != 1 {
			t.Fatalf("machine %d: booted %s after %d reboots", i, m.sys.booted, len(m.sys.rebootReq))
		}
	}
	if h := holders(); len(h) != 0 {
		t.Fatalf("holders after the rollout: %v", h)
	}
	if refused == 0 {
		t.Fatal("no machine ever waited for the lock")
	}
	t.Logf("v2: 5 machines, one at a time, %d refusals", refused)

	// v3 breaks machine 0.
	for _, m := range ms {
		m.sys.offer = &Candidate{Checksum: v3}
	}
	ms[0].sys.failNew = true
	s, _ := ms[0].agent.Step(ctx)
	if s.Phase != PhaseRebooting {
		t.Fatalf("machine 0 on v3: %+v", s)
	}
	ms[0].sys.reboot() // comes back on v2: v3 failed its health check
	s, err = ms[0].agent.Step(ctx)
	if err != nil || s.LockKept != v3 || s.Phase != PhaseUpToDate {
		t.Fatalf("machine 0 after failed v3: %+v %v", s, err)
	}
	if h := holders(); len(h) != 1 || h[0] != ms[0].agent.NodeID {
		t.Fatalf("holders after the failed update: %v", h)
	}
	for round := 0; round < 3; round++ {
		for _, m := range ms[1:] {
			s, err := m.agent.Step(ctx)
			if err != nil || s.Phase != PhaseWaitLock || len(m.sys.rebootReq) != 1 {
				t.Fatalf("machine during halt: %+v %v", s, err)
			}
		}
	}
	// The operator looks, then releases the slot: the rollout resumes.
	if ok, err := fleetlock.Release(ctx, st, "default", ms[0].agent.NodeID); err != nil || !ok {
		t.Fatal(ok, err)
	}
	s, err = ms[1].agent.Step(ctx)
	if err != nil || s.Phase != PhaseRebooting {
		t.Fatalf("after release: %+v %v", s, err)
	}
}
