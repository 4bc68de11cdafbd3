package repo

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/strata-os/strata/objects"
)

func TestValidateRefName(t *testing.T) {
	valid := []string{"main", "os/x86_64/stable", "a.b-c_d", "1", "x.", "_x", "a/_b", "a..b", "UP", "ü", "fedora/39/x86_64/silverblue", "a-"}
	invalid := []string{"", "/main", "main/", "a//b", ".hidden", "-x", "a b", "a:b", "a/../b", "a/./b", "tab\tx", "nl\n", "a\x00b", "star*", "q?", "a~1", "a^"}
	for _, n := range valid {
		if err := ValidateRefName(n); err != nil {
			t.Errorf("ValidateRefName(%q) = %v, want ok", n, err)
		}
	}
	for _, n := range invalid {
		if err := ValidateRefName(n); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateRefName(%q) = %v, want ErrInvalid", n, err)
		}
	}
}

// TestValidateRefNameMatchesOstree checks a few names against `ostree refs
// --create`, the reference.
func TestValidateRefNameMatchesOstree(t *testing.T) {
	r := newRepo(t, ModeArchive)
	c := commitTo(t, r, "main", "x", sampleFiles("x"))
	for _, n := range []string{"ü", "a b", ".x", "x.", "_x", "-x", "a..b", "x/", "a//b", "UP"} {
		out, err := exec.Command("ostree", "--repo="+r.Path(), "refs", "--create="+n, c.String()).CombinedOutput()
		ostreeOK := err == nil
		if ours := ValidateRefName(n) == nil; ours != ostreeOK {
			t.Errorf("ref %q: strata valid=%v, ostree valid=%v (%s)", n, ours, ostreeOK, strings.TrimSpace(string(out)))
		}
	}
}

func TestRefPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"main", "heads/main"},
		{"os/x86_64/stable", "heads/os/x86_64/stable"},
		{"origin:main", "remotes/origin/main"},
		{"origin:os/stable", "remotes/origin/os/stable"},
	} {
		got, err := RefPath(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("RefPath(%q) = %q, %v", tc.in, got, err)
		}
	}
	for _, bad := range []string{"", ":main", "origin:", "a:b:c", "../x", "origin/:x", ".o:main"} {
		if _, err := RefPath(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("RefPath(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestSetReadListRefs(t *testing.T) {
	r := newRepo(t, ModeBareUser)
	c1 := commitTo(t, r, "main", "one", sampleFiles("1"))
	c2 := commitTo(t, r, "os/stable", "two", sampleFiles("2"))
	if err := r.SetRef("remotes/origin/main", &c1); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRef("mirrors/org.example.Os/main", &c2); err != nil {
		t.Fatal(err)
	}
	// The file format is ostree's: the checksum and a newline.
	data, err := os.ReadFile(filepath.Join(r.Path(), "refs/heads/main"))
	if err != nil || string(data) != c1.String()+"\n" {
		t.Errorf("ref file = %q, %v", data, err)
	}
	refs, err := r.ListRefs()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ref := range refs {
		got = append(got, ref.Name+"="+ref.Checksum.String()[:8]+"@"+ref.Path)
	}
	want := []string{
		"main=" + c1.String()[:8] + "@heads/main",
		"os/stable=" + c2.String()[:8] + "@heads/os/stable",
		"(org.example.Os, main)=" + c2.String()[:8] + "@mirrors/org.example.Os/main",
		"origin:main=" + c1.String()[:8] + "@remotes/origin/main",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListRefs =\n%q\nwant\n%q", got, want)
	}
	// ostree agrees on what refs there are.
	out, err := exec.Command("ostree", "--repo="+r.Path(), "refs").Output()
	if err != nil {
		t.Fatal(err)
	}
	o := strings.Fields(string(out))
	sort.Strings(o)
	if !reflect.DeepEqual(o, []string{"main", "origin:main", "os/stable"}) {
		t.Errorf("ostree refs = %q", o)
	}

	// A ref to a commit that is not stored is refused.
	missing := objects.Sum([]byte("no such commit"))
	if err := r.SetRef("heads/dangling", &missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetRef to a missing commit: %v", err)
	}
	if _, err := r.ReadRef("heads/dangling"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused SetRef left a ref: %v", err)
	}
	for _, bad := range []string{"main", "heads/", "heads/../config", "tags/x", "remotes/origin", "remotes//main"} {
		if err := r.SetRef(bad, &c1); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetRef(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	// Delete.
	if err := r.SetRef("heads/os/stable", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadRef("heads/os/stable"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted ref still reads: %v", err)
	}
	if err := r.SetRef("heads/os/stable", nil); err != nil {
		t.Errorf("deleting a missing ref: %v", err)
	}
	// A corrupt ref file is reported as such.
	if err := os.WriteFile(filepath.Join(r.Path(), "refs/heads/broken"), []byte("not a checksum\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadRef("heads/broken"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadRef of a corrupt ref: %v", err)
	}
	checkNoTemp(t, r)
}

func checkNoTemp(t *testing.T, r *Repo) {
	t.Helper()
	filepath.WalkDir(r.Path(), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// TestResolveRev covers what users type for a commit, checked against
// `ostree rev-parse` where both can answer.
func TestResolveRev(t *testing.T) {
	r := newRepo(t, ModeArchive)
	c1 := commitTo(t, r, "main", "one", sampleFiles("1"))
	c2 := commitTo(t, r, "main", "two", sampleFiles("2"))
	c3 := commitTo(t, r, "main", "three", sampleFiles("3"))
	other := commitTo(t, r, "os/x86_64/stable", "other", sampleFiles("other"))
	if err := r.SetRef("remotes/origin/main", &c2); err != nil {
		t.Fatal(err)
	}
	// Enough orphan commits that some share a first hex digit.
	byFirst := map[byte][]objects.Checksum{}
	for _, c := range []objects.Checksum{c1, c2, c3, other} {
		byFirst[c.String()[0]] = append(byFirst[c.String()[0]], c)
	}
	for i := range 40 {
		tx, err := r.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		c := writeTree(t, tx, objects.Checksum{}, "orphan "+string(rune('a'+i)), sampleFiles("o"))
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		byFirst[c.String()[0]] = append(byFirst[c.String()[0]], c)
	}
	var ambiguous, unique string
	for k, cs := range byFirst {
		if len(cs) > 1 && ambiguous == "" {
			ambiguous = string(k)
		}
	}
	// A prefix unique among commits: c3's shortest unique prefix.
	for n := 1; n < 64 && unique == ""; n++ {
		p := c3.String()[:n]
		count := 0
		for _, cs := range byFirst {
			for _, c := range cs {
				if strings.HasPrefix(c.String(), p) {
					count++
				}
			}
		}
		if count == 1 {
			unique = p
		}
	}
	if ambiguous == "" {
		t.Fatal("no ambiguous one-digit prefix among 44 commits")
	}
	// A ref named like an abbreviated checksum loses to the checksum, as in
	// ostree.
	shadow := c1.String()[:7]
	if err := r.SetRef("heads/"+shadow, &other); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		rev     string
		want    objects.Checksum
		wantErr error
	}{
		{rev: "main", want: c3},
		{rev: "main^", want: c2},
		{rev: "main^^", want: c1},
		{rev: "main^^^", wantErr: ErrNotFound},
		{rev: "os/x86_64/stable", want: other},
		{rev: "origin:main", want: c2},
		{rev: "origin:main^", want: c1},
		{rev: "origin/main", want: c2},
		{rev: c1.String(), want: c1},
		{rev: c3.String() + "^", want: c2},
		{rev: c3.String()[:12], want: c3},
		{rev: c3.String()[:12] + "^^", want: c1},
		{rev: unique, want: c3},
		{rev: shadow, want: c1},
		{rev: ambiguous, wantErr: ErrInvalid},
		{rev: "nosuchref", wantErr: ErrNotFound},
		{rev: "origin:nosuch", wantErr: ErrNotFound},
		{rev: "nosuch:main", wantErr: ErrNotFound},
		{rev: strings.ToUpper(c1.String()[:8]), wantErr: ErrNotFound},
		{rev: "", wantErr: ErrNotFound},
		{rev: "bad ref", wantErr: ErrNotFound},
	}
	for _, tc := range tests {
		got, err := r.ResolveRev(tc.rev)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("ResolveRev(%q) = %v, %v; want %v", tc.rev, got, err, tc.wantErr)
			}
		} else if err != nil || got != tc.want {
			t.Errorf("ResolveRev(%q) = %v, %v; want %v", tc.rev, got, err, tc.want)
		}
		// ostree answers the same (it has no remote "origin" configured,
		// so skip remote refs).
		if strings.Contains(tc.rev, "origin") || tc.rev == "" {
			continue
		}
		out, oerr := exec.Command("ostree", "--repo="+r.Path(), "rev-parse", tc.rev).Output()
		if (oerr == nil) != (tc.wantErr == nil) {
			t.Errorf("ostree rev-parse %q: %v (%s); strata: %v", tc.rev, oerr, out, err)
		} else if oerr == nil && strings.TrimSpace(string(out)) != tc.want.String() {
			t.Errorf("ostree rev-parse %q = %s, strata %v", tc.rev, out, tc.want)
		}
	}

	// A missing parent object is an error naming it, not a zero checksum.
	if err := os.Remove(r.ObjectPath(objects.KindCommit, c1)); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ResolveRev("main^^^"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), c1.String()) {
		t.Errorf("ResolveRev past a missing parent = %v, %v", got, err)
	}
	if got, err := r.ResolveRev("main^^"); err != nil || got != c1 {
		t.Errorf("main^^ with the parent object missing = %v, %v (the ref chain still names it)", got, err)
	}
}
