package fleetlock

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// memStore is an in-memory Store with the same compare-and-swap contract.
type memStore struct {
	mu   sync.Mutex
	vals map[string][]byte
	revs map[string]int64
	rev  int64
}

func (m *memStore) Get(_ context.Context, g string) (*Semaphore, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.vals[g]
	if !ok {
		return nil, 0, nil
	}
	s, err := ParseSemaphore(b)
	return s, m.revs[g], err
}

func (m *memStore) Put(_ context.Context, g string, s *Semaphore, rev int64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.revs[g] != rev {
		return false, nil
	}
	m.rev++
	m.vals[g], m.revs[g] = s.Marshal(), m.rev
	return true, nil
}

func (m *memStore) List(context.Context) (map[string]*Semaphore, error) { return nil, nil }

// The server's request parsing takes untrusted bytes: it never panics,
// answers 200, 400 or 500, and never lets two ids hold the one slot.
func FuzzServe(f *testing.F) {
	for _, s := range []string{
		`{"client_params":{"id":"a","group":"default"}}`,
		`{"client_params":{"id":"b","group":"default"}}`,
		`{"client_params":{"id":"","group":"default"}}`,
		`{"client_params":{"id":"a","group":"a/b"}}`,
		`{"client_params":`, `[]`, `null`, `{"client_params":{"id":1}}`,
	} {
		f.Add("/v1/pre-reboot", "true", s)
		f.Add("/v1/steady-state", "true", s)
	}
	f.Fuzz(func(t *testing.T, path, header, body string) {
		st := &memStore{vals: map[string][]byte{}, revs: map[string]int64{}}
		h := (&Server{Store: st, Groups: map[string]uint64{"default": 1}}).Handler()
		for _, p := range []string{path, "/v1/pre-reboot"} {
			req := httptest.NewRequest(http.MethodPost, "http://x/", strings.NewReader(body))
			req.URL.Path = "/" + strings.TrimLeft(p, "/")
			req.Header.Set(ProtocolHeader, header)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			switch w.Code {
			case 200, 400, 404, 405, 500, 301:
			default:
				t.Fatalf("status %d", w.Code)
			}
		}
		if s, _, _ := st.Get(context.Background(), "default"); s != nil && len(s.Holders) > 1 {
			t.Fatalf("holders %v", s.Holders)
		}
	})
}
