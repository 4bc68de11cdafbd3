package fleetlock_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/strata-os/strata/fleetlock"
	"github.com/strata-os/strata/internal/etcdtest"
)

// The server against garbage under airlock's key and hostile request
// bodies: it refuses with airlock's kinds, never grants a slot, and
// writes nothing: the garbage stays as it was (the operator's to look
// at) and the sentinel group's value is untouched.
func TestServerHostileStoreAndBodies(t *testing.T) {
	e := etcdtest.Start(t)
	st := dial(t, e.Endpoint)
	ctx := context.Background()
	const sentinel = `{"total_slots":1,"holders":["keeper"]}`
	if _, err := st.Client().Put(ctx, fleetlock.Key("sentinel"), sentinel); err != nil {
		t.Fatal(err)
	}
	hs := server(t, st, map[string]uint64{"default": 1, "sentinel": 1})
	many := `{"total_slots":1,"holders":["` + strings.Repeat(`x","`, 100000) + `y"]}`
	for _, tc := range []struct{ name, value, kind string }{
		{"not json", "\x00\xffgarbage", fleetlock.KindFailedSemInit},
		{"negative slots", `{"total_slots":-1,"holders":[]}`, fleetlock.KindFailedSemInit},
		{"overflowing slots", `{"total_slots":184467440737095516160,"holders":[]}`, fleetlock.KindFailedSemInit},
		{"holder not a string", `{"total_slots":1,"holders":[1]}`, fleetlock.KindFailedSemInit},
		{"100000 holders", many, fleetlock.KindFailedLock},
		{"duplicate holder", `{"total_slots":1,"holders":["z","z"]}`, fleetlock.KindFailedLock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := st.Client().Put(ctx, fleetlock.Key("default"), tc.value); err != nil {
				t.Fatal(err)
			}
			err := (&fleetlock.Client{BaseURL: hs.URL, ID: "a", Group: "default"}).PreReboot(ctx)
			var fe *fleetlock.Error
			if !errors.As(err, &fe) || fe.Kind != tc.kind {
				t.Fatalf("pre-reboot: %v", err)
			}
			if got := rawValue(t, st, fleetlock.Key("default")); got != tc.value {
				t.Fatalf("the value was rewritten: %.80s", got)
			}
		})
	}
	if _, err := st.Client().Put(ctx, fleetlock.Key("default"), `{"total_slots":1,"holders":[]}`); err != nil {
		t.Fatal(err)
	}
	post := func(body string) (int, string) {
		req, _ := http.NewRequest("POST", hs.URL+fleetlock.PreRebootPath, strings.NewReader(body))
		req.Header.Set(fleetlock.ProtocolHeader, "true")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct{ name, body string }{
		{"oversize", `{"client_params":{"id":"` + strings.Repeat("a", 1<<20) + `","group":"default"}}`},
		{"bad json", `{"client_params":{"id":"a","group":"default"`},
		{"newline in id", `{"client_params":{"id":"a\nfleetlock: pre-reboot group=default id=b: ok","group":"default"}}`},
		{"escape in id", `{"client_params":{"id":"\u001b[2Ja","group":"default"}}`},
		{"delete in id", `{"client_params":{"id":"a\u007f","group":"default"}}`},
		{"control in group", `{"client_params":{"id":"a","group":"default\n"}}`},
	} {
		status, body := post(tc.body)
		if status != 400 || !strings.Contains(body, `"kind":"invalid_client_identity"`) {
			t.Errorf("%s: %d %.200s", tc.name, status, body)
		}
	}
	if got := rawValue(t, st, fleetlock.Key("default")); got != `{"total_slots":1,"holders":[]}` {
		t.Fatalf("default after hostile bodies: %s", got)
	}
	if got := rawValue(t, st, fleetlock.Key("sentinel")); got != sentinel {
		t.Fatalf("sentinel group: %s", got)
	}
}
