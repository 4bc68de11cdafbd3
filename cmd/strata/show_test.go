package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func testShow(t *testing.T, f *readFixture) {
	rootLine := strings.Fields(f.ostree(t, "ls", "-dC", "os/main", "/"))
	dirtree, dirmeta := rootLine[4], rootLine[5]
	fileOf := func(p string) string { return strings.Fields(f.ostree(t, "ls", "-C", "os/main", p))[4] }
	for _, args := range [][]string{
		{"show", "os/main"}, {"show", "os/main^"}, {"show", "--raw", "os/main"}, {"show", "-B", "os/main"},
		{"show", f.rev(t, "os/main")}, {"show", "origin:os/main"},
		{"show", "weird"}, {"show", "weird^"}, {"show", "--raw", "weird^"},
		{"show", "--print-metadata-key=version", "os/main^"},
		{"show", "--print-metadata-key=ostree.ref-binding", "os/main"},
		{"show", "--print-metadata-key=num", "weird^"},
		{"show", "--print-metadata-key=big", "weird^"},
		{"show", "--print-metadata-key=arr", "weird^"},
		{"show", "--print-metadata-key=flag", "weird^"},
		{"show", "-B", "--print-metadata-key=num", "weird^"},
		{"show", "--print-detached-metadata-key=sig", "weird"},
		{"show", "--print-related", "os/main"},
		{"show", dirtree}, {"show", "--raw", dirtree},
		{"show", dirmeta}, {"show", "--raw", dirmeta},
		{"show", fileOf("/hello.txt")}, {"show", fileOf("/bin/suid")}, {"show", fileOf("/abs-link")},
	} {
		f.sameAsOstree(t, nil, args...)
	}

	var c commitJSON
	if err := json.Unmarshal([]byte(f.strata(t, "show", "--json", "weird")), &c); err != nil {
		t.Fatal(err)
	}
	if c.Checksum != f.rev(t, "weird") || c.Subject != "multi\nline subject" || c.Date != "2030-05-06T07:08:10Z" ||
		c.Parent != f.rev(t, "weird^") || c.DetachedMetadata["sig"] != "abc" {
		t.Errorf("show --json weird: %+v", c)
	}
	c = commitJSON{}
	if err := json.Unmarshal([]byte(f.strata(t, "show", "--json", "weird^")), &c); err != nil {
		t.Fatal(err)
	}
	if c.Subject != "" || c.Body != "body line1\n\n  indented\nlast\n" || c.Version != "2.0" ||
		c.Metadata["flag"] != true || c.Metadata["num"] != float64(5) || c.DetachedMetadata != nil {
		t.Errorf("show --json weird^: %+v", c)
	}
}
