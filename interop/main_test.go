// Package interop holds tests that run the strata CLI and the real ostree
// CLI on the same inputs and compare what they produce byte for byte.
package interop

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/strata-os/strata/internal/testtree"
)

// strataBin is the strata CLI, built once by TestMain.
var strataBin string

// scratch is a directory shared by the package's tests (fixture trees).
var scratch string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	scratch, err = os.MkdirTemp("", "strata-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(scratch)
	strataBin = filepath.Join(scratch, "strata")
	build := exec.Command("go", "build", "-o", strataBin, "github.com/strata-os/strata/cmd/strata")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building strata:", err)
		return 1
	}
	return m.Run()
}

var (
	treeOnce sync.Once
	treeDir  string
)

// fixtureTree returns internal/testtree's tree, built once per run.
func fixtureTree(t *testing.T) string {
	t.Helper()
	treeOnce.Do(func() {
		d := filepath.Join(scratch, "tree")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		testtree.Build(t, d)
		treeDir = d
	})
	if treeDir == "" {
		t.Fatal("fixture tree was not built")
	}
	return treeDir
}

// cmdResult is what one CLI run produced.
type cmdResult struct {
	out, errOut string
	err         error
}

func execTool(bin string, args ...string) cmdResult {
	var out, errOut bytes.Buffer
	c := exec.Command(bin, args...)
	c.Stdout, c.Stderr = &out, &errOut
	c.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	err := c.Run()
	return cmdResult{out: out.String(), errOut: errOut.String(), err: err}
}

// mustRun runs a tool and fails the test when it fails.
func mustRun(t *testing.T, bin string, args ...string) string {
	t.Helper()
	r := execTool(bin, args...)
	if r.err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), r.err, r.out, r.errOut)
	}
	return r.out
}

// objectNames lists the object files of a repo (relative to objects/),
// sorted, without the archive/bare file extension difference.
func objectNames(t *testing.T, repoDir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(repoDir, "objects")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, strings.TrimSuffix(rel, "z"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// stagingLeftovers lists what a repo's tmp/ still holds apart from the
// cache directory.
func stagingLeftovers(t *testing.T, repoDir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(repoDir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != "cache" {
			out = append(out, e.Name())
		}
	}
	return out
}
