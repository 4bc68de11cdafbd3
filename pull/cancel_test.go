package pull

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// bigSparseCommit commits, to a bare-user-only repository, a tree holding
// one sparse file of size bytes. The object is placed by hand (a sparse
// file has no blocks; a commit through the Txn would write them all) and
// its checksum computed the way a pull verifies it.
func bigSparseCommit(t *testing.T, r *repo.Repo, branch string, size int64) (commitSum, file objects.Checksum) {
	t.Helper()
	ctx := context.Background()
	tmp := filepath.Join(r.Path(), "tmp", "big")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Chmod(0o644); err != nil {
		t.Fatal(err)
	}
	h := &objects.FileHeader{Mode: objects.ModeRegular | 0o644, Size: uint64(size)}
	hs := objects.NewFileHasher(h)
	if _, err := io.Copy(hs, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	hs.Sum(file[:0])
	dst := r.ObjectPath(objects.KindFile, file)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	m := commit.NewMTree(&objects.DirMeta{Mode: objects.ModeDir | 0o755})
	p, err := m.SetFile(r, "big.img")
	if err != nil {
		t.Fatal(err)
	}
	*p = file
	res, err := commit.Write(ctx, tx, m, commit.Options{Branch: branch, Subject: "big", Timestamp: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return res.Checksum, file
}

// A Ctrl-C during a local pull of a large file stops the copy within a
// second (not when the file is done), publishes neither the unfinished
// object nor a ref, and a second pull completes.
func TestPullLocalCancelLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("copies a 256 MiB file")
	}
	src, err := repo.Init(filepath.Join(t.TempDir(), "src"), repo.ModeBareUserOnly, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const size = 256 << 20
	want, file := bigSparseCommit(t, src, "main", size)
	dst, err := repo.Init(filepath.Join(t.TempDir(), "dst"), repo.ModeArchive, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stats Stats
	var cancelled time.Time
	go func() {
		// Cancel once the copy of the big file is under way.
		for stats.BytesReceived.Load() < 1<<20 {
			time.Sleep(time.Millisecond)
		}
		cancelled = time.Now()
		cancel()
	}()
	_, err = Pull(ctx, dst, NewLocalSource(src), Options{Refs: []string{"main"}, Stats: &stats})
	took := time.Since(cancelled)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pull: err %v, want context.Canceled", err)
	}
	got := stats.BytesReceived.Load()
	t.Logf("cancelled pull returned %v after the cancel, having read %d MiB of %d", took, got>>20, size>>20)
	if took > time.Second {
		t.Errorf("cancelled pull returned %v after the cancel, want < 1s", took)
	}
	if got >= size {
		t.Errorf("cancelled pull read the whole file (%d bytes): the copy did not stop", got)
	}
	if ok, err := dst.HasObject(objects.KindFile, file); err != nil || ok {
		t.Errorf("big object published after a cancelled pull (%v, %v)", ok, err)
	}
	if ok, err := dst.HasObject(objects.KindCommit, want); err != nil || ok {
		t.Errorf("commit published after a cancelled pull (%v, %v)", ok, err)
	}
	if _, err := dst.ReadRef("heads/main"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("ref after a cancelled pull: %v, want ErrNotFound", err)
	}
	// Nothing is left behind in the staging area either.
	ents, err := os.ReadDir(filepath.Join(dst.Path(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "cache" {
			t.Errorf("left in tmp/ after a cancelled pull: %s", e.Name())
		}
	}

	start := time.Now()
	if _, err := Pull(context.Background(), dst, NewLocalSource(src), Options{Refs: []string{"main"}}); err != nil {
		t.Fatalf("pull after the cancelled one: %v", err)
	}
	t.Logf("uncancelled pull of the same file: %v", time.Since(start))
	if c, err := dst.ReadRef("heads/main"); err != nil || c != want {
		t.Fatalf("ref after the second pull: %s, %v; want %s", c, err, want)
	}
	if ok, err := dst.HasObject(objects.KindFile, file); err != nil || !ok {
		t.Fatalf("big object missing after the second pull (%v)", err)
	}
}
