package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestVersion checks `strata --version`: the version set at link time (or
// "devel" from a plain build) and the repository format strata writes.
func TestVersion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=1.2.3-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := runOut(t, bin, "--version")
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	want := "strata 1.2.3-test\nOSTree repository format 1 (repo_version=1), as ostree writes it\n"
	if out != want {
		t.Errorf("--version printed\n%q\nwant\n%q", out, want)
	}
	plain := buildCLI(t)
	out, err = runOut(t, plain, "--version")
	if err != nil || !strings.HasPrefix(out, "strata ") || !strings.HasSuffix(out, "\nOSTree repository format 1 (repo_version=1), as ostree writes it\n") {
		t.Errorf("--version of a plain build: %q, %v", out, err)
	}
}

// TestWarner checks that library warnings reach stderr with --verbose only.
func TestWarner(t *testing.T) {
	defer func(v bool) { globals.verbose = v }(globals.verbose)
	for _, verbose := range []bool{false, true} {
		globals.verbose = verbose
		var errOut bytes.Buffer
		cmd := &cobra.Command{}
		cmd.SetErr(&errOut)
		newWarner(cmd).Warn(errors.New("remove /x/.tmp-1: permission denied"))
		want := ""
		if verbose {
			want = "warning: remove /x/.tmp-1: permission denied\n"
		}
		if errOut.String() != want {
			t.Errorf("verbose=%v: stderr %q, want %q", verbose, errOut.String(), want)
		}
	}
}
