// Package fleetlock speaks the FleetLock protocol (Zincati's reboot
// coordination, as coreos/airlock and poseidon/fleetlock serve it): a
// client that takes and releases a reboot slot, and a server that keeps
// the slots of each group in etcd under airlock's key and JSON, so that
// airlock and strata's server can run the same fleet.
//
// Protocol: POST BASE/v1/pre-reboot takes (recursively) a slot for the
// client's id in its group, POST BASE/v1/steady-state releases it if held.
// Both carry the header "fleet-lock-protocol: true" and the body
// {"client_params": {"id": ID, "group": GROUP}}; 200 means done, anything
// else failed, with a JSON body {"kind": K, "value": TEXT} whose kinds are
// airlock's (the Kind* constants).
package fleetlock

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
)

// Endpoints, relative to the base URL.
const (
	PreRebootPath   = "/v1/pre-reboot"
	SteadyStatePath = "/v1/steady-state"
	// ProtocolHeader must be "true" on every request.
	ProtocolHeader = "fleet-lock-protocol"
	// DefaultGroup is the group of clients and servers that name none.
	DefaultGroup = "default"
)

// Error kinds, airlock's.
const (
	KindInvalidClientIdentity = "invalid_client_identity" // 400: header, body, id or group wrong
	KindUnknownGroup          = "unknown_group"           // 400: the server has no such group
	KindFailedSemInit         = "failed_sem_init"         // 500: etcd unreachable or the semaphore unreadable
	KindFailedLock            = "failed_lock"             // 500: no free slot, or a conflict that retries did not resolve
	KindGenericError          = "generic_error"
)

// ClientParams identify a client: the body's "client_params".
type ClientParams struct {
	ID    string `json:"id"`
	Group string `json:"group"`
}

// Request is the body of both endpoints.
type Request struct {
	ClientParams ClientParams `json:"client_params"`
}

// Error is a failed request's body. Status is the HTTP status (not part
// of the JSON).
type Error struct {
	Status int    `json:"-"`
	Kind   string `json:"kind"`
	Value  string `json:"value"`
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("fleetlock: %s (HTTP %d): %s", e.Kind, e.Status, e.Value)
	}
	return fmt.Sprintf("fleetlock: %s: %s", e.Kind, e.Value)
}

var groupRE = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// ValidGroup reports whether name is a group label the protocol allows
// (^[a-zA-Z0-9.-]+$).
func ValidGroup(name string) bool { return groupRE.MatchString(name) }

// Key is the etcd key of group's semaphore, airlock's:
// com.coreos.airlock/groups/GROUP/v1/semaphore with GROUP query-escaped.
func Key(group string) string {
	return fmt.Sprintf("com.coreos.airlock/groups/%s/v1/semaphore", url.QueryEscape(group))
}

// Semaphore is the value stored at Key: airlock's JSON. Holders are kept
// sorted.
type Semaphore struct {
	TotalSlots uint64   `json:"total_slots"`
	Holders    []string `json:"holders"`
}

// NewSemaphore returns an empty semaphore of slots slots.
func NewSemaphore(slots uint64) *Semaphore { return &Semaphore{TotalSlots: slots, Holders: []string{}} }

// Holds reports whether id holds a slot.
func (s *Semaphore) Holds(id string) bool {
	i := sort.SearchStrings(s.Holders, id)
	return i < len(s.Holders) && s.Holders[i] == id
}

// Lock adds id as a holder. It returns changed=false when id already
// holds a slot (locks are recursive) and an error when every slot is
// taken by others.
func (s *Semaphore) Lock(id string) (changed bool, err error) {
	if s.Holds(id) {
		return false, nil
	}
	if uint64(len(s.Holders)) >= s.TotalSlots {
		return false, fmt.Errorf("all %d semaphore slots currently locked", s.TotalSlots)
	}
	s.Holders = append(s.Holders, id)
	sort.Strings(s.Holders)
	return true, nil
}

// Unlock removes id if it holds a slot and reports whether it did.
func (s *Semaphore) Unlock(id string) bool {
	i := sort.SearchStrings(s.Holders, id)
	if i < len(s.Holders) && s.Holders[i] == id {
		s.Holders = append(s.Holders[:i:i], s.Holders[i+1:]...)
		return true
	}
	return false
}

// Marshal returns the JSON stored in etcd.
func (s *Semaphore) Marshal() []byte {
	h := s.Holders
	if h == nil {
		h = []string{}
	}
	b, _ := json.Marshal(Semaphore{TotalSlots: s.TotalSlots, Holders: h})
	return b
}

// ParseSemaphore reads the JSON stored in etcd; holders are sorted.
func ParseSemaphore(b []byte) (*Semaphore, error) {
	var s Semaphore
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	if s.Holders == nil {
		s.Holders = []string{}
	}
	sort.Strings(s.Holders)
	return &s, nil
}
