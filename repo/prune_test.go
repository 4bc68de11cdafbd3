package repo

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
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

// listRepoFiles lists the files (and symlinks) under objects/ and deltas/,
// and the partial markers, relative to repo.
func listRepoFiles(t *testing.T, repo string) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{"objects", "deltas", "state"} {
		filepath.Walk(filepath.Join(repo, dir), func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				rel, _ := filepath.Rel(repo, p)
				out = append(out, rel)
			}
			return nil
		})
	}
	sort.Strings(out)
	return out
}

// pruneFixture makes, with ostree, a repo holding main (three commits, a
// day apart, each with detached metadata, and a static delta to the
// middle one), an orphan commit, and a commit only a remote ref names; it
// returns the repo and the orphan's checksum.
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
		ostreeRun(t, "--repo="+p, "commit", "-b", "main", "--tree=dir="+src, "--timestamp="+day+"T00:00:00Z", "--add-detached-metadata-string=sig="+day)
	}
	ostreeRun(t, "--repo="+p, "static-delta", "generate", "--to=main^")
	os.WriteFile(filepath.Join(src, "orphan"), []byte("orphan only"), 0o644)
	orphan := ostreeRun(t, "--repo="+p, "commit", "--orphan", "--tree=dir="+src, "--timestamp=2024-01-04T00:00:00Z")
	os.WriteFile(filepath.Join(src, "remote"), []byte("remote only"), 0o644)
	remote := ostreeRun(t, "--repo="+p, "commit", "--orphan", "--tree=dir="+src, "--timestamp=2023-06-01T00:00:00Z")
	os.MkdirAll(filepath.Join(p, "refs/remotes/origin"), 0o755)
	os.WriteFile(filepath.Join(p, "refs/remotes/origin/main"), []byte(remote+"\n"), 0o644)
	return p, orphan
}

var (
	totalRe   = regexp.MustCompile(`Total (?:\(commit only\) )?objects: (\d+)`)
	deletedRe = regexp.MustCompile(`(?:Deleted|Would delete:) (\d+) objects`)
)

// TestPruneMatchesOstree prunes copies of one repo with ostree and with
// strata, each run being a sequence of prunes, and requires the same files
// to remain (objects, tombstones, deltas, partial markers) and the same
// counts to be reported.
func TestPruneMatchesOstree(t *testing.T) {
	type step struct {
		args []string
		opts func(orphan string) PruneOptions
	}
	all := func(string) PruneOptions { return PruneOptions{Depth: -1} }
	refsOnly := func(d int) func(string) PruneOptions {
		return func(string) PruneOptions { return PruneOptions{RefsOnly: true, Depth: d} }
	}
	deleteOrphan := step{[]string{"--delete-commit=ORPHAN"}, func(o string) PruneOptions {
		c, _ := objects.ParseChecksum(o)
		return PruneOptions{Depth: -1, DeleteCommit: &c}
	}}
	cases := []struct {
		name  string
		steps []step
	}{
		{"default", []step{{nil, all}}},
		{"depth0", []step{{[]string{"--depth=0"}, func(string) PruneOptions { return PruneOptions{Depth: 0} }}}},
		{"refs-only", []step{{[]string{"--refs-only"}, refsOnly(-1)}}},
		{"refs-only-depth0", []step{{[]string{"--refs-only", "--depth=0"}, refsOnly(0)}}},
		{"refs-only-depth1", []step{{[]string{"--refs-only", "--depth=1"}, refsOnly(1)}}},
		{"no-prune", []step{{[]string{"--refs-only", "--depth=0", "--no-prune"}, func(string) PruneOptions {
			return PruneOptions{RefsOnly: true, Depth: 0, NoPrune: true}
		}}}},
		{"delete-commit", []step{deleteOrphan}},
		// Once tombstones are on, every commit prune deletes leaves one,
		// and tombstones themselves are kept.
		{"delete-commit-then-depth0", []step{deleteOrphan, {[]string{"--refs-only", "--depth=0"}, refsOnly(0)}}},
		{"keep-younger", []step{{[]string{"--keep-younger-than=2024-01-02 12:00:00"}, func(string) PruneOptions {
			return PruneOptions{Depth: -1, KeepYoungerThan: time.Date(2024, 1, 2, 12, 0, 0, 0, time.Local)}
		}}}},
		{"keep-younger-all", []step{{[]string{"--keep-younger-than=2023-01-01 00:00:00"}, func(string) PruneOptions {
			return PruneOptions{Depth: -1, KeepYoungerThan: time.Date(2023, 1, 1, 0, 0, 0, 0, time.Local)}
		}}}},
		{"commit-only", []step{{[]string{"--refs-only", "--depth=0", "--commit-only"}, func(string) PruneOptions {
			return PruneOptions{RefsOnly: true, Depth: 0, CommitOnly: true}
		}}}},
		{"commit-only-then-all", []step{
			{[]string{"--refs-only", "--depth=0", "--commit-only"}, func(string) PruneOptions {
				return PruneOptions{RefsOnly: true, Depth: 0, CommitOnly: true}
			}},
			{nil, all},
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
				r, err := Open(q)
				if err != nil {
					t.Fatal(err)
				}
				for i, s := range c.steps {
					args := []string{"--repo=" + p, "prune"}
					for _, a := range s.args {
						args = append(args, strings.ReplaceAll(a, "ORPHAN", orphan))
					}
					out := ostreeRun(t, args...)
					st, err := r.Prune(context.Background(), s.opts(orphan))
					if err != nil {
						t.Fatal(err)
					}
					// Reopen: the config may have changed (tombstones).
					if r, err = Open(q); err != nil {
						t.Fatal(err)
					}
					wantTotal, _ := strconv.Atoi(totalRe.FindStringSubmatch(out)[1])
					wantDeleted := 0
					if m := deletedRe.FindStringSubmatch(out); m != nil {
						wantDeleted, _ = strconv.Atoi(m[1])
					}
					if st.Total != wantTotal || st.Deleted != wantDeleted {
						t.Errorf("step %d: strata %+v, ostree said:\n%s", i, st, out)
					}
					want, got := listRepoFiles(t, p), listRepoFiles(t, q)
					if strings.Join(want, "\n") != strings.Join(got, "\n") {
						t.Fatalf("step %d: ostree kept %d files, strata %d\nostree: %v\nstrata: %v", i, len(want), len(got), want, got)
					}
				}
				for _, name := range listRepoFiles(t, q) {
					if strings.HasSuffix(name, ".tombstone-commit") {
						a, _ := os.ReadFile(filepath.Join(p, name))
						b, _ := os.ReadFile(filepath.Join(q, name))
						if string(a) != string(b) {
							t.Errorf("tombstone %s differs from ostree's", name)
						}
					}
				}
				ro, err := Open(p)
				if err != nil {
					t.Fatal(err)
				}
				a, _ := ro.Config().GetBool("core", "tombstone-commits", false)
				b, _ := r.Config().GetBool("core", "tombstone-commits", false)
				if a != b {
					t.Errorf("core.tombstone-commits: ostree %v, strata %v", a, b)
				}
				if rep := fsckOf(t, r, FsckOptions{}); !rep.OK() {
					t.Errorf("fsck after prune: %q", problemNames(rep.Problems))
				}
				if out, err := exec.Command("ostree", "--repo="+q, "fsck").CombinedOutput(); err != nil {
					t.Errorf("ostree fsck after strata's prune: %v\n%s", err, out)
				}
			})
		}
	}
}

func TestPruneRefusals(t *testing.T) {
	r := newRepo(t, ModeArchive)
	c := commitTo(t, r, "main", "one", sampleFiles("x"))
	if _, err := r.Prune(context.Background(), PruneOptions{Depth: -1, DeleteCommit: &c}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "main") {
		t.Errorf("deleting a ref's commit: %v", err)
	}
	// A remote ref protects its commit too.
	tx := begin(t, r)
	o := writeTree(t, tx, objects.Checksum{}, "remote", sampleFiles("r"))
	tx.SetRef("remotes/origin/main", &o)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	before := listRepoFiles(t, r.Path())
	if _, err := r.Prune(context.Background(), PruneOptions{Depth: -1, DeleteCommit: &o}); !errors.Is(err, ErrInvalid) {
		t.Errorf("deleting a remote ref's commit: %v", err)
	}
	missing := objects.Sum([]byte("none"))
	if _, err := r.Prune(context.Background(), PruneOptions{Depth: -1, DeleteCommit: &missing}); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting a missing commit: %v", err)
	}
	if _, err := r.Prune(context.Background(), PruneOptions{Depth: -1, DeleteCommit: &o, NoPrune: true}); !errors.Is(err, ErrInvalid) {
		t.Errorf("--delete-commit with --no-prune: %v", err)
	}
	if after := listRepoFiles(t, r.Path()); strings.Join(before, " ") != strings.Join(after, " ") {
		t.Errorf("a refused prune changed the repo:\n%v\n%v", before, after)
	}
	// Remote refs are roots for --refs-only.
	st, err := r.Prune(context.Background(), PruneOptions{RefsOnly: true, Depth: -1})
	if err != nil || st.Deleted != 0 {
		t.Errorf("--refs-only with a remote ref: %+v %v", st, err)
	}
}

// TestPruneWaitsForTransaction: prune takes the lock exclusively, so it
// waits while a transaction is open, and then runs; and it does not delete
// what that transaction committed.
func TestPruneWaitsForTransaction(t *testing.T) {
	r := newRepo(t, ModeArchive)
	commitTo(t, r, "main", "one", sampleFiles("x"))
	tx := begin(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := r.Prune(ctx, PruneOptions{Depth: -1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("prune during a transaction: %v", err)
	}
	c := writeTree(t, tx, objects.Checksum{}, "two", sampleFiles("y"))
	tx.SetRef("heads/other", &c)
	done := make(chan error, 1)
	go func() {
		_, err := r.Prune(context.Background(), PruneOptions{RefsOnly: true, Depth: 0})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("prune ran during a transaction: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("prune still waiting after the transaction ended")
	}
	if rep := fsckOf(t, r, FsckOptions{}); !rep.OK() || rep.Commits != 2 {
		t.Fatalf("after prune: %+v", rep)
	}
}

// TestPruneInterrupted fails prune's n-th deletion, for every n, as a
// crash would, and checks that every commit still stored is complete
// (commits go first), and that the next prune finishes the job.
func TestPruneInterrupted(t *testing.T) {
	for _, mode := range []Mode{ModeBare, ModeArchive} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			commitTo(t, r, "main", "one", sampleFiles("x"))
			commitTo(t, r, "main", "two", sampleFiles("y"))
			commitTo(t, r, "main", "three", sampleFiles("z"))
			opts := PruneOptions{RefsOnly: true, Depth: 0}
			dry := opts
			dry.NoPrune = true
			st, err := r.Prune(context.Background(), dry)
			if err != nil || st.Deleted < 10 {
				t.Fatalf("%+v %v", st, err)
			}
			want := len(listRepoFiles(t, r.Path()))
			for n := 0; ; n++ {
				q := filepath.Join(t.TempDir(), "copy")
				if out, err := exec.Command("cp", "-a", r.Path(), q).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v %s", err, out)
				}
				rq, err := Open(q)
				if err != nil {
					t.Fatal(err)
				}
				removes := 0
				setFailpoint(t, q, func(step string) error {
					if strings.HasPrefix(step, "remove:") {
						if removes == n {
							return errInjected
						}
						removes++
					}
					return nil
				})
				_, err = rq.Prune(context.Background(), opts)
				clearFailpoint()
				if err == nil {
					if n < st.Deleted {
						t.Fatalf("prune succeeded after %d of %d deletions", n, st.Deleted)
					}
					break
				}
				if !errors.Is(err, errInjected) {
					t.Fatalf("after %d deletions: %v", n, err)
				}
				if rep := fsckOf(t, rq, FsckOptions{}); !rep.OK() {
					t.Fatalf("interrupted after %d deletions: %q", n, problemNames(rep.Problems))
				}
				// The next prune completes it.
				if _, err := rq.Prune(context.Background(), opts); err != nil {
					t.Fatal(err)
				}
				if got := len(listRepoFiles(t, q)); n == 0 {
					want = got
				} else if got != want {
					t.Fatalf("after an interrupted prune and another, %d files, want %d", got, want)
				}
			}
		})
	}
}
