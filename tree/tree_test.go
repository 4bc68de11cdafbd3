package tree_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/testrepo"
	"github.com/strata-os/strata/internal/testtree"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/tree"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLookupAndResolve(t *testing.T) {
	r := testrepo.New(t, repo.ModeArchive)
	src := testtree.Build(t, t.TempDir())
	must(t, os.Symlink("loop2", filepath.Join(src, "loop1")))
	must(t, os.Symlink("loop1", filepath.Join(src, "loop2")))
	must(t, os.Symlink("../../etc/../hello.txt", filepath.Join(src, "usr/up")))
	c := testrepo.CommitDir(t, r, "main", src)
	root, err := tree.Commit(r, c)
	must(t, err)
	fileOf := func(p string) objects.Checksum {
		e, err := tree.Lookup(r, root, p)
		must(t, err)
		return e.File
	}
	hello := fileOf("/hello.txt")
	for _, tc := range []struct {
		path   string
		follow bool
		want   objects.Checksum // zero: a directory
		dir    string
		err    error
	}{
		{path: "/hello.txt", want: hello},
		{path: "hello.txt", want: hello},
		{path: "/bin/../hello.txt", want: hello},
		{path: "/", dir: "/"},
		{path: "/usr/share", dir: "/usr/share"},
		{path: "/nope", err: repo.ErrNotFound},
		{path: "/hello.txt/x", err: repo.ErrInvalid},
		{path: "/dir-link/large.bin", err: repo.ErrInvalid},
		{path: "/bin/rel-link", want: fileOf("/bin/rel-link")},
		{path: "/bin/rel-link", follow: true, want: hello},
		{path: "/usr/up", follow: true, want: hello},
		{path: "/abs-link", follow: true, want: fileOf("/etc/os-release")},
		{path: "/dir-link", follow: true, dir: "/usr/share"},
		{path: "/dir-link/large.bin", follow: true, want: fileOf("/usr/share/large.bin")},
		{path: "/dangling", follow: true, err: repo.ErrNotFound},
		{path: "/loop1", follow: true, err: repo.ErrInvalid},
		{path: "/hello.txt/x", follow: true, err: repo.ErrInvalid},
	} {
		var e tree.Entry
		var err error
		if tc.follow {
			e, err = tree.Resolve(r, root, tc.path)
		} else {
			e, err = tree.Lookup(r, root, tc.path)
		}
		switch {
		case tc.err != nil:
			if !errors.Is(err, tc.err) {
				t.Errorf("%s (follow %v): got %v, want %v", tc.path, tc.follow, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s (follow %v): %v", tc.path, tc.follow, err)
		case tc.dir != "":
			if !e.Dir || e.Path != tc.dir {
				t.Errorf("%s (follow %v): got %+v, want directory %s", tc.path, tc.follow, e, tc.dir)
			}
		case e.Dir || e.File != tc.want:
			t.Errorf("%s (follow %v): got %+v, want file %s", tc.path, tc.follow, e, tc.want)
		}
	}
}
