package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func testRefs(t *testing.T, f *readFixture) {
	// ostree 2022.7 lists refs in hash-table order; strata sorts them.
	for _, args := range [][]string{
		{"refs"}, {"refs", "os"}, {"refs", "--list", "os"}, {"refs", "os/main"}, {"refs", "--list", "os/main"},
		{"refs", "os/ma"}, {"refs", "nosuch"}, {"refs", "origin"}, {"refs", "origin:"}, {"refs", "origin:os"},
		{"refs", "--list", "origin:os"}, {"refs", "os", "weird"}, {"refs", "-c"}, {"refs", "-c", "org.example.Os"},
	} {
		f.sameAsOstree(t, sortedLines, args...)
	}
	if got := f.strata(t, "refs"); got != sortedLines(got) {
		t.Errorf("refs not sorted:\n%s", got)
	}
	if got, want := f.strata(t, "refs", "-r", "os"), "main\t"+f.rev(t, "os/main")+"\nother\t"+f.rev(t, "os/other")+"\n"; got != want {
		t.Errorf("refs -r os: %q, want %q", got, want)
	}

	var refs []refJSON
	if err := json.Unmarshal([]byte(f.strata(t, "refs", "--json", "os")), &refs); err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 || refs[0] != (refJSON{Name: "os/main", Checksum: f.rev(t, "os/main")}) || refs[1].Name != "os/other" {
		t.Errorf("refs --json os: %+v", refs)
	}
	if err := json.Unmarshal([]byte(f.strata(t, "refs", "--json", "-c")), &refs); err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 || refs[0].CollectionID != "org.example.Os" || refs[0].Name != "mirror/x" || refs[1].CollectionID != "org.example.Rem" {
		t.Errorf("refs --json -c: %+v", refs)
	}

	// Changes, checked by ostree, on a copy.
	w := &readFixture{bin: f.bin, repo: f.copyRepo(t)}
	w.strata(t, "refs", "--create=a/b", "os/main^")
	w.strata(t, "refs", "--create=a/c", "weird")
	w.strata(t, "refs", "--create=origin:x", "os/main")
	w.strata(t, "refs", "-c", "--create=org.other:y", "os/main")
	w.strata(t, "refs", "--create=os/other", "--force", "weird")
	if got := w.rev(t, "a/b"); got != f.rev(t, "os/main^") {
		t.Errorf("created a/b = %s", got)
	}
	if got := w.rev(t, "os/other"); got != f.rev(t, "weird") {
		t.Errorf("forced os/other = %s", got)
	}
	if got := w.rev(t, "origin:x"); got != f.rev(t, "os/main") {
		t.Errorf("created origin:x = %s", got)
	}
	if got := w.ostree(t, "refs", "-c", "org.other"); got != "(org.other, y)\n" {
		t.Errorf("created collection ref: %q", got)
	}
	w.strata(t, "refs", "--delete", "a")
	w.strata(t, "refs", "--delete", "origin:x", "nosuch")
	if got := sortedLines(w.ostree(t, "refs")); got != "origin:os/main\nos/main\nos/other\nweird\n" {
		t.Errorf("after deletes, ostree lists:\n%s", got)
	}
	out, _, code := run(t, w.bin, "--repo="+w.repo, "refs", "--create=new", strings.Repeat("0", 64))
	if code != 1 || out != "" || strings.Contains(w.ostree(t, "refs"), "new") {
		t.Errorf("a ref to a missing commit was created (exit %d)", code)
	}
}
