package repo

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/objects"
)

func ostreeRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ostree", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func listObjectFiles(t *testing.T, repo string) []string {
	t.Helper()
	var out []string
	filepath.Walk(filepath.Join(repo, "objects"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(repo, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// pruneFixture makes, with ostree, a repo holding main (three commits, a
// day apart) and an orphan commit, and returns it with the orphan's
// checksum.
func pruneFixture(t *testing.T, mode string) (string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "repo")
	ostreeRun(t, "--repo="+p, "init", "--mode="+mode)
	src := t.TempDir()
	for i, day := range []string{"2024-01-01", "2024-01-02", "2024-01-03"} {
		os.WriteFile(filepath.Join(src, "common"), []byte("same in every version"), 0o644)
		os.WriteFile(filepath.Join(src, "version"), []byte(day), 0o644)
		os.MkdirAll(filepath.Join(src, "dir"+string(rune('a'+i))), 0o755)
		os.WriteFile(filepath.Join(src, "dir"+string(rune('a'+i)), "f"), []byte(day+" only"), 0o644)
		ostreeRun(t, "--repo="+p, "commit", "-b", "main", "--tree=dir="+src, "--timestamp="+day+"T00:00:00Z")
	}
	os.WriteFile(filepath.Join(src, "orphan"), []byte("orphan only"), 0o644)
	orphan := ostreeRun(t, "--repo="+p, "commit", "--orphan", "--tree=dir="+src, "--timestamp=2024-01-04T00:00:00Z")
	return p, orphan
}

// TestPruneMatchesOstree prunes copies of one repo with ostree and with
// strata and requires the same objects to remain.
func TestPruneMatchesOstree(t *testing.T) {
	cases := []struct {
		name string
		args []string
		opts func(orphan string) PruneOptions
	}{
		{"default", nil, func(string) PruneOptions { return PruneOptions{Depth: -1} }},
		{"refs-only", []string{"--refs-only"}, func(string) PruneOptions { return PruneOptions{RefsOnly: true, Depth: -1} }},
		{"depth0", []string{"--refs-only", "--depth=0"}, func(string) PruneOptions { return PruneOptions{RefsOnly: true, Depth: 0} }},
		{"depth1", []string{"--refs-only", "--depth=1"}, func(string) PruneOptions { return PruneOptions{RefsOnly: true, Depth: 1} }},
		{"delete-commit", []string{"--delete-commit=ORPHAN"}, func(o string) PruneOptions {
			c, _ := objects.ParseChecksum(o)
			return PruneOptions{Depth: -1, DeleteCommit: &c}
		}},
		{"keep-younger", []string{"--keep-younger-than=2024-01-02 12:00:00"}, func(string) PruneOptions {
			return PruneOptions{Depth: -1, KeepYoungerThan: time.Date(2024, 1, 2, 12, 0, 0, 0, time.UTC)}
		}},
		{"commit-only", []string{"--refs-only", "--depth=0", "--commit-only"}, func(string) PruneOptions {
			return PruneOptions{RefsOnly: true, Depth: 0, CommitOnly: true}
		}},
	}
	for _, mode := range []string{"archive", "bare"} {
		for _, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				p, orphan := pruneFixture(t, mode)
				q := filepath.Join(t.TempDir(), "copy")
				if out, err := exec.Command("cp", "-a", p, q).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v %s", err, out)
				}
				args := []string{"--repo=" + p, "prune"}
				for _, a := range c.args {
					args = append(args, strings.ReplaceAll(a, "ORPHAN", orphan))
				}
				ostreeRun(t, args...)
				r, err := Open(q)
				if err != nil {
					t.Fatal(err)
				}
				before := len(listObjectFiles(t, q))
				st, err := r.Prune(context.Background(), c.opts(orphan))
				if err != nil {
					t.Fatal(err)
				}
				want, got := listObjectFiles(t, p), listObjectFiles(t, q)
				if strings.Join(want, "\n") != strings.Join(got, "\n") {
					t.Fatalf("ostree kept %d objects, strata %d\nostree: %v\nstrata: %v", len(want), len(got), want, got)
				}
				tombstones := 0
				for _, name := range got {
					if strings.HasSuffix(name, ".tombstone-commit") {
						tombstones++
						a, _ := os.ReadFile(filepath.Join(p, name))
						b, _ := os.ReadFile(filepath.Join(q, name))
						if string(a) != string(b) {
							t.Errorf("tombstone %s differs from ostree's", name)
						}
					}
				}
				if st.Deleted != before-len(got)+tombstones {
					t.Errorf("reported %d deleted, %d were", st.Deleted, before-len(got)+tombstones)
				}
				if rep := fsckOf(t, r, FsckOptions{}); len(rep.Problems) != 0 {
					t.Errorf("fsck after prune: %v", rep.Problems)
				}
			})
		}
	}
}

func TestPruneRefusesReferencedCommitAndNoPrune(t *testing.T) {
	r := newRepo(t, ModeArchive)
	c := commitTo(t, r, "main", "one", sampleFiles("x"))
	if _, err := r.Prune(context.Background(), PruneOptions{Depth: -1, DeleteCommit: &c}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("deleting a ref's commit: %v", err)
	}
	commitTo(t, r, "main", "two", sampleFiles("y"))
	before := listObjectFiles(t, r.Path())
	st, err := r.Prune(context.Background(), PruneOptions{RefsOnly: true, Depth: 0, NoPrune: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Deleted == 0 || len(listObjectFiles(t, r.Path())) != len(before) {
		t.Fatalf("--no-prune: %+v, %d -> %d objects", st, len(before), len(listObjectFiles(t, r.Path())))
	}
}

// TestPruneWaitsForTransaction: prune takes the lock exclusively, so it
// cannot run while a transaction is open.
func TestPruneWaitsForTransaction(t *testing.T) {
	r := newRepo(t, ModeArchive)
	commitTo(t, r, "main", "one", sampleFiles("x"))
	tx := begin(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := r.Prune(ctx, PruneOptions{Depth: -1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("prune during a transaction: %v", err)
	}
	tx.Abort()
	if _, err := r.Prune(context.Background(), PruneOptions{Depth: -1}); err != nil {
		t.Fatal(err)
	}
}
