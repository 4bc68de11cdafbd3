package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testtree"
)

// buildStrataForFsck builds the CLI for this file's tests (own helpers, so
// the file does not depend on other verbs' test files).
func buildStrataForFsck(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// combined runs a command and returns its combined output.
func combined(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// run3 runs a command and returns stdout, stderr and its error.
func run3(name string, args ...string) (string, string, error) {
	cmd := exec.Command(name, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// TestFsckCLIInterop: in every mode, ostree fsck accepts strata's repos and
// strata fsck accepts ostree's (of the fixture tree with every entry kind);
// a corrupted file object fails both, strata naming it; --delete removes
// it, after which both report the commit partial.
func TestFsckCLIInterop(t *testing.T) {
	bin := buildStrataForFsck(t)
	src := testtree.Build(t, t.TempDir())
	for _, mode := range []string{"bare", "bare-user", "bare-user-only", "archive"} {
		t.Run(mode, func(t *testing.T) {
			for _, tool := range []string{bin, "ostree"} {
				repoDir := filepath.Join(t.TempDir(), "repo")
				r := "--repo=" + repoDir
				if out, err := combined(tool, r, "init", "--mode="+mode); err != nil {
					t.Fatal(out)
				}
				args := []string{r, "commit", "-b", "main", "--tree=dir=" + src, "-s", "s"}
				if mode == "bare-user-only" {
					args = append(args, "--canonical-permissions")
				}
				if out, err := combined(tool, args...); err != nil {
					t.Fatalf("%s commit: %s", tool, out)
				}
				for _, checker := range []string{bin, "ostree"} {
					out, errOut, err := run3(checker, r, "fsck")
					if err != nil || !strings.HasSuffix(out, "object fsck of 1 commits completed successfully - no errors found.\n") {
						t.Fatalf("%s fsck of %s's repo: %v\n%s%s", checker, tool, err, out, errOut)
					}
				}
				// Corrupt the largest file object (the 3 MiB file).
				var obj string
				var size int64
				filepath.Walk(filepath.Join(repoDir, "objects"), func(p string, info os.FileInfo, err error) error {
					if err == nil && info.Mode().IsRegular() && strings.Contains(p, ".file") && info.Size() > size {
						obj, size = p, info.Size()
					}
					return nil
				})
				if size < 4096 {
					t.Fatalf("no large object: %s %d", obj, size)
				}
				name := filepath.Base(filepath.Dir(obj)) + strings.TrimSuffix(filepath.Base(obj), "z")
				f, err := os.OpenFile(obj, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteAt([]byte{'!'}, size/2)
				f.Close()
				if _, _, err := run3("ostree", r, "fsck"); err == nil {
					t.Fatal("ostree fsck missed the corruption")
				}
				out, errOut, err := run3(bin, r, "fsck")
				if err == nil || !strings.Contains(errOut, "error: object "+name) || strings.Contains(out, "completed successfully") {
					t.Fatalf("strata fsck: %v\n%s%s", err, out, errOut)
				}
				out, errOut, err = run3(bin, r, "fsck", "--delete", "-q")
				if err == nil || !strings.Contains(errOut, "(deleted)") || !strings.Contains(errOut, "Marking commit as partial") || strings.Contains(out, "Validating") {
					t.Fatalf("strata fsck --delete -q: %v\n%s%s", err, out, errOut)
				}
				if _, err := os.Lstat(obj); !os.IsNotExist(err) {
					t.Fatalf("%s survived --delete", obj)
				}
				for _, checker := range []string{bin, "ostree"} {
					out, errOut, err := run3(checker, r, "fsck")
					if err == nil || !strings.Contains(errOut, "1 partial commits from fsck-detected corruption") {
						t.Errorf("%s fsck after --delete: %v\n%s%s", checker, err, out, errOut)
					}
				}
			}
		})
	}
}

// TestPruneCLIMatchesOstree: strata prune prints what ostree prune prints
// on copies of one repo.
func TestPruneCLIMatchesOstree(t *testing.T) {
	bin := buildStrataForFsck(t)
	src := testtree.Build(t, t.TempDir())
	base := filepath.Join(t.TempDir(), "repo")
	mustRun := func(name string, args ...string) string {
		t.Helper()
		out, err := combined(name, args...)
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(out)
	}
	mustRun("ostree", "--repo="+base, "init", "--mode=archive")
	mustRun("ostree", "--repo="+base, "commit", "-b", "main", "--tree=dir="+src, "--timestamp=2024-01-01T00:00:00Z")
	os.WriteFile(filepath.Join(src, "hello.txt"), []byte("v2"), 0o644)
	mustRun("ostree", "--repo="+base, "commit", "-b", "main", "--tree=dir="+src, "--timestamp=2024-01-02T00:00:00Z")
	orphan := mustRun("ostree", "--repo="+base, "commit", "--orphan", "--tree=dir="+t.TempDir())
	for _, args := range [][]string{
		{"--no-prune", "--refs-only", "--depth=0"},
		{"--refs-only", "--depth=0"},
		{"--refs-only", "--commit-only"},
		{"--keep-younger-than=2024-01-01 12:00:00"},
		{"--delete-commit=" + orphan},
		{},
	} {
		a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
		mustRun("cp", "-a", base, a)
		mustRun("cp", "-a", base, b)
		want := mustRun("ostree", append([]string{"--repo=" + a, "prune"}, args...)...)
		got := mustRun(bin, append([]string{"--repo=" + b, "prune"}, args...)...)
		if want != got {
			t.Errorf("prune %v:\nostree:\n%s\nstrata:\n%s", args, want, got)
		}
	}
	// Refused while a ref points to the commit, naming the ref.
	head := mustRun("ostree", "--repo="+base, "rev-parse", "main")
	if out, err := combined(bin, "--repo="+base, "prune", "--delete-commit="+head); err == nil || !strings.Contains(out, "main") {
		t.Errorf("--delete-commit of main's commit: %v %s", err, out)
	}
}
