package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testtree"
)

// The read-side verbs (log, show, ls, cat, refs, rev-parse, diff) are
// tested against the real ostree on one history built by strata (plus a
// few commits and refs made by ostree): TestReadVerbs builds it once per
// repository mode and runs the per-verb tests of log_test.go, show_test.go,
// ls_test.go, cat_test.go, refs_test.go, revparse_test.go and diff_test.go.

type readFixture struct {
	bin      string
	repo     string
	src      string // the tree of os/main (after the changes)
	mode     string
	firstDir string // the tree of os/main^
}

func TestReadVerbs(t *testing.T) {
	bin := buildCLI(t)
	for _, mode := range []string{"archive", "bare"} {
		t.Run(mode, func(t *testing.T) {
			f := newReadFixture(t, bin, mode)
			for _, v := range []struct {
				name string
				fn   func(*testing.T, *readFixture)
			}{
				{"log", testLog},
				{"show", testShow},
				{"ls", testLs},
				{"cat", testCat},
				{"refs", testRefs},
				{"rev-parse", testRevParse},
				{"diff", testDiff},
				{"errors", testReadErrors},
			} {
				t.Run(v.name, func(t *testing.T) { v.fn(t, f) })
			}
		})
	}
}

func newReadFixture(t *testing.T, bin, mode string) *readFixture {
	t.Helper()
	f := &readFixture{bin: bin, mode: mode, repo: filepath.Join(t.TempDir(), "repo")}
	src := testtree.Build(t, t.TempDir())
	f.firstDir = filepath.Join(t.TempDir(), "first")
	f.mustRun(t, "cp", "-a", src, f.firstDir)
	f.strata(t, "init", "--mode="+mode)
	f.strata(t, "commit", "-b", "os/main", "--tree=dir="+src, "-s", "first", "--add-metadata-string=version=1.0", "--timestamp=2024-01-01T00:00:00Z")

	// Every kind of change: content, mode, removal (file and directory),
	// addition (file and nested directories), type changes both ways.
	p := func(s string) string { return filepath.Join(src, s) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(p("hello.txt"), []byte("changed\n"), 0o644))
	must(os.Remove(p("readonly")))
	must(os.MkdirAll(p("newdir/sub"), 0o755))
	must(os.WriteFile(p("newdir/sub/f"), []byte("f"), 0o644))
	must(os.WriteFile(p("bin/zz"), []byte("zz"), 0o644))
	must(os.Chmod(p("etc"), 0o700))
	must(os.Chmod(p("bin/tool"), 0o700))
	must(os.RemoveAll(p("var")))
	must(os.Remove(p("dir-link")))
	must(os.MkdirAll(p("dir-link"), 0o755))
	must(os.WriteFile(p("dir-link/in"), []byte("in"), 0o644))
	must(os.Remove(p("empty-dir")))
	must(os.WriteFile(p("empty-dir"), []byte("now a file"), 0o644))
	f.strata(t, "commit", "-b", "os/main", "--tree=dir="+src, "-s", "second", "-m", "a body\nof two lines", "--timestamp=2024-01-02T10:00:00Z")
	f.src = src

	// Commits made by ostree: no subject, a multi-line body, typed
	// metadata, detached metadata, a multi-line subject.
	small := t.TempDir()
	must(os.WriteFile(filepath.Join(small, "f"), []byte("x\n"), 0o644))
	f.ostree(t, "commit", "-b", "weird", "--tree=dir="+small, "--add-metadata=num=uint32 5", "--add-metadata=big=uint64 1234567890123",
		`--add-metadata=arr=["a","b"]`, "--add-metadata=flag=true", "--add-metadata-string=version=2.0",
		"-m", "body line1\n\n  indented\nlast\n", "--subject=", "--timestamp=2030-05-06T07:08:09Z")
	f.ostree(t, "commit", "-b", "weird", "--tree=dir="+small, "-s", "multi\nline subject", "--add-detached-metadata-string=sig=abc", "--timestamp=2030-05-06T07:08:10Z")
	f.ostree(t, "refs", "--create=origin:os/main", "os/main")
	f.ostree(t, "refs", "--create=os/other", "os/main^")
	f.ostree(t, "refs", "-c", "--create=org.example.Os:mirror/x", "os/main")
	f.ostree(t, "remote", "add", "--no-gpg-verify", "--collection-id=org.example.Rem", "origin", "http://example.invalid/")
	return f
}

// run runs a command and returns stdout, stderr and the exit code.
func run(t *testing.T, name string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out.String(), errb.String(), code
}

func (f *readFixture) mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, errs, code := run(t, name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\n%s%s", name, strings.Join(args, " "), code, out, errs)
	}
	return out
}

func (f *readFixture) strata(t *testing.T, args ...string) string {
	t.Helper()
	return f.mustRun(t, f.bin, append([]string{"--repo=" + f.repo}, args...)...)
}

func (f *readFixture) ostree(t *testing.T, args ...string) string {
	t.Helper()
	return f.mustRun(t, "ostree", append([]string{"--repo=" + f.repo}, args...)...)
}

// sameAsOstree runs args with both binaries and requires the same stdout
// and exit status, after norm (nil: byte for byte).
func (f *readFixture) sameAsOstree(t *testing.T, norm func(string) string, args ...string) {
	t.Helper()
	full := append([]string{"--repo=" + f.repo}, args...)
	want, werr, wcode := run(t, "ostree", full...)
	got, gerr, gcode := run(t, f.bin, full...)
	if norm != nil {
		want, got = norm(want), norm(got)
	}
	if want != got || wcode != gcode {
		t.Errorf("%s: outputs differ (ostree exit %d, strata exit %d)\nostree:\n%s%s\nstrata:\n%s%s",
			strings.Join(args, " "), wcode, gcode, want, werr, got, gerr)
	}
}

// sortedLines normalises an output whose line order ostree leaves to a
// hash table or readdir.
func sortedLines(s string) string {
	lines := strings.SplitAfter(s, "\n")
	sort.Strings(lines)
	return strings.Join(lines, "")
}

// rev returns what ostree resolves rev to.
func (f *readFixture) rev(t *testing.T, rev string) string {
	t.Helper()
	return strings.TrimSpace(f.ostree(t, "rev-parse", rev))
}

// copyRepo returns a copy of the repository for tests that damage it.
func (f *readFixture) copyRepo(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	f.mustRun(t, "cp", "-a", f.repo, dst)
	return dst
}

// testReadErrors: bad input is one "error: " line on stderr, exit 1,
// nothing on stdout.
func testReadErrors(t *testing.T, f *readFixture) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"show", "nosuchref"}, "no such ref or commit"},
		{[]string{"log", "nosuchref"}, "no such ref or commit"},
		{[]string{"ls", "nosuchref"}, "no such ref or commit"},
		{[]string{"cat", "nosuchref", "/hello.txt"}, "no such ref or commit"},
		{[]string{"rev-parse", "nosuchref"}, "no such ref or commit"},
		{[]string{"diff", "nosuchref", "os/main"}, "no such ref or commit"},
		{[]string{"refs", "--create=x", "nosuchref"}, "no such ref or commit"},
		{[]string{"show", "os/main^^"}, "has no parent"},
		{[]string{"cat", "os/main", "/etc"}, "is a directory"},
		{[]string{"cat", "os/main", "/nope"}, "no such file or directory"},
		{[]string{"cat", "os/main", "/dangling"}, "no such file or directory"},
		{[]string{"ls", "os/main", "/nope"}, "no such file or directory"},
		{[]string{"ls", "os/main", "/hello.txt/x"}, "not a directory"},
		{[]string{"show", "--print-metadata-key=nokey", "os/main"}, "No such metadata key 'nokey'"},
		{[]string{"show", "--print-detached-metadata-key=k", "os/main"}, "No detached metadata"},
		{[]string{"refs", "--create=os/main", "os/main^"}, "already exists"},
		{[]string{"refs", "--create=os", "os/main"}, "in the way"},
		{[]string{"refs", "--delete"}, "PREFIX is required"},
		{[]string{"refs", "os/"}, "invalid refspec"},
		{[]string{"rev-parse", "--single"}, "Multiple commit objects"},
		{[]string{"rev-parse", "--single", "os/main"}, "Cannot specify arguments"},
		{[]string{"diff", "os/main", "/nonexistent-dir"}, "no such file or directory"},
	} {
		out, errs, code := run(t, f.bin, append([]string{"--repo=" + f.repo}, tc.args...)...)
		lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
		if code != 1 || out != "" || len(lines) != 1 || !strings.HasPrefix(lines[0], "error: ") || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%v: want exit 1, no output, one error line with %q; got exit %d, stdout %q, stderr %q", tc.args, tc.want, code, out, errs)
		}
	}
}
