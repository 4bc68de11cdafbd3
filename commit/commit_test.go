package commit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	. "github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// smallTree makes a directory with the given files.
func smallTree(t *testing.T, files map[string]string) string {
	t.Helper()
	d := t.TempDir()
	os.Chmod(d, 0o755)
	for name, data := range files {
		p := filepath.Join(d, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// commitTree commits src with o and commits the transaction (unless the
// commit was skipped).
func commitTree(t *testing.T, r *repo.Repo, o Options, srcs ...string) (Result, error) {
	t.Helper()
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	m := NewMTree(nil)
	for _, src := range srcs {
		if err := AddDir(context.Background(), tx, m, src, Filter{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Write(context.Background(), tx, m, o)
	if err != nil {
		return res, err
	}
	if !res.Skipped {
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	return res, nil
}

func mustCommit(t *testing.T, r *repo.Repo, o Options, srcs ...string) objects.Checksum {
	t.Helper()
	res, err := commitTree(t, r, o, srcs...)
	if err != nil {
		t.Fatal(err)
	}
	return res.Checksum
}

func readCommit(t *testing.T, r *repo.Repo, c objects.Checksum) *objects.Commit {
	t.Helper()
	cm, err := r.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

func metaKeys(md objects.Metadata) []string {
	var out []string
	for _, e := range md {
		out = append(out, e.Key)
	}
	return out
}

var commitTS = time.Unix(1700000000, 0)

func TestWriteParentsAndRefs(t *testing.T) {
	r := newTestRepo(t, repo.ModeArchive)
	a := smallTree(t, map[string]string{"f": "a"})
	b := smallTree(t, map[string]string{"f": "b"})
	c1 := mustCommit(t, r, Options{Branch: "main", Subject: "one", Body: "body", Timestamp: commitTS}, a)
	cm := readCommit(t, r, c1)
	if !cm.Parent.IsZero() || cm.Subject != "one" || cm.Body != "body" || cm.Timestamp != 1700000000 {
		t.Errorf("first commit = %+v", cm)
	}
	if got, _ := r.ReadRef("heads/main"); got != c1 {
		t.Errorf("main = %v, want %v", got, c1)
	}
	// The branch's commit becomes the parent.
	c2 := mustCommit(t, r, Options{Branch: "main", Timestamp: commitTS}, b)
	if p := readCommit(t, r, c2).Parent; p != c1 {
		t.Errorf("parent = %v, want %v", p, c1)
	}
	// An explicit zero parent means none.
	var none objects.Checksum
	c3 := mustCommit(t, r, Options{Branch: "main", Subject: "one", Body: "body", Parent: &none, Timestamp: commitTS}, a)
	if p := readCommit(t, r, c3).Parent; !p.IsZero() {
		t.Errorf("parent = %v, want none", p)
	}
	if c3 != c1 {
		t.Errorf("same tree, metadata and timestamp without a parent gave %v, want %v", c3, c1)
	}
	// An explicit parent on another branch.
	c4 := mustCommit(t, r, Options{Branch: "side", Parent: &c2, Timestamp: commitTS}, b)
	if p := readCommit(t, r, c4).Parent; p != c2 {
		t.Errorf("parent = %v, want %v", p, c2)
	}
	// A remote ref.
	c5 := mustCommit(t, r, Options{Branch: "origin:main", Timestamp: commitTS}, a)
	if got, _ := r.ReadRef("remotes/origin/main"); got != c5 {
		t.Errorf("remotes/origin/main = %v", got)
	}
	// An orphan writes no ref.
	before, _ := r.ListRefs()
	c6 := mustCommit(t, r, Options{Orphan: true, Timestamp: commitTS.Add(time.Second)}, b)
	after, _ := r.ListRefs()
	if !reflect.DeepEqual(before, after) {
		t.Errorf("orphan commit changed refs: %v -> %v", before, after)
	}
	if ok, _ := r.HasObject(objects.KindCommit, c6); !ok {
		t.Error("orphan commit not stored")
	}
	// Without a timestamp, now.
	c7 := mustCommit(t, r, Options{Orphan: true}, a)
	if d := time.Since(time.Unix(int64(readCommit(t, r, c7).Timestamp), 0)); d < 0 || d > time.Minute {
		t.Errorf("default timestamp is %v ago", d)
	}
}

func TestWriteErrors(t *testing.T) {
	r := newTestRepo(t, repo.ModeBareUser)
	a := smallTree(t, map[string]string{"f": "a"})
	for _, o := range []Options{{}, {Branch: "bad name"}, {Branch: "/x"}, {Branch: "a:b:c"}} {
		if _, err := commitTree(t, r, o, a); !errors.Is(err, repo.ErrInvalid) {
			t.Errorf("Options %+v: err = %v, want ErrInvalid", o, err)
		}
	}
	n := 0
	r.ListObjects(func(repo.ObjectRef) error { n++; return nil }, nil)
	if n != 0 {
		t.Errorf("%d objects stored by refused commits", n)
	}
}

func TestWriteBindingsAndMetadata(t *testing.T) {
	a := smallTree(t, map[string]string{"f": "a"})
	str := func(s string) gvariant.Variant { return gvariant.Variant{Type: gvariant.MustParseType("s"), Value: s} }
	md := objects.Metadata{{Key: "zeta", Value: str("1")}, {Key: "alpha", Value: str("2")}, {Key: "zeta", Value: str("3")}}
	tests := []struct {
		name     string
		coll     string
		o        Options
		wantKeys []string
		wantRefs []string
	}{
		{"branch", "", Options{Branch: "main"}, []string{"ostree.ref-binding"}, []string{"main"}},
		{"metadata first, in order, duplicates kept", "", Options{Branch: "main", Metadata: md},
			[]string{"zeta", "alpha", "zeta", "ostree.ref-binding"}, []string{"main"}},
		{"bind refs sorted", "", Options{Branch: "m", BindRefs: []string{"z", "a"}}, []string{"ostree.ref-binding"}, []string{"a", "m", "z"}},
		{"orphan binds an empty list", "", Options{Orphan: true}, []string{"ostree.ref-binding"}, []string{}},
		{"no bindings", "org.example.Os", Options{Branch: "main", NoBindings: true, BindRefs: []string{"x"}}, nil, nil},
		{"collection", "org.example.Os", Options{Branch: "main"}, []string{"ostree.ref-binding", "ostree.collection-binding"}, []string{"main"}},
		{"ref binding appended even if given", "", Options{Branch: "main", Metadata: objects.Metadata{{Key: "ostree.ref-binding", Value: str("mine")}}},
			[]string{"ostree.ref-binding", "ostree.ref-binding"}, nil},
		{"collection binding kept if given", "org.example.Os", Options{Branch: "main", Metadata: objects.Metadata{{Key: "ostree.collection-binding", Value: str("mine")}}},
			[]string{"ostree.collection-binding", "ostree.ref-binding"}, []string{"main"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeArchive, repo.InitOptions{CollectionID: tc.coll})
			if err != nil {
				t.Fatal(err)
			}
			tc.o.Timestamp = commitTS
			c := mustCommit(t, r, tc.o, a)
			cm := readCommit(t, r, c)
			if got := metaKeys(cm.Metadata); !reflect.DeepEqual(got, tc.wantKeys) {
				t.Errorf("metadata keys = %q, want %q", got, tc.wantKeys)
			}
			if tc.wantRefs != nil {
				v, _ := cm.Metadata.Get("ostree.ref-binding")
				got, _ := v.Value.([]string)
				if got == nil {
					got = []string{}
					for _, x := range asAnySlice(v.Value) {
						got = append(got, x.(string))
					}
				}
				if !reflect.DeepEqual(got, tc.wantRefs) {
					t.Errorf("ref binding = %q, want %q", got, tc.wantRefs)
				}
			}
			if tc.coll != "" && !tc.o.NoBindings {
				want := tc.coll
				if _, given := tc.o.Metadata.Get("ostree.collection-binding"); given {
					want = "mine"
				}
				if got, _ := cm.Metadata.String("ostree.collection-binding"); got != want {
					t.Errorf("collection binding = %q, want %q", got, want)
				}
			}
		})
	}
}

func asAnySlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func TestSkipIfUnchanged(t *testing.T) {
	r := newTestRepo(t, repo.ModeBareUser)
	a := smallTree(t, map[string]string{"f": "a"})
	b := smallTree(t, map[string]string{"f": "b"})
	c1 := mustCommit(t, r, Options{Branch: "main", Timestamp: commitTS}, a)
	res, err := commitTree(t, r, Options{Branch: "main", SkipIfUnchanged: true, Timestamp: commitTS.Add(time.Hour)}, a)
	if err != nil || !res.Skipped || res.Checksum != c1 {
		t.Errorf("unchanged: %+v, %v; want skipped with %v", res, err, c1)
	}
	if got, _ := r.ReadRef("heads/main"); got != c1 {
		t.Errorf("main moved to %v", got)
	}
	res, err = commitTree(t, r, Options{Branch: "main", SkipIfUnchanged: true, Timestamp: commitTS.Add(time.Hour)}, b)
	if err != nil || res.Skipped || res.Checksum == c1 {
		t.Errorf("changed: %+v, %v", res, err)
	}
	// A new branch has no parent to compare with: it commits.
	res, err = commitTree(t, r, Options{Branch: "fresh", SkipIfUnchanged: true, Timestamp: commitTS}, a)
	if err != nil || res.Skipped {
		t.Errorf("new branch: %+v, %v", res, err)
	}
}

func TestAddRef(t *testing.T) {
	r := newTestRepo(t, repo.ModeArchive)
	a := smallTree(t, map[string]string{"f": "a", "d/x": "x", "d/e/y": "y"})
	over := smallTree(t, map[string]string{"f": "over", "d/e/z": "z", "n/new": "n"})
	base := mustCommit(t, r, Options{Branch: "base", Timestamp: commitTS}, a)
	baseCommit := readCommit(t, r, base)

	// A ref alone keeps the tree as it is.
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	m := NewMTree(nil)
	if err := AddRef(tx, m, "base"); err != nil {
		t.Fatal(err)
	}
	tree, meta, err := m.Write(tx)
	if err != nil {
		t.Fatal(err)
	}
	if tree != baseCommit.RootTree || meta != baseCommit.RootMeta {
		t.Errorf("ref-only tree = %v/%v, want the ref's %v/%v", tree, meta, baseCommit.RootTree, baseCommit.RootMeta)
	}
	// Ref then directory equals committing the two directories.
	m = NewMTree(nil)
	if err := AddRef(tx, m, "base"); err != nil {
		t.Fatal(err)
	}
	if err := AddDir(context.Background(), tx, m, over, Filter{}, nil); err != nil {
		t.Fatal(err)
	}
	viaRef, _, err := m.Write(tx)
	if err != nil {
		t.Fatal(err)
	}
	m = NewMTree(nil)
	for _, src := range []string{a, over} {
		if err := AddDir(context.Background(), tx, m, src, Filter{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	viaDirs, _, err := m.Write(tx)
	if err != nil {
		t.Fatal(err)
	}
	if viaRef != viaDirs {
		t.Errorf("ref+dir tree %v != dir+dir tree %v", viaRef, viaDirs)
	}
	// Directory then ref: the ref's files win.
	m = NewMTree(nil)
	if err := AddDir(context.Background(), tx, m, over, Filter{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := AddRef(tx, m, base.String()[:10]); err != nil {
		t.Fatal(err)
	}
	m2 := NewMTree(nil)
	for _, src := range []string{over, a} {
		if err := AddDir(context.Background(), tx, m2, src, Filter{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	t1, _, err1 := m.Write(tx)
	t2, _, err2 := m2.Write(tx)
	if err1 != nil || err2 != nil || t1 != t2 {
		t.Errorf("dir+ref tree %v (%v) != dir+dir tree %v (%v)", t1, err1, t2, err2)
	}
	if err := AddRef(tx, NewMTree(nil), "no-such-ref"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("missing ref: %v", err)
	}
}

func TestMTreeDirectoryWithoutMetadata(t *testing.T) {
	r := newTestRepo(t, repo.ModeBareUser)
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	if _, _, err := NewMTree(nil).Write(tx); err == nil {
		t.Error("writing a directory without metadata succeeded")
	}
	m := NewMTree(&objects.DirMeta{Mode: objects.ModeDir | 0o755})
	if _, err := m.Dir(r, "..", nil); err == nil {
		t.Error("Dir(\"..\") accepted")
	}
	if _, err := m.SetFile(r, "a/b"); err == nil {
		t.Error("SetFile(\"a/b\") accepted")
	}
}
