package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func testLog(t *testing.T, f *readFixture) {
	for _, args := range [][]string{
		{"log", "os/main"}, {"log", "--raw", "os/main"}, {"log", "os/main^"},
		{"log", "weird"}, {"log", "--raw", "weird"}, {"log", f.rev(t, "os/main")[:12]},
	} {
		f.sameAsOstree(t, nil, args...)
	}

	// A history whose parent is not stored ends with ostree's note.
	shallow := &readFixture{bin: f.bin, repo: f.copyRepo(t)}
	first := f.rev(t, "os/main^")
	if err := os.Remove(filepath.Join(shallow.repo, "objects", first[:2], first[2:]+".commit")); err != nil {
		t.Fatal(err)
	}
	shallow.sameAsOstree(t, nil, "log", "os/main")

	var commits []commitJSON
	if err := json.Unmarshal([]byte(f.strata(t, "log", "--json", "os/main")), &commits); err != nil {
		t.Fatal(err)
	}
	if len(commits) != 2 {
		t.Fatalf("log --json: %d commits, want 2", len(commits))
	}
	c0, c1 := commits[0], commits[1]
	if c0.Checksum != f.rev(t, "os/main") || c0.Parent != first || c0.Subject != "second" || c0.Body != "a body\nof two lines" ||
		c0.Timestamp != 1704189600 || c0.Date != "2024-01-02T10:00:00Z" || c0.Version != "" {
		t.Errorf("log --json newest: %+v", c0)
	}
	if c1.Checksum != first || c1.Parent != "" || c1.Version != "1.0" || c1.Metadata["version"] != "1.0" || c1.Timestamp != 1704067200 {
		t.Errorf("log --json oldest: %+v", c1)
	}
	if b, ok := c1.Metadata["ostree.ref-binding"].([]any); !ok || len(b) != 1 || b[0] != "os/main" {
		t.Errorf("log --json ref binding: %#v", c1.Metadata["ostree.ref-binding"])
	}
	for _, c := range commits {
		if len(c.ContentChecksum) != 64 || len(c.RootDirtree) != 64 || len(c.RootDirmeta) != 64 {
			t.Errorf("log --json checksums: %+v", c)
		}
	}
}
