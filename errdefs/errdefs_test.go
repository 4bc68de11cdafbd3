package errdefs

import (
	"fmt"
	"os"
	"testing"
)

func TestWrapping(t *testing.T) {
	err := fmt.Errorf("object %s: %w", "ab12", ErrCorrupt)
	if !IsCorrupt(err) || IsNotFound(err) {
		t.Fatalf("IsCorrupt/IsNotFound wrong for %v", err)
	}
	// An I/O error is not corruption, even wrapped beside it in a message.
	io := fmt.Errorf("reading ab12: %w", os.ErrPermission)
	if IsCorrupt(io) {
		t.Fatalf("%v reported as corrupt", io)
	}
	for _, e := range []error{ErrNotFound, ErrExists, ErrInvalid, ErrCorrupt} {
		n := 0
		for _, f := range []func(error) bool{IsNotFound, IsExists, IsInvalid, IsCorrupt} {
			if f(e) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%v matched %d predicates, want 1", e, n)
		}
	}
}
