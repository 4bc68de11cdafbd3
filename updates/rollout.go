package updates

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/strata-os/strata/errdefs"
)

// Commit (or image label) metadata keys of a phased rollout. The names
// are those Fedora CoreOS's Cincinnati graph carries for each release
// (org.fedoraproject.coreos.updates.*), under strata's prefix; the
// Fedora names are read too. Values are strings (ostree commit
// --add-metadata-string), as in Cincinnati's graph.
const (
	KeyStartEpoch      = "strata.updates.start_epoch"      // rollout start, seconds since the epoch
	KeyStartValue      = "strata.updates.start_value"      // share of the fleet offered at the start, 0..1 (default 0)
	KeyDurationMinutes = "strata.updates.duration_minutes" // time from start_value to the whole fleet
	KeyDeadEnd         = "strata.updates.deadend"          // "true": withdrawn, never taken
	KeyDeadEndReason   = "strata.updates.deadend_reason"
	// KeyEndOfLife is ostree's own "this ref is dead" key
	// (OSTREE_COMMIT_META_KEY_ENDOFLIFE); its value is the reason.
	KeyEndOfLife = "ostree.endoflife"

	fcosPrefix = "org.fedoraproject.coreos.updates."
)

// Rollout is what a commit's metadata says about how to take it.
type Rollout struct {
	// Phased is true when the metadata has a rollout start.
	Phased     bool
	Start      time.Time
	StartValue float64
	Duration   time.Duration
	// DeadEnd marks a withdrawn commit: never taken.
	DeadEnd       bool
	DeadEndReason string
}

// Bounds of the rollout values that time.Time and time.Duration hold.
const (
	maxEpoch           = 253402300799 // 9999-12-31T23:59:59Z
	maxDurationMinutes = uint64(math.MaxInt64 / time.Minute)
)

func lookup(meta map[string]string, key string) (string, bool) {
	if v, ok := meta[key]; ok {
		return v, true
	}
	v, ok := meta[fcosPrefix+strings.TrimPrefix(key, "strata.updates.")]
	return v, ok
}

// ParseRollout reads the rollout keys of a commit's metadata.
func ParseRollout(meta map[string]string) (Rollout, error) {
	var r Rollout
	if v, ok := lookup(meta, KeyDeadEnd); ok && strings.EqualFold(strings.TrimSpace(v), "true") {
		r.DeadEnd = true
		r.DeadEndReason, _ = lookup(meta, KeyDeadEndReason)
	}
	if v, ok := meta[KeyEndOfLife]; ok {
		r.DeadEnd = true
		if r.DeadEndReason == "" {
			r.DeadEndReason = v
		}
	}
	se, ok := lookup(meta, KeyStartEpoch)
	if !ok {
		return r, nil
	}
	secs, err := strconv.ParseInt(strings.TrimSpace(se), 10, 64)
	// Past year 9999 time.Unix wraps into the past: the rollout would
	// look long over and the whole fleet would take the commit at once.
	if err != nil || secs < 0 || secs > maxEpoch {
		return r, fmt.Errorf("%w: %s %q: want seconds since the epoch, at most year 9999", errdefs.ErrInvalid, KeyStartEpoch, se)
	}
	r.Phased, r.Start = true, time.Unix(secs, 0).UTC()
	if v, ok := lookup(meta, KeyStartValue); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return r, fmt.Errorf("%w: %s %q: want 0.0 to 1.0", errdefs.ErrInvalid, KeyStartValue, v)
		}
		r.StartValue = f
	}
	if v, ok := lookup(meta, KeyDurationMinutes); ok {
		// More minutes than a time.Duration holds (~292 years) would wrap
		// negative: "no duration", the whole fleet at once.
		m, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil || m > maxDurationMinutes {
			return r, fmt.Errorf("%w: %s %q: want minutes, at most %d", errdefs.ErrInvalid, KeyDurationMinutes, v, maxDurationMinutes)
		}
		r.Duration = time.Duration(m) * time.Minute
	}
	return r, nil
}

// Progress is the share of the fleet offered the commit at now, in
// [0, 1]: 0 before the start, StartValue at the start, rising linearly
// to 1 at Start+Duration, 1 afterwards (and at once with no duration).
// A commit without a rollout is offered to all (1).
func (r Rollout) Progress(now time.Time) float64 {
	if !r.Phased {
		return 1
	}
	if now.Before(r.Start) {
		return 0
	}
	if r.Duration <= 0 {
		return 1
	}
	p := r.StartValue + float64(now.Sub(r.Start))/float64(r.Duration)*(1-r.StartValue)
	return math.Min(1, math.Max(0, p))
}

// Admit decides whether a machine of wariness w (0 eager .. 1 wary)
// takes the commit now. A machine whose clock is before the commit's
// own timestamp waits, whatever the rollout says: its clock is wrong
// (or the commit's), and a wrong clock must not start a rollout early.
// When it must wait, at is when it may take it (zero: when the clock is
// right again).
func (r Rollout) Admit(now, commitTime time.Time, w float64) (ok bool, at time.Time) {
	if r.DeadEnd {
		return false, time.Time{}
	}
	if !r.Phased {
		return true, time.Time{}
	}
	if !commitTime.IsZero() && now.Before(commitTime) {
		return false, commitTime
	}
	if w < r.Progress(now) {
		return true, time.Time{}
	}
	// Progress passes w at Start + (w-StartValue)/(1-StartValue)*Duration.
	if w < r.StartValue || r.Duration <= 0 {
		return false, r.Start
	}
	f := (w - r.StartValue) / (1 - r.StartValue)
	at = r.Start.Add(time.Duration(f*float64(r.Duration)) + time.Second)
	return false, at
}

// appID makes strata's application-specific machine id, as
// sd_id128_get_machine_app_specific() does for an application: so the id
// sent to a FleetLock server does not reveal /etc/machine-id.
var appID, _ = hex.DecodeString("ca771850f2924a1db9ce4f5799a4571b")

// NodeUUID derives this machine's id (32 lowercase hex digits) from the
// contents of /etc/machine-id: HMAC-SHA256 keyed by the machine id over
// strata's application id, first 16 bytes, marked as a v4 UUID.
func NodeUUID(machineID string) (string, error) {
	mid, err := hex.DecodeString(strings.TrimSpace(machineID))
	if err != nil || len(mid) != 16 {
		return "", fmt.Errorf("%w: machine-id %q: want 32 hex digits", errdefs.ErrInvalid, strings.TrimSpace(machineID))
	}
	h := hmac.New(sha256.New, mid)
	h.Write(appID)
	sum := h.Sum(nil)[:16]
	sum[6] = sum[6]&0x0f | 0x40
	sum[8] = sum[8]&0x3f | 0x80
	return hex.EncodeToString(sum), nil
}

// Wariness maps a node id to [0, 1), uniformly over ids: the first 8
// bytes of SHA-256("strata-rollout-wariness:" + id) over 2^64.
func Wariness(nodeUUID string) float64 {
	s := sha256.Sum256([]byte("strata-rollout-wariness:" + nodeUUID))
	return float64(binary.BigEndian.Uint64(s[:8])>>11) / float64(uint64(1)<<53)
}
