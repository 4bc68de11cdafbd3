package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testtree"
)

func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func runOut(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// TestReadVerbsMatchOstree builds a history with strata and compares what
// strata and ostree print for log, show, ls, cat, refs, rev-parse, diff.
func TestReadVerbsMatchOstree(t *testing.T) {
	bin := buildCLI(t)
	src := testtree.Build(t, t.TempDir())
	repoDir := filepath.Join(t.TempDir(), "repo")
	r := "--repo=" + repoDir
	if out, err := runOut(t, bin, r, "init", "--mode=archive"); err != nil {
		t.Fatal(out)
	}
	commit := func(args ...string) {
		t.Helper()
		if out, err := runOut(t, bin, append([]string{r, "commit", "-b", "os/main", "--tree=dir=" + src}, args...)...); err != nil {
			t.Fatal(out)
		}
	}
	commit("-s", "first", "--add-metadata-string=version=1.0", "--timestamp=2024-01-01T00:00:00Z")
	os.WriteFile(filepath.Join(src, "hello.txt"), []byte("changed\n"), 0o644)
	os.Remove(filepath.Join(src, "readonly"))
	os.MkdirAll(filepath.Join(src, "newdir/sub"), 0o755)
	os.WriteFile(filepath.Join(src, "newdir/sub/f"), []byte("f"), 0o644)
	os.Chmod(filepath.Join(src, "etc"), 0o700)
	commit("-s", "second", "-m", "a body\nof two lines", "--timestamp=2024-01-02T10:00:00Z")
	if out, err := runOut(t, bin, r, "refs", "--create=other", "os/main^"); err != nil {
		t.Fatal(out)
	}
	for _, c := range [][]string{
		{"log", "os/main"}, {"show", "os/main"}, {"show", "os/main^"}, {"show", "--print-metadata-key=version", "os/main^"},
		{"ls", "os/main"}, {"ls", "-R", "os/main"}, {"ls", "-RC", "os/main"}, {"ls", "-X", "os/main", "/hello.txt", "/etc"},
		{"ls", "-d", "os/main", "/usr"}, {"ls", "os/main", "/bin"}, {"cat", "os/main", "/hello.txt"},
		{"refs"}, {"refs", "os"}, {"rev-parse", "os/main^"}, {"rev-parse", "other"},
		{"diff", "os/main^", "os/main"}, {"diff", "os/main", "os/main^"},
	} {
		want, werr := runOut(t, "ostree", append([]string{r}, c...)...)
		got, gerr := runOut(t, bin, append([]string{r}, c...)...)
		if werr != nil || gerr != nil || want != got {
			t.Errorf("%s: outputs differ (ostree err %v, strata err %v)\nostree:\n%s\nstrata:\n%s", strings.Join(c, " "), werr, gerr, want, got)
		}
	}
	// JSON forms decode and carry the same facts.
	out, err := runOut(t, bin, r, "show", "--json", "os/main")
	if err != nil {
		t.Fatal(out)
	}
	var cj commitJSON
	if err := json.Unmarshal([]byte(out), &cj); err != nil {
		t.Fatal(err)
	}
	head, _ := runOut(t, "ostree", r, "rev-parse", "os/main")
	if cj.Checksum != strings.TrimSpace(head) || cj.Subject != "second" || cj.Date != "2024-01-02T10:00:00Z" || cj.Parent == "" {
		t.Errorf("show --json: %+v", cj)
	}
	out, _ = runOut(t, bin, r, "log", "--json", "os/main")
	var lj []commitJSON
	if err := json.Unmarshal([]byte(out), &lj); err != nil || len(lj) != 2 || lj[1].Version != "1.0" {
		t.Errorf("log --json: %v %+v", err, lj)
	}
	out, _ = runOut(t, bin, r, "refs", "--json")
	var rj []refJSON
	if err := json.Unmarshal([]byte(out), &rj); err != nil || len(rj) != 2 || rj[0].Name != "os/main" && rj[1].Name != "os/main" {
		t.Errorf("refs --json: %v %+v", err, rj)
	}
	out, _ = runOut(t, bin, r, "ls", "--json", "-R", "os/main", "/bin")
	var ej []entryJSON
	if err := json.Unmarshal([]byte(out), &ej); err != nil || len(ej) < 5 {
		t.Fatalf("ls --json: %v %s", err, out)
	}
	for _, e := range ej {
		if e.Path == "/bin/suid" && (e.Mode != 0o4755 || e.Type != "file" || len(e.Checksum) != 64) {
			t.Errorf("ls --json /bin/suid: %+v", e)
		}
	}
	// Deleting refs by prefix.
	if out, err := runOut(t, bin, r, "refs", "--delete", "other"); err != nil {
		t.Fatal(out)
	}
	if out, _ := runOut(t, "ostree", r, "refs"); strings.TrimSpace(out) != "os/main" {
		t.Errorf("after refs --delete: %q", out)
	}
}

func TestReadVerbErrors(t *testing.T) {
	bin := buildCLI(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	repoDir := filepath.Join(t.TempDir(), "repo")
	r := "--repo=" + repoDir
	runOut(t, bin, r, "init")
	if out, err := runOut(t, bin, r, "commit", "-b", "main", "--tree=dir="+src); err != nil {
		t.Fatal(out)
	}
	for _, c := range [][]string{{"show", "nosuchref"}, {"cat", "main", "/d"}, {"ls", "main", "/nope"}, {"log", "main^"}, {"refs", "--create=x", "nosuch"}} {
		out, err := runOut(t, bin, append([]string{r}, c...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err == nil || len(lines) != 1 || !strings.HasPrefix(lines[0], "error: ") {
			t.Errorf("%v: want a one-line error and failure, got %v %q", c, err, out)
		}
	}
}
