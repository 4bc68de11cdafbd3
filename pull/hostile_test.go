package pull

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/checkout"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// TestPullRefusesNonDirectoryDirMeta: a commit whose subdirectory's
// dirmeta has a regular file's mode (its checksum matches) is refused,
// naming the dirmeta, and leaves no ref, as ostree pull refuses it.
func TestPullRefusesNonDirectoryDirMeta(t *testing.T) {
	src := initRepo(t, repo.ModeArchive)
	tx, err := src.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write := func(kind objects.Kind, data []byte) objects.Checksum {
		c, err := tx.WriteMetadata(kind, data)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := write(objects.KindDirMeta, (&objects.DirMeta{Mode: objects.ModeDir | 0o755}).Marshal())
	bad := write(objects.KindDirMeta, (&objects.DirMeta{Mode: objects.ModeRegular | 0o644}).Marshal())
	empty := write(objects.KindDirTree, (&objects.DirTree{}).Marshal())
	rt := write(objects.KindDirTree, (&objects.DirTree{Dirs: []objects.TreeDir{{Name: "sub", Tree: empty, Meta: bad}}}).Marshal())
	data, _ := (&objects.Commit{Subject: "bad dirmeta", Timestamp: 1700000000, RootTree: rt, RootMeta: good}).Marshal()
	c := write(objects.KindCommit, data)
	tx.SetRef("heads/main", &c)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	updateSummary(t, src, nil)
	s := serve(t, src.Path())
	dst := initRepo(t, repo.ModeBareUser)
	_, err = Pull(ctx, dst, httpSource(t, s, dst), Options{Remote: "o", Refs: []string{"main"}})
	if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), bad.String()) || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("pull of a dirmeta with a file's mode: %v", err)
	}
	if _, err := dst.ReadRef("remotes/o/main"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("ref after the refused pull: %v", err)
	}
}

// TestPullRefusesHostileDirTree: a remote (over HTTP) whose commit holds
// a dirtree with a name that would leave the checkout ("..", "a/b", ".",
// ""), a name both a file and a directory, or unsorted names is refused,
// naming the dirtree; the destination gets no ref and does not store the
// dirtree (a checkout could never meet it).
func TestPullRefusesHostileDirTree(t *testing.T) {
	for name, files := range map[string][]string{
		"dotdot":       {".."},
		"slash":        {"a/b"},
		"dot":          {"."},
		"empty":        {""},
		"file and dir": {"sub"},
		"unsorted":     {"b", "a"},
	} {
		t.Run(name, func(t *testing.T) {
			src := initRepo(t, repo.ModeArchive)
			tx, err := src.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			write := func(kind objects.Kind, data []byte) objects.Checksum {
				c, err := tx.WriteMetadata(kind, data)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			content, err := tx.WriteFile(&objects.FileHeader{Mode: objects.ModeRegular | 0o644, Size: 8}, strings.NewReader("escaped\n"))
			if err != nil {
				t.Fatal(err)
			}
			meta := write(objects.KindDirMeta, (&objects.DirMeta{Mode: objects.ModeDir | 0o755}).Marshal())
			empty := write(objects.KindDirTree, (&objects.DirTree{}).Marshal())
			dt := &objects.DirTree{Dirs: []objects.TreeDir{{Name: "sub", Tree: empty, Meta: meta}}}
			for _, f := range files {
				dt.Files = append(dt.Files, objects.TreeFile{Name: f, Checksum: content})
			}
			bad := write(objects.KindDirTree, dt.Marshal())
			rt := write(objects.KindDirTree, (&objects.DirTree{Dirs: []objects.TreeDir{{Name: "usr", Tree: bad, Meta: meta}}}).Marshal())
			data, _ := (&objects.Commit{Subject: "hostile dirtree", Timestamp: 1700000000, RootTree: rt, RootMeta: meta}).Marshal()
			c := write(objects.KindCommit, data)
			tx.SetRef("heads/main", &c)
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			updateSummary(t, src, nil)
			s := serve(t, src.Path())
			dst := initRepo(t, repo.ModeBareUser)
			_, err = Pull(ctx, dst, httpSource(t, s, dst), Options{Remote: "o", Refs: []string{"main"}})
			if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), bad.String()) {
				t.Fatalf("pull of a hostile dirtree: %v", err)
			}
			if _, err := dst.ReadRef("remotes/o/main"); !errors.Is(err, repo.ErrNotFound) {
				t.Errorf("ref after the refused pull: %v", err)
			}
			if has, err := dst.HasObject(objects.KindDirTree, bad); has || err != nil {
				t.Errorf("hostile dirtree stored (%v, %v)", has, err)
			}
		})
	}
}

// TestPulledSymlinkOutNotFollowed: a commit pulled over HTTP whose usr/x
// is a symlink to a directory outside, checked out, then a second pulled
// commit with usr/x a directory holding "sentinel" checked out over it
// (union): nothing is written through the symlink; the sentinel outside
// keeps its content.
func TestPulledSymlinkOutNotFollowed(t *testing.T) {
	outside := t.TempDir()
	sentinel := filepath.Join(outside, "sentinel")
	if err := os.WriteFile(sentinel, []byte("do not touch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := initRepo(t, repo.ModeArchive)
	a := t.TempDir()
	os.MkdirAll(filepath.Join(a, "usr"), 0o755)
	if err := os.Symlink(outside, filepath.Join(a, "usr/x")); err != nil {
		t.Fatal(err)
	}
	ca := makeCommit(t, src, "a", a, commitOpts{})
	cb := makeCommit(t, src, "b", writeTree(t, map[string]string{"usr/x/sentinel": "overwritten\n"}), commitOpts{})
	updateSummary(t, src, nil)
	s := serve(t, src.Path())
	dst := initRepo(t, repo.ModeBareUser)
	if _, err := Pull(ctx, dst, httpSource(t, s, dst), Options{Remote: "o", Refs: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "co")
	if err := checkout.Checkout(ctx, dst, ca, dest, checkout.Options{UserMode: true}); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(dest, "usr/x")); err != nil || target != outside {
		t.Fatalf("usr/x: %q, %v", target, err)
	}
	err := checkout.Checkout(ctx, dst, cb, dest, checkout.Options{UserMode: true, Union: true})
	if data, _ := os.ReadFile(sentinel); string(data) != "do not touch\n" {
		t.Fatalf("checkout (err %v) wrote through the pulled symlink: sentinel %q", err, data)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Fatalf("outside holds %v", ents)
	}
}
