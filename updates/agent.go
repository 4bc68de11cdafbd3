package updates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
)

// Candidate is an update the System found.
type Candidate struct {
	Checksum string
	Version  string
	// Timestamp is the commit's own time.
	Timestamp time.Time
	// Metadata are the commit's (or image's) string metadata, where the
	// rollout keys live.
	Metadata map[string]string
}

// Facts are what the System says about the machine now.
type Facts struct {
	// Booted and Staged are commit checksums ("" when none).
	Booted, Staged string
	// BootID changes at every boot (/proc/sys/kernel/random/boot_id).
	BootID string
}

// System is what the agent acts on. The sysroot implementation pulls and
// stages with the sysroot package and reboots with systemctl; tests use
// fakes. Contract: Check does not change what boots next; Stage leaves
// the candidate to be booted at the next reboot (finalized at shutdown)
// and may be called again for the same candidate; Reboot returns only if
// the reboot could not be started.
type System interface {
	Facts(ctx context.Context) (Facts, error)
	Check(ctx context.Context) (*Candidate, error)
	Stage(ctx context.Context, c *Candidate) error
	Reboot(ctx context.Context) error
}

// Locker is the FleetLock client (fleetlock.Client implements it).
type Locker interface {
	PreReboot(ctx context.Context) error
	SteadyState(ctx context.Context) error
}

// Clock is the time source; tests pass a fake one.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RealClock is the wall clock.
var RealClock Clock = realClock{}

// State is the agent's memory between runs, kept as JSON at StatePath.
type State struct {
	// LockFor is the commit this machine took the fleet lock to reboot
	// into, and LockBootID the boot during which it took it.
	LockFor    string `json:"lock_for,omitempty"`
	LockBootID string `json:"lock_boot_id,omitempty"`
	// LockKept is set when the update to LockFor did not come up (the
	// machine booted something else): the lock stays taken so the fleet
	// stops until a person looks.
	LockKept string `json:"lock_kept,omitempty"`
	// Failed lists commits that were booted into and rolled back from;
	// they are never taken again.
	Failed map[string]string `json:"failed,omitempty"`
	// RebootFor/RebootBootID record a reboot into a commit without lock,
	// so a rollback from it is noticed too.
	RebootFor    string `json:"reboot_for,omitempty"`
	RebootBootID string `json:"reboot_boot_id,omitempty"`
	// Retries counts consecutive failures of the step in Status.Phase.
	Retries int `json:"retries,omitempty"`
	// Status is the last decision, for `strata update status`.
	Status Status `json:"status"`
}

// Phases of Status.
const (
	PhaseDisabled      = "disabled"
	PhaseUpToDate      = "up-to-date"
	PhaseDeadEnd       = "dead-end"
	PhaseWaitRollout   = "waiting-for-rollout"
	PhaseWaitWindow    = "waiting-for-window"
	PhaseWaitLock      = "waiting-for-lock"
	PhaseReleasingLock = "releasing-lock"
	PhaseRetry         = "retrying"
	PhaseRebooting     = "rebooting"
)

// Status is what the agent waits for and why.
type Status struct {
	Time      time.Time `json:"time"`
	Strategy  string    `json:"strategy"`
	Phase     string    `json:"phase"`
	Reason    string    `json:"reason"`
	Until     time.Time `json:"until,omitzero"`
	Booted    string    `json:"booted,omitempty"`
	Staged    string    `json:"staged,omitempty"`
	Candidate string    `json:"candidate,omitempty"`
	NodeID    string    `json:"node_id,omitempty"`
	Group     string    `json:"group,omitempty"`
	Wariness  float64   `json:"wariness"`
	LockKept  string    `json:"lock_kept,omitempty"`
}

// Agent decides and acts. Zero Clock is the wall clock.
type Agent struct {
	Config *Config
	System System
	// Locker is required with the fleet_lock strategy.
	Locker Locker
	Clock  Clock
	// StatePath is the state file (DefaultStatePath in production).
	StatePath string
	// NodeID is this machine's id (NodeUUID of /etc/machine-id, or the
	// configured node_uuid); its wariness comes from it unless configured.
	NodeID string
	// Backoff is the first retry delay after a failure (default 10 s),
	// doubled per consecutive failure up to MaxBackoff (default 10 min).
	Backoff, MaxBackoff time.Duration
}

// DefaultStatePath is where the agent keeps its state.
const DefaultStatePath = "/var/lib/strata/updates/state.json"

// maxStateSize bounds the state file (a few hundred bytes in practice).
const maxStateSize = 1 << 20

// LoadState reads a state file; a missing one is an empty state, one
// that is not JSON is ErrCorrupt.
func LoadState(path string) (*State, error) {
	st := &State{}
	b, err := fsutil.ReadFileLimit(path, maxStateSize)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errdefs.ErrCorrupt, path, err)
	}
	return st, nil
}

func (a *Agent) save(st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(a.StatePath, append(b, '\n'), 0o644)
}

func (a *Agent) clock() Clock {
	if a.Clock == nil {
		return RealClock
	}
	return a.Clock
}

func (a *Agent) wariness() float64 {
	if a.Config.Wariness != nil {
		return *a.Config.Wariness
	}
	return Wariness(a.NodeID)
}

func (a *Agent) backoff(n int) time.Duration {
	b, maxB := a.Backoff, a.MaxBackoff
	if b <= 0 {
		b = 10 * time.Second
	}
	if maxB <= 0 {
		maxB = 10 * time.Minute
	}
	for i := 1; i < n && b < maxB; i++ {
		b *= 2
	}
	return min(b, maxB)
}

// Step makes one decision, does it, records it in the state file and
// returns it. A Status with Until set means: call Step again then. Phase
// PhaseRebooting means the reboot was started.
func (a *Agent) Step(ctx context.Context) (Status, error) {
	st, err := LoadState(a.StatePath)
	if err != nil {
		return Status{}, err
	}
	s, stepErr := a.step(ctx, st)
	s.Time = a.clock().Now().UTC()
	s.Strategy, s.NodeID, s.Group, s.Wariness = a.Config.Strategy, a.NodeID, a.Config.Group, a.wariness()
	s.LockKept = st.LockKept
	st.Status = s
	if err := a.save(st); err != nil {
		return s, err
	}
	return s, stepErr
}

func (a *Agent) retry(st *State, s Status, why error) (Status, error) {
	st.Retries++
	s.Phase = PhaseRetry
	if s.Reason == "" {
		s.Reason = why.Error()
	}
	s.Until = a.clock().Now().Add(a.backoff(st.Retries)).UTC()
	return s, nil
}

func (a *Agent) step(ctx context.Context, st *State) (Status, error) {
	now := a.clock().Now()
	f, err := a.System.Facts(ctx)
	if err != nil {
		return Status{Phase: PhaseRetry}, err
	}
	s := Status{Booted: f.Booted, Staged: f.Staged}
	if !a.Config.Enabled {
		s.Phase, s.Reason = PhaseDisabled, "[updates] enabled = false"
		return s, nil
	}
	// After a reboot into an update: did it come up?
	if st.RebootFor != "" && st.RebootBootID != f.BootID {
		if f.Booted != st.RebootFor {
			if st.Failed == nil {
				st.Failed = map[string]string{}
			}
			st.Failed[st.RebootFor] = fmt.Sprintf("rebooted into it at boot %s, came back on %s", st.RebootBootID, short(f.Booted))
		}
		st.RebootFor, st.RebootBootID = "", ""
	}
	if st.LockFor != "" && st.LockBootID != f.BootID {
		if f.Booted == st.LockFor {
			// The new deployment booted and, as this runs after
			// boot-complete.target, passed its health checks: release.
			if err := a.Locker.SteadyState(ctx); err != nil {
				s.Phase = PhaseReleasingLock
				s.Reason = "releasing the fleet lock after a healthy boot into " + short(f.Booted) + ": " + err.Error()
				return a.retry(st, s, err)
			}
			st.LockFor, st.LockBootID, st.LockKept, st.Retries = "", "", "", 0
		} else {
			// The update failed: keep the lock, halting the fleet.
			if st.Failed == nil {
				st.Failed = map[string]string{}
			}
			st.Failed[st.LockFor] = fmt.Sprintf("rebooted into it under the fleet lock, came back on %s", short(f.Booted))
			st.LockKept = st.LockFor
			st.LockFor, st.LockBootID = "", ""
		}
	}
	c, err := a.System.Check(ctx)
	if err != nil {
		s.Reason = "checking for an update: " + err.Error()
		return a.retry(st, s, err)
	}
	if c == nil || c.Checksum == f.Booted {
		s.Phase, s.Reason = PhaseUpToDate, "no update"
		if st.LockKept != "" {
			s.Reason = fmt.Sprintf("no update; fleet lock kept after the failed update to %s (release it with `strata fleetlock release %s`)", short(st.LockKept), a.NodeID)
		}
		st.Retries = 0
		return s, nil
	}
	s.Candidate = c.Checksum
	if why, ok := st.Failed[c.Checksum]; ok {
		s.Phase, s.Reason = PhaseUpToDate, fmt.Sprintf("not taking %s again: %s", short(c.Checksum), why)
		return s, nil
	}
	ro, err := ParseRollout(c.Metadata)
	if err != nil {
		s.Phase, s.Reason = PhaseDeadEnd, fmt.Sprintf("not taking %s: %v", short(c.Checksum), err)
		return s, nil
	}
	if ro.DeadEnd {
		s.Phase, s.Reason = PhaseDeadEnd, fmt.Sprintf("not taking %s: withdrawn (%s)", short(c.Checksum), ro.DeadEndReason)
		return s, nil
	}
	if ok, at := ro.Admit(now, c.Timestamp, a.wariness()); !ok {
		s.Phase = PhaseWaitRollout
		if !c.Timestamp.IsZero() && now.Before(c.Timestamp) {
			s.Reason = fmt.Sprintf("the clock (%s) is before %s's timestamp (%s)", now.UTC().Format(time.RFC3339), short(c.Checksum), c.Timestamp.UTC().Format(time.RFC3339))
		} else {
			s.Reason = fmt.Sprintf("phased rollout of %s at %.0f%%, this machine's wariness is %.3f", short(c.Checksum), 100*ro.Progress(now), a.wariness())
		}
		s.Until = at.UTC()
		return s, nil
	}
	if f.Staged != c.Checksum {
		if err := a.System.Stage(ctx, c); err != nil {
			s.Reason = "staging " + short(c.Checksum) + ": " + err.Error()
			return a.retry(st, s, err)
		}
		s.Staged = c.Checksum
	}
	switch a.Config.Strategy {
	case StrategyPeriodic:
		if in, _ := InWindow(a.Config.Windows, now, a.Config.Location); !in {
			s.Phase = PhaseWaitWindow
			s.Until = NextWindow(a.Config.Windows, now, a.Config.Location)
			s.Reason = fmt.Sprintf("%s is staged; next maintenance window at %s", short(c.Checksum), s.Until.Format(time.RFC3339))
			return s, nil
		}
	case StrategyFleetLock:
		if a.Locker == nil {
			return s, errors.New("strategy fleet_lock without a FleetLock client")
		}
		if err := a.Locker.PreReboot(ctx); err != nil {
			st.Retries++
			s.Phase = PhaseWaitLock
			s.Reason = fmt.Sprintf("%s is staged; no fleet lock from %s: %v", short(c.Checksum), a.Config.BaseURL, err)
			s.Until = now.Add(a.backoff(st.Retries)).UTC()
			return s, nil
		}
		// Record the lock before rebooting: a crash from here on keeps
		// it, and the next boot decides whether to release it.
		st.LockFor, st.LockBootID = c.Checksum, f.BootID
	}
	st.RebootFor, st.RebootBootID = c.Checksum, f.BootID
	st.Retries = 0
	if err := a.save(st); err != nil {
		return s, err
	}
	s.Phase, s.Reason = PhaseRebooting, "rebooting into "+short(c.Checksum)
	if err := a.System.Reboot(ctx); err != nil {
		s.Reason = "reboot into " + short(c.Checksum) + ": " + err.Error()
		return a.retry(st, s, err)
	}
	return s, nil
}

// Run steps until there is nothing to do (up to date, dead end,
// disabled), the reboot was started, or the next step is more than
// maxWait away; in between it sleeps on the Clock.
func (a *Agent) Run(ctx context.Context, maxWait time.Duration) (Status, error) {
	for {
		s, err := a.Step(ctx)
		if err != nil {
			return s, err
		}
		if s.Until.IsZero() || s.Phase == PhaseRebooting {
			return s, nil
		}
		d := s.Until.Sub(a.clock().Now())
		if d > maxWait {
			return s, nil
		}
		if d > 0 {
			if err := a.clock().Sleep(ctx, d); err != nil {
				return s, err
			}
		}
	}
}

func short(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	if c == "" {
		return "(none)"
	}
	return c
}
