package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// A worker's failure cancels the walker: the worker's error is the cause
// and is what Checkout returns (a corrupt object was reported as "context
// canceled" when the walker noticed the cancellation first).
func TestWalkErr(t *testing.T) {
	corrupt := fmt.Errorf("object ab: %w", ErrCorrupt)
	walkerStopped := fmt.Errorf("checkout x: %w", context.Canceled)
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name       string
		ctx        context.Context
		werr, gerr error
		want       error
	}{
		{"both nil", live, nil, nil, nil},
		{"worker failed", live, nil, corrupt, ErrCorrupt},
		{"walker failed", live, corrupt, nil, ErrCorrupt},
		{"walker saw the worker's cancellation", live, walkerStopped, corrupt, ErrCorrupt},
		{"caller cancelled", cancelled, walkerStopped, corrupt, context.Canceled},
	} {
		got := WalkErr(tc.ctx, tc.werr, tc.gerr)
		if tc.want == nil && got != nil || tc.want != nil && !errors.Is(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
