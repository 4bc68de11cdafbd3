package pull

import (
	"errors"
	"strings"
	"testing"

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
