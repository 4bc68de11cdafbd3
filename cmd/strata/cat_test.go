package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testCat(t *testing.T, f *readFixture) {
	for _, args := range [][]string{
		{"cat", "os/main", "/hello.txt"}, {"cat", "os/main^", "/hello.txt", "/etc/os-release", "/empty"},
		{"cat", "os/main", "/usr/share/large.bin"}, {"cat", "os/main", "/abs-link"}, {"cat", "os/main", "hello.txt"},
	} {
		f.sameAsOstree(t, nil, args...)
	}
	// Symlinks are followed inside the commit, also where ostree gives
	// up (relative targets with "..", links to directories).
	if got := f.strata(t, "cat", "os/main^", "/bin/rel-link", "/dir-link/large.bin"); !strings.HasPrefix(got, "hello, world\n0123456789abcdef") {
		t.Errorf("cat through symlinks: %.40q", got)
	}

	// A corrupt object: an error and not one byte of it on stdout.
	broken := &readFixture{bin: f.bin, repo: f.copyRepo(t)}
	sum := strings.Fields(f.ostree(t, "ls", "-C", "os/main", "/usr/share/large.bin"))[4]
	obj := filepath.Join(broken.repo, "objects", sum[:2], sum[2:]+".file")
	if f.mode == "archive" {
		obj += "z"
	}
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-20] ^= 0xff
	if err := os.WriteFile(obj, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := run(t, f.bin, "--repo="+broken.repo, "cat", "os/main", "/hello.txt", "/usr/share/large.bin")
	if code != 1 || out != "changed\n" || !strings.HasPrefix(errs, "error: ") || strings.Count(errs, "\n") != 1 {
		t.Errorf("cat of a corrupt object: exit %d, stdout %.60q, stderr %q", code, out, errs)
	}
}
