package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sortedGroups sorts lines within each run of one change letter: for a
// directory on disk ostree follows readdir order, strata name order.
func sortedGroups(s string) string {
	var out []string
	var group []string
	flush := func() {
		out = append(out, sortedLines(strings.Join(group, "")))
		group = nil
	}
	for _, l := range strings.SplitAfter(s, "\n") {
		if len(group) > 0 && (l == "" || l[0] != group[0][0]) {
			flush()
		}
		if l != "" {
			group = append(group, l)
		}
	}
	if len(group) > 0 {
		flush()
	}
	return strings.Join(out, "")
}

func testDiff(t *testing.T, f *readFixture) {
	for _, args := range [][]string{
		{"diff", "os/main^", "os/main"}, {"diff", "os/main", "os/main^"}, {"diff", "os/main"}, {"diff", "os/main", "os/main"},
		{"diff", "os/main^", "weird"}, {"diff", "--stats", "os/main^", "os/main"}, {"diff", "--stats", "--fs-diff", "os/main", "os/main^"},
	} {
		f.sameAsOstree(t, nil, args...)
	}

	// Against directories on disk.
	dir := filepath.Join(t.TempDir(), "d")
	f.mustRun(t, "cp", "-a", f.src, dir)
	for _, args := range [][]string{
		{"diff", "os/main", f.src}, {"diff", "os/main^", f.src}, {"diff", f.firstDir, "os/main"}, {"diff", f.src, f.firstDir},
	} {
		f.sameAsOstree(t, sortedGroups, args...)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("CHANGED\n"), 0o644)) // same size
	must(os.Remove(filepath.Join(dir, "private")))
	must(os.MkdirAll(filepath.Join(dir, "added/deeper"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "added/deeper/f"), nil, 0o644))
	must(os.Chmod(filepath.Join(dir, "etc/os-release"), 0o600))
	must(os.Lchown(filepath.Join(dir, "empty"), 5, 5))
	must(os.Remove(filepath.Join(dir, "newdir/sub/f")))
	must(os.Remove(filepath.Join(dir, "newdir/sub")))
	must(os.Symlink("elsewhere", filepath.Join(dir, "newdir/sub")))
	for _, args := range [][]string{
		{"diff", "os/main", dir}, {"diff", dir, "os/main"}, {"diff", "--no-xattrs", "os/main", dir},
		{"diff", "--owner-uid=5", "--owner-gid=5", "os/main", dir}, {"diff", f.src, dir},
	} {
		f.sameAsOstree(t, sortedGroups, args...)
	}
	var doc diffJSON
	if err := json.Unmarshal([]byte(f.strata(t, "diff", "--json", "--stats", "--fs-diff", "os/main^", "os/main")), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Changes == nil || doc.Stats == nil || doc.Stats.CommonObjects == 0 || doc.Stats.CommonObjectBytes == 0 {
		t.Fatalf("diff --json: %+v", doc)
	}
	kinds := map[string]changeJSON{}
	for _, c := range *doc.Changes {
		kinds[c.Path] = c
	}
	for p, want := range map[string]changeJSON{
		"/hello.txt":    {"modified", "/hello.txt", false},
		"/readonly":     {"removed", "/readonly", false},
		"/var":          {"removed", "/var", true},
		"/newdir/sub":   {"added", "/newdir/sub", true},
		"/empty-dir":    {"modified", "/empty-dir", true},
		"/dir-link":     {"modified", "/dir-link", false},
		"/etc":          {"modified", "/etc", true},
		"/bin/zz":       {"added", "/bin/zz", false},
		"/newdir/sub/f": {"added", "/newdir/sub/f", false},
	} {
		if kinds[p] != want {
			t.Errorf("diff --json %s: %+v, want %+v", p, kinds[p], want)
		}
	}
	if len(kinds) != 11 {
		t.Errorf("diff --json: %d changes, want 11: %+v", len(kinds), *doc.Changes)
	}
	doc = diffJSON{}
	if err := json.Unmarshal([]byte(f.strata(t, "diff", "--json", "--stats", "os/main^", "os/main")), &doc); err != nil || doc.Changes != nil || doc.Stats == nil {
		t.Errorf("diff --json --stats alone: %v %+v", err, doc)
	}
}

func TestGSize(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 bytes", 1: "1 byte", 999: "999 bytes", 1000: "1.0\u00a0kB", 10702: "10.7\u00a0kB",
		3<<20 + 17: "3.1\u00a0MB", 5e9: "5.0\u00a0GB", 2e12: "2.0\u00a0TB",
		221: "221 bytes", 1234567: "1.2\u00a0MB", 3e9: "3.0\u00a0GB", 999999999: "1000.0\u00a0MB",
	} {
		if got := gSize(n); got != want {
			t.Errorf("gSize(%d) = %q, want %q", n, got, want)
		}
	}
}
