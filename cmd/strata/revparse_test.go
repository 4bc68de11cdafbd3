package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func testRevParse(t *testing.T, f *readFixture) {
	head := f.rev(t, "os/main")
	for _, args := range [][]string{
		{"rev-parse", "os/main"}, {"rev-parse", "os/main^"}, {"rev-parse", "origin:os/main"}, {"rev-parse", "origin/os/main"},
		{"rev-parse", head}, {"rev-parse", head[:10]}, {"rev-parse", "os/main", "weird^", "os/other"},
		{"rev-parse", "weird^^"}, {"rev-parse", "nosuch"}, {"rev-parse", strings.ToUpper(head)},
	} {
		f.sameAsOstree(t, nil, args...)
	}
	if out, err := runOut(t, f.bin, "--repo="+f.repo, "rev-parse", "os/main^"); err != nil || out != f.rev(t, "os/main^")+"\n" {
		t.Errorf("rev-parse os/main^: %v %q", err, out)
	}
	// --single: exactly one commit in the repository.
	one := &readFixture{bin: f.bin, repo: filepath.Join(t.TempDir(), "repo")}
	one.strata(t, "init")
	one.strata(t, "commit", "-b", "x", "--tree=dir="+t.TempDir(), "-s", "only")
	one.sameAsOstree(t, nil, "rev-parse", "--single")
	if got := strings.TrimSpace(one.strata(t, "rev-parse", "-S")); got != strings.TrimSpace(one.ostree(t, "rev-parse", "x")) {
		t.Errorf("rev-parse -S: %q", got)
	}
}
