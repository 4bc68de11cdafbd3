package fleetlock_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-os/strata/fleetlock"
	"github.com/strata-os/strata/internal/etcdtest"
)

func dial(t *testing.T, endpoint string) *fleetlock.Etcd {
	t.Helper()
	st, err := fleetlock.DialEtcd(context.Background(), []string{endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func server(t *testing.T, st fleetlock.Store, groups map[string]uint64) *httptest.Server {
	t.Helper()
	s := &fleetlock.Server{Store: st, Groups: groups}
	if err := s.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return hs
}

func rawValue(t *testing.T, st *fleetlock.Etcd, key string) string {
	t.Helper()
	resp, err := st.Client().Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("etcd has %d keys %s", len(resp.Kvs), key)
	}
	return string(resp.Kvs[0].Value)
}

// One slot, five machines that want to reboot, two servers on one etcd:
// never two holders at once, and every machine gets its turn.
func TestFiveClientsOneSlotTwoServers(t *testing.T) {
	e := etcdtest.Start(t)
	groups := map[string]uint64{fleetlock.DefaultGroup: 1}
	a := server(t, dial(t, e.Endpoint), groups)
	b := server(t, dial(t, e.Endpoint), groups)

	var holding, maxHolding, rebooted atomic.Int32
	var refusals atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, id := range []string{"m1", "m2", "m3", "m4", "m5"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			urls := []string{a.URL, b.URL}
			for try := 0; ; try++ {
				c := &fleetlock.Client{BaseURL: urls[(i+try)%2], ID: id, Group: "default"}
				err := c.PreReboot(ctx)
				if err != nil {
					var fe *fleetlock.Error
					if !errors.As(err, &fe) || fe.Kind != fleetlock.KindFailedLock {
						t.Errorf("%s: %v", id, err)
						return
					}
					refusals.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				n := holding.Add(1)
				for {
					m := maxHolding.Load()
					if n <= m || maxHolding.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(30 * time.Millisecond) // the reboot
				holding.Add(-1)
				c = &fleetlock.Client{BaseURL: urls[(i+try+1)%2], ID: id, Group: "default"}
				if err := c.SteadyState(ctx); err != nil {
					t.Errorf("%s steady-state: %v", id, err)
					return
				}
				rebooted.Add(1)
				return
			}
		}()
	}
	wg.Wait()
	if rebooted.Load() != 5 {
		t.Fatalf("%d of 5 machines rebooted", rebooted.Load())
	}
	if maxHolding.Load() != 1 {
		t.Fatalf("%d machines held the one slot at once", maxHolding.Load())
	}
	if refusals.Load() == 0 {
		t.Fatal("no machine was ever refused: the clients did not contend")
	}
	got := rawValue(t, dial(t, e.Endpoint), "com.coreos.airlock/groups/default/v1/semaphore")
	if got != `{"total_slots":1,"holders":[]}` {
		t.Fatalf("semaphore after all released: %s", got)
	}
	t.Logf("5 reboots, max 1 holder, %d refusals", refusals.Load())
}

// A machine that dies holding its slot keeps it: status shows it and the
// others wait until an operator releases it.
func TestDeadHolderKeepsLockUntilReleased(t *testing.T) {
	e := etcdtest.Start(t)
	st := dial(t, e.Endpoint)
	hs := server(t, st, map[string]uint64{"workers": 1, "default": 2})
	ctx := context.Background()
	dead := &fleetlock.Client{BaseURL: hs.URL + "/", ID: "dead-node", Group: "workers"}
	if err := dead.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	// Recursive: a second lock by the same id succeeds.
	if err := dead.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	other := &fleetlock.Client{BaseURL: hs.URL, ID: "other", Group: "workers"}
	for range 3 {
		err := other.PreReboot(ctx)
		var fe *fleetlock.Error
		if !errors.As(err, &fe) || fe.Kind != fleetlock.KindFailedLock || fe.Status != 500 {
			t.Fatalf("other's pre-reboot while dead-node holds: %v", err)
		}
		if !strings.Contains(fe.Value, "slots currently locked") {
			t.Fatalf("value %q", fe.Value)
		}
	}
	// Releasing a slot one does not hold succeeds and changes nothing.
	if err := other.SteadyState(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w := all["workers"]; w == nil || len(w.Holders) != 1 || w.Holders[0] != "dead-node" || w.TotalSlots != 1 {
		t.Fatalf("status: %+v", all["workers"])
	}
	if d := all["default"]; d == nil || d.TotalSlots != 2 || len(d.Holders) != 0 {
		t.Fatalf("status of default: %+v", all["default"])
	}
	if got := rawValue(t, st, "com.coreos.airlock/groups/workers/v1/semaphore"); got != `{"total_slots":1,"holders":["dead-node"]}` {
		t.Fatalf("raw etcd value: %s", got)
	}
	ok, err := fleetlock.Release(ctx, st, "workers", "dead-node")
	if err != nil || !ok {
		t.Fatalf("release: %v %v", ok, err)
	}
	if err := other.PreReboot(ctx); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if got := rawValue(t, st, "com.coreos.airlock/groups/workers/v1/semaphore"); got != `{"total_slots":1,"holders":["other"]}` {
		t.Fatalf("raw etcd value: %s", got)
	}
}

// A semaphore written the way airlock writes it (its JSON at its key) is
// read and honoured by strata's server.
func TestReadsAirlockWrittenSemaphore(t *testing.T) {
	e := etcdtest.Start(t)
	st := dial(t, e.Endpoint)
	ctx := context.Background()
	if _, err := st.Client().Put(ctx, "com.coreos.airlock/groups/default/v1/semaphore", `{"total_slots":1,"holders":["c988d2509fdf5cdcbed39037c56406fb"]}`); err != nil {
		t.Fatal(err)
	}
	hs := server(t, st, map[string]uint64{"default": 1})
	c := &fleetlock.Client{BaseURL: hs.URL, ID: "x", Group: "default"}
	if err := c.PreReboot(ctx); err == nil {
		t.Fatal("took a slot airlock's holder has")
	}
	holder := &fleetlock.Client{BaseURL: hs.URL, ID: "c988d2509fdf5cdcbed39037c56406fb", Group: "default"}
	if err := holder.SteadyState(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestProtocolErrors(t *testing.T) {
	e := etcdtest.Start(t)
	st := dial(t, e.Endpoint)
	hs := server(t, st, map[string]uint64{"default": 1})
	post := func(path, header, body string) (int, string) {
		req, _ := http.NewRequest("POST", hs.URL+path, strings.NewReader(body))
		if header != "" {
			req.Header.Set("fleet-lock-protocol", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = io.Copy(b, resp.Body)
		return resp.StatusCode, b.String()
	}
	for _, tc := range []struct {
		name, path, header, body string
		status                   int
		kind                     string
	}{
		{"no header", "/v1/pre-reboot", "", `{"client_params":{"id":"a","group":"default"}}`, 400, "invalid_client_identity"},
		{"header false", "/v1/pre-reboot", "false", `{"client_params":{"id":"a","group":"default"}}`, 400, "invalid_client_identity"},
		{"bad json", "/v1/pre-reboot", "true", `{"client_params":`, 400, "invalid_client_identity"},
		{"empty id", "/v1/steady-state", "true", `{"client_params":{"id":"","group":"default"}}`, 400, "invalid_client_identity"},
		{"empty group", "/v1/pre-reboot", "true", `{"client_params":{"id":"a","group":""}}`, 400, "invalid_client_identity"},
		{"bad group", "/v1/pre-reboot", "true", `{"client_params":{"id":"a","group":"a/b"}}`, 400, "invalid_client_identity"},
		{"unknown group", "/v1/pre-reboot", "true", `{"client_params":{"id":"a","group":"workers"}}`, 400, "unknown_group"},
		{"ok", "/v1/pre-reboot", "true", `{"client_params":{"id":"a","group":"default"}}`, 200, ""},
	} {
		status, body := post(tc.path, tc.header, tc.body)
		if status != tc.status || (tc.kind != "" && !strings.Contains(body, `"kind":"`+tc.kind+`"`)) {
			t.Errorf("%s: %d %s", tc.name, status, body)
		}
	}
	// etcd gone: the server answers failed_sem_init and the client sees it.
	e.Stop()
	srv := &fleetlock.Server{Store: st, Groups: map[string]uint64{"default": 1}, Timeout: 500 * time.Millisecond}
	hs2 := httptest.NewServer(srv.Handler())
	defer hs2.Close()
	err := (&fleetlock.Client{BaseURL: hs2.URL, ID: "a", Group: "default"}).PreReboot(context.Background())
	var fe *fleetlock.Error
	if !errors.As(err, &fe) || fe.Kind != fleetlock.KindFailedSemInit {
		t.Fatalf("with etcd down: %v", err)
	}
}

// The client against an address nobody listens on fails with a
// transport error, not a server refusal.
func TestClientUnreachable(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close()
	err := (&fleetlock.Client{BaseURL: url, ID: "a", Group: "default"}).PreReboot(context.Background())
	var fe *fleetlock.Error
	if err == nil || errors.As(err, &fe) {
		t.Fatalf("unreachable: %v", err)
	}
}

// intruderStore lets another writer (a second server) change the key
// between the server's read and its write, once.
type intruderStore struct {
	*fleetlock.Etcd
	done bool
}

func (s *intruderStore) Put(ctx context.Context, group string, sem *fleetlock.Semaphore, rev int64) (bool, error) {
	if !s.done {
		s.done = true
		if _, err := s.Client().Put(ctx, fleetlock.Key(group), `{"total_slots":1,"holders":["intruder"]}`); err != nil {
			return false, err
		}
	}
	return s.Etcd.Put(ctx, group, sem, rev)
}

// A write that lost the compare-and-swap is not applied: the server
// re-reads, sees the other writer's holder and refuses, and etcd keeps
// the other writer's value.
func TestCompareAndSwapLosesToOtherWriter(t *testing.T) {
	e := etcdtest.Start(t)
	st := dial(t, e.Endpoint)
	ctx := context.Background()
	if _, err := st.Client().Put(ctx, fleetlock.Key("default"), `{"total_slots":1,"holders":[]}`); err != nil {
		t.Fatal(err)
	}
	srv := &fleetlock.Server{Store: &intruderStore{Etcd: st}, Groups: map[string]uint64{"default": 1}}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	err := (&fleetlock.Client{BaseURL: hs.URL, ID: "a", Group: "default"}).PreReboot(ctx)
	var fe *fleetlock.Error
	if !errors.As(err, &fe) || fe.Kind != fleetlock.KindFailedLock {
		t.Fatalf("pre-reboot after losing the race: %v", err)
	}
	if got := rawValue(t, st, fleetlock.Key("default")); got != `{"total_slots":1,"holders":["intruder"]}` {
		t.Fatalf("etcd value: %s", got)
	}
}
