package diff_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/diff"
	"github.com/strata-os/strata/internal/testrepo"
	"github.com/strata-os/strata/internal/testtree"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/tree"
)

func newRepo(t *testing.T, mode repo.Mode) *repo.Repo { return testrepo.New(t, mode) }

// commitDir commits src on branch main and returns the commit.
func commitDir(t *testing.T, r *repo.Repo, src string) objects.Checksum {
	return testrepo.CommitDir(t, r, "main", src)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p, data string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(data), 0o644))
}

// small builds a little tree that every mutation below touches.
func small(t *testing.T) string {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a"), "a")
	write(t, filepath.Join(dir, "b"), "b")
	write(t, filepath.Join(dir, "mode"), "m")
	write(t, filepath.Join(dir, "todir"), "becomes a dir")
	write(t, filepath.Join(dir, "d/x"), "x")
	write(t, filepath.Join(dir, "d/sub/y"), "y")
	write(t, filepath.Join(dir, "gone/deep/z"), "z")
	write(t, filepath.Join(dir, "same/deep/w"), "w")
	write(t, filepath.Join(dir, "tolink/f"), "f")
	must(t, os.Symlink("a", filepath.Join(dir, "link")))
	return dir
}

func mutate(t *testing.T, dir string) {
	write(t, filepath.Join(dir, "a"), "changed")
	must(t, os.Chmod(filepath.Join(dir, "mode"), 0o600))
	must(t, os.Remove(filepath.Join(dir, "b")))
	must(t, os.Remove(filepath.Join(dir, "todir")))
	write(t, filepath.Join(dir, "todir/inside"), "i")
	must(t, os.RemoveAll(filepath.Join(dir, "tolink")))
	must(t, os.Symlink("d", filepath.Join(dir, "tolink")))
	must(t, os.Remove(filepath.Join(dir, "link")))
	must(t, os.Symlink("b-target", filepath.Join(dir, "link")))
	must(t, os.RemoveAll(filepath.Join(dir, "gone")))
	write(t, filepath.Join(dir, "d/sub/new"), "n")
	must(t, os.Chmod(filepath.Join(dir, "d"), 0o700))
	write(t, filepath.Join(dir, "added/one/two"), "2")
	write(t, filepath.Join(dir, "added/file"), "f")
	write(t, filepath.Join(dir, "zz"), "z")
}

// wantMutations is what Compare reports for mutate, in walk order.
var wantMutations = []diff.Change{
	{diff.Modified, "/a", false},
	{diff.Removed, "/b", false},
	{diff.Modified, "/link", false},
	{diff.Modified, "/mode", false},
	{diff.Modified, "/todir", false},
	{diff.Modified, "/d", true},
	{diff.Added, "/d/sub/new", false},
	{diff.Removed, "/gone", true},
	{diff.Modified, "/tolink", true},
	{diff.Added, "/zz", false},
	{diff.Added, "/added", true},
	{diff.Added, "/added/file", false},
	{diff.Added, "/added/one", true},
	{diff.Added, "/added/one/two", false},
}

func TestCompareCommits(t *testing.T) {
	for _, mode := range []repo.Mode{repo.ModeArchive, repo.ModeBare} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			dir := small(t)
			a := commitDir(t, r, dir)
			mutate(t, dir)
			b := commitDir(t, r, dir)
			got, err := diff.Commits(context.Background(), r, a, b)
			must(t, err)
			if !reflect.DeepEqual(got, wantMutations) {
				t.Errorf("changes:\n%s\nwant:\n%s", fmtChanges(got), fmtChanges(wantMutations))
			}
			same, err := diff.Commits(context.Background(), r, b, b)
			must(t, err)
			if len(same) != 0 {
				t.Errorf("a commit against itself: %v", same)
			}
		})
	}
}

func fmtChanges(cs []diff.Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "  %s %s dir=%v\n", c.Kind.Letter(), c.Path, c.Dir)
	}
	return b.String()
}

// TestCompareSkipsEqualSubtrees deletes the dirtree objects of subtrees
// both commits share: the comparison must not need them.
func TestCompareSkipsEqualSubtrees(t *testing.T) {
	r := newRepo(t, repo.ModeArchive)
	dir := small(t)
	a := commitDir(t, r, dir)
	write(t, filepath.Join(dir, "a"), "changed")
	b := commitDir(t, r, dir)
	root, err := tree.Commit(r, a)
	must(t, err)
	for _, p := range []string{"/same", "/d", "/gone"} {
		e, err := tree.Lookup(r, root, p)
		must(t, err)
		must(t, os.Remove(r.ObjectPath(objects.KindDirTree, e.Tree)))
	}
	got, err := diff.Commits(context.Background(), r, a, b)
	must(t, err)
	if want := []diff.Change{{diff.Modified, "/a", false}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestCompareDirectory compares commits with directories on disk: a tree
// against its own commit is unchanged, and a changed directory gives the
// same changes as a commit of it would.
func TestCompareDirectory(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t, repo.ModeBare)
	src := testtree.Build(t, t.TempDir())
	c := commitDir(t, r, src)
	ct, err := tree.Commit(r, c)
	must(t, err)
	for _, pair := range [][2]tree.Tree{{ct, tree.Dir(src)}, {tree.Dir(src), ct}, {tree.Dir(src), tree.Dir(src)}} {
		got, err := diff.Compare(ctx, pair[0], pair[1], nil)
		must(t, err)
		if len(got) != 0 {
			t.Errorf("tree against its own commit: %s", fmtChanges(got))
		}
	}

	dir := small(t)
	a := commitDir(t, r, dir)
	at, err := tree.Commit(r, a)
	must(t, err)
	mutate(t, dir)
	got, err := diff.Compare(ctx, at, tree.Dir(dir), nil)
	must(t, err)
	if !reflect.DeepEqual(got, wantMutations) {
		t.Errorf("commit vs dir:\n%s\nwant:\n%s", fmtChanges(got), fmtChanges(wantMutations))
	}

	// Same size and metadata, different content: only a checksum tells.
	write(t, filepath.Join(dir, "zz"), "Z")
	got, err = diff.Compare(ctx, tree.Dir(dir), tree.Dir(dir), nil)
	must(t, err)
	if len(got) != 0 {
		t.Errorf("dir against itself: %v", got)
	}
	b := commitDir(t, r, dir)
	bt, err := tree.Commit(r, b)
	must(t, err)
	write(t, filepath.Join(dir, "zz"), "y")
	got, err = diff.Compare(ctx, bt, tree.Dir(dir), nil)
	must(t, err)
	if want := []diff.Change{{diff.Modified, "/zz", false}}; !reflect.DeepEqual(got, want) {
		t.Errorf("same-size edit: %v", got)
	}
}

func TestCompareDirectoryOptions(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t, repo.ModeBare)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "f"), "f")
	c := commitDir(t, r, dir)
	ct, err := tree.Commit(r, c)
	must(t, err)
	must(t, unix.Lsetxattr(filepath.Join(dir, "f"), "user.new", []byte("v"), 0))
	must(t, os.Lchown(filepath.Join(dir, "f"), 4321, 0))
	uid := uint32(0)
	for _, tc := range []struct {
		name string
		o    *diff.Options
		want int
	}{
		{"all", nil, 1},
		{"no xattrs, other owner", &diff.Options{IgnoreXattrs: true}, 1},
		{"owner override, xattrs", &diff.Options{OwnerUID: &uid}, 1},
		{"owner override, no xattrs", &diff.Options{OwnerUID: &uid, IgnoreXattrs: true}, 0},
	} {
		got, err := diff.Compare(ctx, ct, tree.Dir(dir), tc.o)
		must(t, err)
		if len(got) != tc.want {
			t.Errorf("%s: got %v, want %d changes", tc.name, got, tc.want)
		}
	}
}

func TestCompareCancelled(t *testing.T) {
	r := newRepo(t, repo.ModeArchive)
	dir := small(t)
	a := commitDir(t, r, dir)
	mutate(t, dir)
	b := commitDir(t, r, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := diff.Commits(ctx, r, a, b); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if _, err := diff.Compare(context.Background(), tree.Tree{}, tree.Dir(dir), nil); !errors.Is(err, repo.ErrInvalid) {
		t.Errorf("zero Tree: %v", err)
	}
}

// TestCommitStatsMatchesOstree checks the counts against `ostree diff
// --stats` on the same repository.
func TestCommitStatsMatchesOstree(t *testing.T) {
	r := newRepo(t, repo.ModeArchive)
	dir := small(t)
	a := commitDir(t, r, dir)
	mutate(t, dir)
	b := commitDir(t, r, dir)
	st, err := diff.CommitStats(context.Background(), r, a, b)
	must(t, err)
	out, err := exec.Command("ostree", "--repo="+r.Path(), "diff", "--stats", a.String(), b.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree diff --stats: %v\n%s", err, out)
	}
	want := fmt.Sprintf("[A] Object Count: %d\n[B] Object Count: %d\nCommon Object Count: %d\n", st.ObjectsA, st.ObjectsB, st.CommonObjects)
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("ostree says:\n%s\nstrata counted:\n%s", out, want)
	}
	if st.CommonObjects == 0 || st.CommonSize == 0 || st.CommonObjects >= st.ObjectsA {
		t.Errorf("implausible stats %+v", st)
	}
	all, err := diff.Reachable(context.Background(), r, b, -1)
	must(t, err)
	if len(all) <= st.ObjectsB {
		t.Errorf("with history %d objects, without %d", len(all), st.ObjectsB)
	}
}
