package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The --json outputs are held by golden files (testdata/*.json), and the
// golden files by docs/json.md: every key an output has must be documented
// in the section of its verb, and every field a section's tables list must
// appear in some golden file of that section (or be listed in
// notInGolden with the reason). Regenerate the files with
//
//	go test ./cmd/strata -run Golden -update
//
// and review the diff (and docs/json.md) before committing.

var update = flag.Bool("update", false, "rewrite cmd/strata/testdata/*.json from the current outputs")

// goldenCase is one --json output: the doc section (a substring of its
// "## " heading in docs/json.md) and the output.
type goldenCase struct {
	name, section string
	out           string
}

// notInGolden lists documented fields the fixtures do not produce, with
// why, so that the reverse check (documented -> produced) stays exact.
var notInGolden = map[string]string{
	"related":                   "commits with related objects are not made by strata or ostree commit",
	"progress":                  "pull progress lines are emitted once a second: too fast a pull has none, and their figures depend on timing",
	"phase":                     "progress line",
	"metadata_done":             "progress line",
	"objects_done":              "progress line",
	"objects_total":             "progress line",
	"bytes_done":                "progress line",
	"bytes_total":               "progress line",
	"bytes_per_second":          "progress line",
	"eta_seconds":               "progress line",
	"content_bytes":             "needs commits with ostree.sizes, which neither tool writes by default",
	"disk_bytes":                "needs commits with ostree.sizes",
	"signatures":                "pulls with verification are tested in pull_test.go",
	"staged":                    "a staged deployment needs a booted system (tested in admin_crash_test.go)",
	"pending":                   "needs a booted system",
	"booted":                    "needs a booted system",
	"container_image_reference": "deployments of container images are tested in the container tests",
	"image_digest":              "deployments of container images are tested in the container tests",
}

func TestGolden(t *testing.T) {
	bin := buildCLI(t)
	var cases []goldenCase
	tmp := t.TempDir()
	strata := func(args ...string) string {
		t.Helper()
		out, errOut, code := run(t, bin, args...)
		if code != 0 {
			t.Fatalf("strata %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}

	// A repository with two commits of a small tree (a file with an
	// xattr, a symlink, a directory), the second one signed.
	repoDir := filepath.Join(tmp, "repo")
	r := "--repo=" + repoDir
	strata(r, "init", "--mode=archive")
	tree := filepath.Join(tmp, "tree")
	writeTree(t, tree, map[string]string{"etc/hosts": "127.0.0.1 localhost\n", "usr/bin/tool": "v1\n", "README": "read me\n"})
	if err := os.Symlink("usr/bin/tool", filepath.Join(tree, "tool")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(tree, "README"), "user.golden", []byte("value\x00"), 0); err != nil {
		t.Fatalf("user xattrs are needed on %s: %v", tmp, err)
	}
	common := []string{r, "commit", "-b", "os/main", "--owner-uid=0", "--owner-gid=0", "--tree=dir=" + tree}
	strata(append(common, "-s", "first", "--add-metadata-string=version=1.0", "--timestamp=2024-01-01T00:00:00Z")...)
	writeTree(t, tree, map[string]string{"usr/bin/tool": "v2\n", "usr/lib/new": "new\n"})
	if err := os.Remove(filepath.Join(tree, "etc/hosts")); err != nil {
		t.Fatal(err)
	}
	strata(append(common, "-s", "second", "-m", "with a body", "--add-metadata-string=version=2.0",
		"--add-metadata=build=uint64 7", "--timestamp=2024-01-02T10:00:00Z")...)
	// A fixed ed25519 key (ed25519 signatures are deterministic).
	secret := base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize)))
	strata(r, "sign", "os/main", secret)
	strata(r, "refs", "--create=origin:os/main", "os/main")
	strata(r, "refs", "-c", "--create=org.example.Os:mirror/x", "os/main^")
	add := func(name, section string, args ...string) {
		cases = append(cases, goldenCase{name: name, section: section, out: strata(append([]string{r}, args...)...)})
	}
	add("show", "`show --json REV`", "show", "--json", "os/main")
	add("log", "`show --json REV`", "log", "--json", "os/main")
	add("ls", "`ls --json", "ls", "--json", "-R", "os/main")
	add("refs", "`refs --json", "refs", "--json")
	add("refs-collections", "`refs --json", "refs", "--json", "-c")
	add("diff", "`diff --json", "diff", "--json", "os/main^", "os/main")
	add("diff-stats", "`diff --json", "diff", "--json", "--stats", "os/main^", "os/main")

	// Pulls: from the repository over file://, and pull-local.
	strata(r, "summary", "-u")
	dst := filepath.Join(tmp, "dst")
	d := "--repo=" + dst
	strata(d, "init", "--mode=archive")
	strata(d, "remote", "add", "--no-gpg-verify", "origin", "file://"+repoDir)
	cases = append(cases, goldenCase{name: "remote-refs", section: "`refs --json", out: strata(d, "remote", "refs", "--json", "origin")})
	cases = append(cases, goldenCase{name: "pull", section: "`pull --json`", out: strata(d, "pull", "--json", "origin", "os/main")})
	cases = append(cases, goldenCase{name: "pull-dry-run", section: "`pull --json`", out: strata(d, "pull", "--json", "--dry-run", "--depth=1", "origin", "os/main")})
	local := filepath.Join(tmp, "local")
	strata("--repo="+local, "init", "--mode=bare-user")
	cases = append(cases, goldenCase{name: "pull-local", section: "`pull --json`", out: strata("--repo="+local, "pull-local", "--json", repoDir, "os/main")})

	// A sysroot with two deployments (default and rollback).
	f := newAdminFixture(t)
	sr := "--sysroot=" + f.sysroot
	f.ok("admin", "deploy", sr, "--os=testos", "--karg=root=/dev/vda1", "testos/stable")
	f.commit("2.0", "2024-01-02 00:00:00")
	f.ok("admin", "deploy", sr, "--os=testos", "testos/stable")
	f.ok("admin", "pin", sr, "1")
	cases = append(cases, goldenCase{name: "status", section: "`status --json`", out: strata("status", "--json", sr)})
	cases = append(cases, goldenCase{name: "admin-status", section: "`status --json`", out: strata("admin", "status", "--json", sr)})

	docs := docSections(t)
	produced := map[string]map[string]bool{} // section -> keys
	for _, c := range cases {
		got := normaliseGolden(c.out, map[string]string{tmp: "$TMP", f.sysroot: "$SYSROOT"})
		p := filepath.Join("testdata", c.name+".json")
		if *update {
			if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		} else if want, err := os.ReadFile(p); err != nil {
			t.Errorf("%s: %v (run go test ./cmd/strata -run Golden -update)", c.name, err)
		} else if string(want) != got {
			t.Errorf("%s: output differs from %s (if intended: -update, and check docs/json.md)\ngot:\n%s\nwant:\n%s", c.name, p, got, want)
		}
		documented, ok := docs[c.section]
		if !ok || len(documented.table) == 0 {
			t.Fatalf("docs/json.md has no section %s with a table of fields", c.section)
		}
		if produced[c.section] == nil {
			produced[c.section] = map[string]bool{}
		}
		for _, k := range jsonKeys(t, c.name, got) {
			produced[c.section][k] = true
			if !documented.all[k] {
				t.Errorf("%s: key %q is not documented in docs/json.md's section %s", c.name, k, c.section)
			}
		}
	}
	for section, keys := range produced {
		for _, field := range docs[section].table {
			if !keys[field] && notInGolden[field] == "" {
				t.Errorf("docs/json.md section %s documents %q, which no golden file of that section has (add a fixture or a notInGolden reason)", section, field)
			}
		}
	}
}

// writeTree writes files (path -> content) under dir, directories 0755,
// files 0644.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			err = os.Chmod(p, 0o755)
		}
		return err
	})
}

// volatile are the fields whose values depend on the run: wall time.
var volatile = regexp.MustCompile(`("seconds": ?)[0-9.]+`)

// normaliseGolden replaces temporary paths and run-dependent values, and
// drops pull progress lines (their presence depends on timing).
func normaliseGolden(out string, paths map[string]string) string {
	// Longest path first: the sysroot is under the test's temp dirs.
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		out = strings.ReplaceAll(out, k, paths[k])
	}
	out = volatile.ReplaceAllString(out, `${1}0`)
	var keep []string
	for _, line := range strings.SplitAfter(out, "\n") {
		if !strings.HasPrefix(line, `{"event":"progress"`) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}

// jsonKeys returns every object key in a JSON document or in JSON lines,
// at any depth, except the keys of metadata objects and xattrs (which are
// data: metadata keys, xattr names).
func jsonKeys(t *testing.T, name, out string) []string {
	t.Helper()
	var keys []string
	var walk func(v any, dataMap bool)
	walk = func(v any, dataMap bool) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if !dataMap {
					keys = append(keys, k)
				}
				walk(e, k == "metadata" || k == "detached_metadata" || k == "xattrs")
			}
		case []any:
			for _, e := range x {
				walk(e, false)
			}
		}
	}
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", name, err, out)
		}
		walk(v, false)
	}
	return keys
}

// docSection is what docs/json.md documents for one section: table is the
// field names of its tables' first column, all every name it mentions in
// backquotes or double quotes (fields described in prose too).
type docSection struct {
	table []string
	all   map[string]bool
}

var (
	backquoted = regexp.MustCompile("`([a-z_]+)`")
	quoted     = regexp.MustCompile(`"([a-z_]+)"`)
)

func docSections(t *testing.T) map[string]docSection {
	t.Helper()
	data, err := os.ReadFile("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docSection{}
	parts := strings.Split(string(data), "\n## ")
	for _, part := range parts[1:] {
		heading, body, _ := strings.Cut(part, "\n")
		s := docSection{all: map[string]bool{}}
		for _, m := range backquoted.FindAllStringSubmatch(body, -1) {
			s.all[m[1]] = true
		}
		for _, m := range quoted.FindAllStringSubmatch(body, -1) {
			s.all[m[1]] = true
		}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "| field") || strings.HasPrefix(line, "|---") {
				continue
			}
			first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
			if !strings.HasPrefix(line, "| `") {
				continue
			}
			for _, m := range backquoted.FindAllStringSubmatch(first, -1) {
				s.table = append(s.table, m[1])
			}
		}
		// Each section is found by a substring of its heading.
		out[heading] = s
	}
	bySub := map[string]docSection{}
	for _, sub := range []string{"`show --json REV`", "`ls --json", "`refs --json", "`diff --json", "`status --json`", "`pull --json`"} {
		for h, s := range out {
			if strings.Contains(h, sub) {
				bySub[sub] = s
			}
		}
	}
	return bySub
}
