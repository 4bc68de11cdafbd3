// Package testrepo holds the repository helpers tests share: a new
// repository in a temporary directory, and a directory committed to it.
package testrepo

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// Timestamp is the commit time CommitDir uses, so that checksums are the
// same from run to run.
var Timestamp = time.Unix(1700000000, 0)

// New initialises a repository of mode in a temporary directory of t.
func New(t testing.TB, mode repo.Mode) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), mode, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// CommitDir commits the directory src to branch of r (subject "s", at
// Timestamp) and returns the commit.
func CommitDir(t testing.TB, r *repo.Repo, branch, src string) objects.Checksum {
	t.Helper()
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	m := commit.NewMTree(nil)
	if err := commit.AddDir(ctx, tx, m, src, commit.Filter{}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := commit.Write(ctx, tx, m, commit.Options{Branch: branch, Subject: "s", Timestamp: Timestamp})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return res.Checksum
}
