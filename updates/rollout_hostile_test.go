package updates

import (
	"errors"
	"testing"
	"time"

	"github.com/strata-os/strata/errdefs"
)

// Absurd rollout metadata is refused (ErrInvalid), never read as "the
// rollout is over": a duration or start that overflows time.Duration or
// time.Time would wrap negative and offer the commit to the whole fleet
// at once.
func TestRolloutAbsurdMetadataRefused(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, meta := range []map[string]string{
		{KeyStartEpoch: "1764547200", KeyDurationMinutes: "4294967295"},
		{KeyStartEpoch: "1764547200", KeyDurationMinutes: "153722868"},
		{KeyStartEpoch: "9223372036854775807"},
		{KeyStartEpoch: "253402300800"},
		{KeyStartEpoch: "99999999999999999999"},
		{KeyStartEpoch: "-1"},
		{KeyStartEpoch: "1764547200", KeyDurationMinutes: "-5"},
		{KeyStartEpoch: "1764547200", KeyStartValue: "NaN"},
		{KeyStartEpoch: "1764547200", KeyStartValue: "+Inf"},
		{KeyStartEpoch: "1764547200", KeyStartValue: "-0.1"},
		{KeyStartEpoch: "1764547200", KeyStartValue: "1e309"},
	} {
		r, err := ParseRollout(meta)
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%v: accepted (progress at %s: %v)", meta, now, r.Progress(now))
		}
	}
	// The largest accepted values still mean "slow", not "at once".
	r, err := ParseRollout(map[string]string{KeyStartEpoch: "1796083200", KeyDurationMinutes: "153722867"})
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Progress(now.Add(time.Hour)); p <= 0 || p > 0.001 {
		t.Fatalf("progress an hour into a 292-year rollout: %v", p)
	}
}
