package main

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// Helpers shared by the CLI tests of this package.

// buildCLI builds the strata binary into a temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// crashTag is the build tag that compiles in the STRATA_CRASH_AT kill hook
// (crashhook.go); release builds leave it out.
const crashTag = "strata_crashtest"

// buildCrashCLI builds the strata binary with the STRATA_CRASH_AT kill
// hook, for the crash tests.
func buildCrashCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-tags", crashTag, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// runOut runs a command and returns its combined output.
func runOut(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
