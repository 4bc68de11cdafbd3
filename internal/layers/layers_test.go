// Package layers holds a test that keeps the package layering honest: a
// package may import only packages of lower layers (and a few named
// same-layer neighbours). A new package must be given a layer here.
package layers

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/strata-os/strata"

// layer of every package, lowest first.
var layer = map[string]int{
	"fsutil":   0,
	"progress": 0,
	"gvariant": 0,
	"ghash":    0,
	"errdefs":  0,
	"dist":     0,

	"objects": 1,

	"repo": 2,

	"commit":   3,
	"checkout": 3,
	"diff":     3,
	"tree":     3,
	"etcmerge": 3,
	"ocilayer": 3,

	"remote":    4,
	"sign":      4,
	"summary":   4,
	"fetch":     4,
	"fleetlock": 4,
	"imgpolicy": 4,

	"pull":       5,
	"bootloader": 5,
	"container":  5,
	"esp":        5,
	"grubcfg":    5,

	"sysroot":     6,
	"prepareroot": 6,

	"updates": 7,
	"compose": 7,

	"upgrader": 7,
	"install":  7,
	"health":   7,

	"cmd/strata": 9,

	// Test and tooling packages sit on top.
	"internal/testtree": 9,
	"internal/testrepo": 9,
	"internal/demoos":   9,
	"internal/testos":   9,
	"e2e":               10,
	"internal/layers":   9,
	"interop":           10,
	"bench":             10,

	"internal/faultserver":  9,
	"internal/etcdtest":     9,
	"internal/registrytest": 9,

	"internal/demoos/demo": 10,
}

// sameLayer lists allowed imports between packages of one layer.
var sameLayer = map[string][]string{
	// ocilayer reads layers with commit's hardened tar reader and writes
	// trees with its MTree.
	"ocilayer": {"commit"},
	// The update agent checks and stages through the upgrader.
	"updates": {"upgrader"},
	"diff":    {"tree"}, // diff compares the trees tree names and walks
	"esp":     {"bootloader"},
	"grubcfg": {"bootloader"},
	// The composed test OS boots on the demo OS's QEMU harness.
	"internal/testos": {"internal/demoos"},
}

func TestLayering(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	problems, seen, err := check(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	if seen < 10 {
		t.Fatalf("only %d Go files checked: is the walk broken?", seen)
	}
}

// TestDetectsViolation runs the check on testdata/bad, where objects
// imports repo (upward) and "mystery" has no layer.
func TestDetectsViolation(t *testing.T) {
	problems, _, err := check("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(problems, "\n")
	for _, want := range []string{"objects (layer 1) must not import repo (layer 2)", "package mystery has no layer"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing problem %q in:\n%s", want, got)
		}
	}
}

func check(root string) (problems []string, seen int, err error) {
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "out" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		rel = filepath.ToSlash(rel)
		own, ok := layer[rel]
		if !ok {
			errorf("package %s has no layer: add it to internal/layers", rel)
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		seen++
		for _, imp := range f.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			dep, ok := strings.CutPrefix(path, module+"/")
			if !ok {
				continue
			}
			dl, ok := layer[dep]
			if !ok {
				errorf("%s imports %s, which has no layer", rel, dep)
				continue
			}
			if dl < own {
				continue
			}
			allowed := false
			for _, s := range sameLayer[rel] {
				allowed = allowed || s == dep
			}
			if dl > own || !allowed {
				errorf("%s (layer %d) must not import %s (layer %d)", rel, own, dep, dl)
			}
		}
		return nil
	})
	return problems, seen, err
}
