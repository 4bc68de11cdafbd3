package updates

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
)

// A strategy fragment that is a FIFO, a huge file or has unknown keys
// or a bad window fails at once, naming the file; nothing is read from
// a FIFO (no hang waiting for a writer).
func TestLoadConfigHostileFragments(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, p string)
		want string
	}{
		{"fifo", func(t *testing.T, p string) {
			if err := unix.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"huge", func(t *testing.T, p string) {
			b := bytes.Repeat([]byte("# padding\n"), (maxConfigSize/10)+1)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "larger than allowed"},
		{"unknown key", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("[updates]\nstratgy = \"immediate\"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "unknown key updates.stratgy"},
		{"bad window", func(t *testing.T, p string) {
			b := "[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Mon\"]\nstart_time = \"25:99\"\nlength_minutes = 60\n"
			if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "start_time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			p := filepath.Join(d, "50-x.toml")
			tc.make(t, p)
			done := make(chan error, 1)
			go func() { _, err := LoadConfig([]string{d}); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("LoadConfig hangs")
			}
		})
	}
}

// A corrupt, truncated or oversize state file stops the agent with an
// error naming it: no stage, no reboot, and the file left as it was
// (the operator's to look at), not half-rewritten.
func TestCorruptStateFileNeverReboots(t *testing.T) {
	cfg, _ := ParseConfig("i.toml", nil)
	for name, content := range map[string][]byte{
		"truncated":  []byte(`{"lock_for": "2222", "status": {"pha`),
		"garbage":    {0, 0xff, '{'},
		"wrong type": []byte(`{"retries": "many"}`),
		"huge":       append([]byte(`{"failed": {"x": "`), bytes.Repeat([]byte("a"), maxStateSize)...),
	} {
		t.Run(name, func(t *testing.T) {
			clk := &fakeClock{now: mustTime(t, "2026-12-07T10:00:00Z")}
			sys := &fakeSystem{booted: v1, offer: &Candidate{Checksum: v2}, clock: clk}
			p := filepath.Join(t.TempDir(), "state.json")
			if err := fsutil.WriteFile(p, content, 0o644); err != nil {
				t.Fatal(err)
			}
			a := &Agent{Config: cfg, System: sys, Clock: clk, StatePath: p, NodeID: "n"}
			_, err := a.Step(context.Background())
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Fatalf("%v", err)
			}
			if !errors.Is(err, errdefs.ErrCorrupt) && !errors.Is(err, fsutil.ErrTooLarge) {
				t.Fatalf("not a sentinel: %v", err)
			}
			if sys.staged != "" || len(sys.rebootReq) != 0 {
				t.Fatalf("staged %q, %d reboots", sys.staged, len(sys.rebootReq))
			}
			if b, _ := os.ReadFile(p); !bytes.Equal(b, content) {
				t.Fatal("state file rewritten")
			}
			if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 1 {
				t.Fatalf("left behind: %v", ents)
			}
		})
	}
}
