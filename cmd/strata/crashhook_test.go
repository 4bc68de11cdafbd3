package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReleaseBuildHasNoCrashHook: `go build ./cmd/strata` leaves the
// STRATA_CRASH_AT kill hook out (no symbol, not the variable's name, and a
// process given the variable is not killed), while the strata_crashtest
// build the crash tests use has it, so the check itself is known to see it.
func TestReleaseBuildHasNoCrashHook(t *testing.T) {
	for _, c := range []struct {
		name string
		bin  string
		hook bool
	}{{"release", buildCLI(t), false}, {crashTag, buildCrashCLI(t), true}} {
		t.Run(c.name, func(t *testing.T) {
			nm, err := exec.Command("go", "tool", "nm", c.bin).CombinedOutput()
			if err != nil {
				t.Fatalf("go tool nm: %v\n%s", err, nm)
			}
			if got := strings.Contains(string(nm), "main.installCrashHook"); got != c.hook {
				t.Errorf("symbol main.installCrashHook present: %v, want %v", got, c.hook)
			}
			data, err := os.ReadFile(c.bin)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(data, []byte("STRATA_CRASH_AT")); got != c.hook {
				t.Errorf("string STRATA_CRASH_AT present: %v, want %v", got, c.hook)
			}
			// Behaviour: the hook kills at sysroot:init-fs, the release
			// binary does its job.
			sr := filepath.Join(t.TempDir(), "sysroot")
			if err := os.Mkdir(sr, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(c.bin, "admin", "init-fs", sr)
			cmd.Env = append(os.Environ(), "STRATA_CRASH_AT=sysroot:init-fs")
			out, err := cmd.CombinedOutput()
			if killed := crashKilled(err); killed != c.hook || (!c.hook && err != nil) {
				t.Errorf("STRATA_CRASH_AT=sysroot:init-fs admin init-fs: %v, %s (want killed: %v)", err, out, c.hook)
			}
		})
	}
}
