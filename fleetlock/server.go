package fleetlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
	"unicode"
)

// Server serves the protocol from a Store. Groups maps each group it
// serves to its number of slots.
type Server struct {
	Store  Store
	Groups map[string]uint64
	// Timeout bounds each request's store operations (default 10 s).
	Timeout time.Duration
	// OnEvent, when set, is told of every request's outcome (the CLI
	// logs it); it must not block.
	OnEvent func(Event)
}

// Event is one handled request.
type Event struct {
	Op     string // "pre-reboot" or "steady-state"
	Group  string
	ID     string
	Err    *Error // nil on success
	Holder bool   // id holds a slot afterwards
}

// casRetries is how often a change re-reads and retries after losing a
// compare-and-swap to another writer.
const casRetries = 16

// Handler returns the HTTP handler of both endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(PreRebootPath, func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, true) })
	mux.HandleFunc(SteadyStatePath, func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, false) })
	return mux
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, lock bool) {
	op := "steady-state"
	if lock {
		op = "pre-reboot"
	}
	p, herr := validate(r)
	ev := Event{Op: op}
	if p != nil {
		ev.Group, ev.ID = p.Group, p.ID
	}
	if herr == nil {
		if _, ok := s.Groups[p.Group]; !ok {
			herr = &Error{Status: 400, Kind: KindUnknownGroup, Value: fmt.Sprintf("unknown group %q", p.Group)}
		}
	}
	if herr == nil {
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout())
		defer cancel()
		var err error
		if lock {
			err = s.change(ctx, p.Group, func(sem *Semaphore) (bool, error) { return sem.Lock(p.ID) })
		} else {
			err = s.change(ctx, p.Group, func(sem *Semaphore) (bool, error) { return sem.Unlock(p.ID), nil })
		}
		if err != nil {
			herr = asHTTP(err, lock)
		}
		ev.Holder = lock && herr == nil
	}
	if s.OnEvent != nil {
		ev.Err = herr
		s.OnEvent(ev)
	}
	if herr != nil {
		b, _ := json.Marshal(herr)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(herr.Status)
		w.Write(append(b, '\n'))
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 10 * time.Second
}

// storeError marks a failure to read or write the store.
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

func asHTTP(err error, lock bool) *Error {
	var se storeError
	if errors.As(err, &se) {
		return &Error{Status: 500, Kind: KindFailedSemInit, Value: "failed to initialize semaphore manager: " + err.Error()}
	}
	if lock {
		return &Error{Status: 500, Kind: KindFailedLock, Value: err.Error()}
	}
	return &Error{Status: 500, Kind: KindFailedLock, Value: "failed to release any semaphore lock: " + err.Error()}
}

func validate(r *http.Request) (*ClientParams, *Error) {
	bad := func(msg string) *Error {
		return &Error{Status: 400, Kind: KindInvalidClientIdentity, Value: "failed to validate client identity: " + msg}
	}
	if r.Method != http.MethodPost {
		return nil, bad("method " + r.Method + ", want POST")
	}
	if r.Header.Get(ProtocolHeader) != "true" {
		return nil, bad("wrong 'fleet-lock-protocol' header")
	}
	var req Request
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		return nil, bad(err.Error())
	}
	p := req.ClientParams
	// The event (the CLI's log line) carries only an id and group that
	// passed: a control character in either would forge log lines.
	switch {
	case p.Group == "":
		return nil, bad("empty client group")
	case !ValidGroup(p.Group):
		return nil, bad(fmt.Sprintf("invalid client group %q", p.Group))
	case p.ID == "":
		return &p, bad("empty client ID")
	case !validID(p.ID):
		return &ClientParams{Group: p.Group}, bad(fmt.Sprintf("invalid client ID %q: control character", p.ID))
	}
	return &p, nil
}

// validID refuses ids that would corrupt a log line or status output.
func validID(id string) bool {
	return strings.IndexFunc(id, unicode.IsControl) < 0
}

// change applies fn to group's semaphore (created with the configured
// slots when absent) and stores the result with a compare-and-swap,
// re-reading and retrying when another writer got there first. fn
// reports whether it changed anything. The configured slot count is
// written into every stored value.
func (s *Server) change(ctx context.Context, group string, fn func(*Semaphore) (bool, error)) error {
	slots := s.Groups[group]
	for range casRetries {
		sem, rev, err := s.Store.Get(ctx, group)
		if err != nil {
			return storeError{err}
		}
		if sem == nil {
			sem = NewSemaphore(slots)
		}
		resized := sem.TotalSlots != slots
		sem.TotalSlots = slots
		changed, err := fn(sem)
		if err != nil {
			return err
		}
		if !changed && !resized && rev != 0 {
			return nil
		}
		ok, err := s.Store.Put(ctx, group, sem, rev)
		if err != nil {
			return storeError{err}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return storeError{ctx.Err()}
		case <-time.After(time.Duration(rand.IntN(20)+1) * time.Millisecond):
		}
	}
	return errConflict
}

// Init creates the semaphore of every configured group that has none
// (as airlock does at its first request), so that status shows them.
func (s *Server) Init(ctx context.Context) error {
	for g := range s.Groups {
		if err := s.change(ctx, g, func(*Semaphore) (bool, error) { return false, nil }); err != nil {
			return fmt.Errorf("group %s: %w", g, err)
		}
	}
	return nil
}

// Release removes id from group's holders, the operator's way out when
// a machine died holding its slot. It reports whether id held one.
func Release(ctx context.Context, st Store, group, id string) (bool, error) {
	for range casRetries {
		sem, rev, err := st.Get(ctx, group)
		if err != nil {
			return false, err
		}
		if sem == nil || !sem.Unlock(id) {
			return false, nil
		}
		ok, err := st.Put(ctx, group, sem, rev)
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, errConflict
}
