package main

import (
	"encoding/json"
	"testing"
)

func testLs(t *testing.T, f *readFixture) {
	for _, args := range [][]string{
		{"ls", "os/main"}, {"ls", "-R", "os/main"}, {"ls", "-RC", "os/main"}, {"ls", "-RX", "os/main"},
		{"ls", "-R", "os/main^"}, {"ls", "-X", "os/main", "/hello.txt", "/etc", "/bin/tool"},
		{"ls", "-d", "os/main", "/usr"}, {"ls", "-dR", "os/main", "/usr"}, {"ls", "os/main", "/bin"},
		{"ls", "os/main", "bin", "/usr/share/large.bin", "/abs-link"}, {"ls", "-C", "os/main", "/"},
		{"ls", "-R", "--nul-filenames-only", "os/main"}, {"ls", "-R", "weird"},
	} {
		f.sameAsOstree(t, nil, args...)
	}

	var entries []entryJSON
	if err := json.Unmarshal([]byte(f.strata(t, "ls", "--json", "-R", "os/main", "/bin", "/etc", "/private")), &entries); err != nil {
		t.Fatal(err)
	}
	byPath := map[string]entryJSON{}
	for _, e := range entries {
		byPath[e.Path] = e
	}
	if len(entries) != len(byPath) || entries[0].Path != "/bin" {
		t.Errorf("ls --json order: %+v", entries)
	}
	for p, check := range map[string]func(e entryJSON) bool{
		"/bin": func(e entryJSON) bool {
			return e.Type == "dir" && e.Mode == 0o755 && len(e.Dirtree) == 64 && len(e.Dirmeta) == 64 && e.Checksum == ""
		},
		"/bin/suid": func(e entryJSON) bool {
			return e.Type == "file" && e.Mode == 0o4755 && e.Size == 14 && len(e.Checksum) == 64
		},
		"/bin/rel-link": func(e entryJSON) bool { return e.Type == "symlink" && e.Target == "../hello.txt" && e.Size == 0 },
		"/bin/tool":     func(e entryJSON) bool { return e.Mode == 0o700 && e.Xattrs["trusted.test"] == "74" },
		"/etc":          func(e entryJSON) bool { return e.Mode == 0o700 && e.Xattrs["user.dirattr"] == "64" },
		"/etc/sgid-dir": func(e entryJSON) bool { return e.Mode == 0o2775 && e.UID == 1000 && e.GID == 1000 },
		"/private":      func(e entryJSON) bool { return e.UID == 1234 && e.GID == 5678 && e.Mode == 0o600 },
	} {
		if e, ok := byPath[p]; !ok || !check(e) {
			t.Errorf("ls --json %s: %+v (found %v)", p, e, ok)
		}
	}
}
