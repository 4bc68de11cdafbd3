package interop

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var modes = []string{"bare", "bare-user", "bare-user-only", "archive"}

// commitCase is one `commit` invocation run against both tools. In args,
// {tree}, {ov1}, {ov2}, {clashdir}, {clashfile} and {bodyfile} name fixture paths and {prev} the
// checksum the previous case printed.
type commitCase struct {
	name    string
	args    []string
	wantErr bool
}

// overlays builds small trees to overlay on the fixture: ov1 changes a
// file, adds files and a directory; ov2 adds to ov1's directory and
// replaces a file with a symlink; clashDir has a directory where the
// fixture has a file and clashFile a file where it has a directory.
func overlays(t *testing.T) (ov1, ov2, clashDir, clashFile string) {
	t.Helper()
	base := t.TempDir()
	ov1, ov2 = filepath.Join(base, "ov1"), filepath.Join(base, "ov2")
	clashDir, clashFile = filepath.Join(base, "clash-dir"), filepath.Join(base, "clash-file")
	write := func(p, data string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(ov1, "hello.txt"), "replaced by overlay 1\n", 0o644)
	write(filepath.Join(ov1, "etc/os-release"), "NAME=overlaid\n", 0o644)
	write(filepath.Join(ov1, "new/added"), "added\n", 0o640)
	write(filepath.Join(ov1, "usr/lib/extra.so"), "extra\n", 0o755)
	write(filepath.Join(ov2, "new/more"), "more\n", 0o644)
	write(filepath.Join(ov2, "new/added"), "added, then replaced\n", 0o600)
	if err := os.Symlink("hello.txt", filepath.Join(ov2, "private")); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(clashDir, "empty/now-a-dir"), "the fixture's empty file as a directory\n", 0o644)
	write(filepath.Join(clashFile, "usr"), "the fixture's usr directory as a file\n", 0o644)
	for _, d := range []string{ov1, ov2, clashDir, clashFile} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return ov1, ov2, clashDir, clashFile
}

func commitCases() []commitCase {
	const ts = "--timestamp=@1700000000"
	return []commitCase{
		{name: "basic", args: []string{"-b", "main", "-s", "first commit", "-m", "a body\nover two lines", ts, "--tree=dir={tree}"}},
		{name: "path-argument", args: []string{"-b", "patharg", "-s", "positional", ts, "{tree}"}},
		{name: "second-on-branch-gets-parent", args: []string{"-b", "main", "-s", "second", "--timestamp=@1700000100", "--tree=dir={ov1}"}},
		{name: "third-on-branch", args: []string{"-b", "main", "-s", "third", "--timestamp=@1700000200", "--tree=dir={tree}"}},
		{name: "explicit-parent", args: []string{"-b", "side", "--parent={prev}", ts, "--tree=dir={ov2}"}},
		{name: "parent-none-on-existing-branch", args: []string{"-b", "main", "--parent=none", "--timestamp=@1700000300", "--tree=dir={ov1}"}},
		{name: "metadata-strings-in-order", args: []string{"-b", "meta", ts, "--tree=dir={tree}",
			"--add-metadata-string=zeta=last letter", "--add-metadata-string=alpha=first", "--add-metadata-string=version=1.2.3",
			"--add-metadata-string=empty=", "--add-metadata-string=zeta=given twice", "--add-metadata-string=eq=a=b"}},
		{name: "metadata-typed", args: []string{"-b", "typed", ts, "--tree=dir={tree}",
			"--add-metadata=s='str'", "--add-metadata=n=42", "--add-metadata=u=uint64 7", "--add-metadata=b=true",
			"--add-metadata-string=plain=after the typed ones on the command line"}},
		{name: "metadata-overriding-binding-key", args: []string{"-b", "override", ts, "--tree=dir={tree}",
			"--add-metadata-string=ostree.ref-binding=mine"}},
		{name: "bind-ref", args: []string{"-b", "bound", ts, "--tree=dir={tree}", "--bind-ref=zz/last", "--bind-ref=aa/first"}},
		{name: "no-bindings", args: []string{"-b", "unbound", ts, "--tree=dir={tree}", "--no-bindings", "--bind-ref=ignored"}},
		{name: "orphan", args: []string{"--orphan", "-s", "orphan", ts, "--tree=dir={ov1}"}},
		{name: "orphan-with-bind-ref", args: []string{"--orphan", ts, "--tree=dir={ov2}", "--bind-ref=some/ref"}},
		{name: "owner", args: []string{"-b", "owner", ts, "--tree=dir={tree}", "--owner-uid=1000", "--owner-gid=2000"}},
		{name: "owner-root", args: []string{"-b", "owner-root", ts, "--tree=dir={tree}", "--owner-uid=0", "--owner-gid=0"}},
		{name: "no-xattrs", args: []string{"-b", "noxattrs", ts, "--tree=dir={tree}", "--no-xattrs"}},
		{name: "canonical-permissions", args: []string{"-b", "canonical", ts, "--tree=dir={tree}", "--canonical-permissions"}},
		{name: "tree-ref-then-dir", args: []string{"-b", "overlay-ref", ts, "--tree=ref=main", "--tree=dir={ov1}"}},
		{name: "tree-dir-then-ref", args: []string{"-b", "overlay-ref2", ts, "--tree=dir={ov2}", "--tree=ref=side"}},
		{name: "tree-ref-only", args: []string{"-b", "ref-only", ts, "--tree=ref=meta"}},
		{name: "tree-dirs-overlaid", args: []string{"-b", "overlay-dirs", ts, "--tree=dir={tree}", "--tree=dir={ov1}", "--tree=dir={ov2}"}},
		{name: "tree-dirs-overlaid-again-ref", args: []string{"-b", "overlay-dirs2", ts, "--tree=ref=overlay-dirs", "--tree=dir={ov2}", "--tree=dir={ov1}"}},
		{name: "skip-base", args: []string{"-b", "skip", ts, "--tree=dir={tree}"}},
		{name: "skip-if-unchanged-unchanged", args: []string{"-b", "skip", "--timestamp=@1700000999", "--tree=dir={tree}", "--skip-if-unchanged"}},
		{name: "skip-if-unchanged-changed", args: []string{"-b", "skip", "--timestamp=@1700000999", "--tree=dir={ov1}", "--skip-if-unchanged"}},
		{name: "skip-if-unchanged-new-branch", args: []string{"-b", "skip-new", ts, "--tree=dir={tree}", "--skip-if-unchanged"}},
		{name: "body-file", args: []string{"-b", "bodyfile", ts, "-s", "subject", "--body-file={bodyfile}", "--tree=dir={ov2}"}},
		{name: "timestamp-date-time", args: []string{"-b", "when", "--timestamp=2023-11-14 22:13:20", "--tree=dir={ov2}"}},
		{name: "deep-branch-name", args: []string{"-b", "os/x86_64/stable-1.0_a", ts, "--tree=dir={ov2}"}},
		{name: "unicode-subject", args: []string{"-b", "unicode", "-s", "ünïcødé 🚀 'quoted'", ts, "--tree=dir={ov2}"}},
		// Failures: both tools refuse, and strata changes nothing (ostree
		// may leave objects behind, so these run last).
		{name: "missing-tree-ref", args: []string{"-b", "never", ts, "--tree=ref=no-such-ref"}, wantErr: true},
		{name: "bad-branch-name", args: []string{"-b", "bad..name/", ts, "--tree=dir={ov2}"}, wantErr: true},
		{name: "bad-metadata-variant", args: []string{"-b", "never", ts, "--tree=dir={ov2}", "--add-metadata=x=not a variant"}, wantErr: true},
		{name: "overlay-dir-over-file", args: []string{"-b", "never", ts, "--tree=dir={tree}", "--tree=dir={clashdir}"}, wantErr: true},
		{name: "overlay-file-over-dir", args: []string{"-b", "never", ts, "--tree=dir={tree}", "--tree=dir={clashfile}"}, wantErr: true},
		{name: "overlay-ref-dir-over-file", args: []string{"-b", "never", ts, "--tree=dir={clashdir}", "--tree=ref=patharg"}, wantErr: true},
		{name: "overlay-ref-file-over-dir", args: []string{"-b", "never", ts, "--tree=dir={clashfile}", "--tree=ref=patharg"}, wantErr: true},
		{name: "overlay-dir-over-ref-file", args: []string{"-b", "never", ts, "--tree=ref=patharg", "--tree=dir={clashdir}"}, wantErr: true},
		{name: "missing-dir", args: []string{"-b", "never", ts, "--tree=dir={tree}/no/such/dir"}, wantErr: true},
	}
}

// TestCommitMatchesOstree commits the same inputs with strata and ostree in
// every repo mode and requires the same commit checksums, the same set of
// objects, and a strata repo that ostree itself reads and fscks cleanly.
func TestCommitMatchesOstree(t *testing.T) {
	tree := fixtureTree(t)
	ov1, ov2, clashDir, clashFile := overlays(t)
	bodyFile := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(bodyFile, []byte("body from a file\n\nwith a blank line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			orepo, srepo := filepath.Join(dir, "ostree"), filepath.Join(dir, "strata")
			mustRun(t, "ostree", "init", "--repo="+orepo, "--mode="+mode)
			mustRun(t, strataBin, "init", "--repo="+srepo, "--mode="+mode)
			prev := ""
			var before []string
			for _, c := range commitCases() {
				if c.wantErr && before == nil {
					checkRepoAgainstOstree(t, orepo, srepo)
					before = append(objectNames(t, srepo), mustRun(t, "ostree", "--repo="+srepo, "refs"))
				}
				args := make([]string, len(c.args))
				for i, a := range c.args {
					a = strings.ReplaceAll(a, "{tree}", tree)
					a = strings.ReplaceAll(a, "{ov1}", ov1)
					a = strings.ReplaceAll(a, "{ov2}", ov2)
					a = strings.ReplaceAll(a, "{clashdir}", clashDir)
					a = strings.ReplaceAll(a, "{clashfile}", clashFile)
					a = strings.ReplaceAll(a, "{bodyfile}", bodyFile)
					args[i] = strings.ReplaceAll(a, "{prev}", prev)
				}
				if sum := compareCommit(t, c, orepo, srepo, args); sum != "" {
					prev = sum
				}
			}
			after := append(objectNames(t, srepo), mustRun(t, "ostree", "--repo="+srepo, "refs"))
			if !reflect.DeepEqual(before, after) {
				t.Errorf("failed commits changed strata's repo: objects and refs went from\n%v\nto\n%v", minus(before, after), minus(after, before))
			}
			if left := stagingLeftovers(t, srepo); len(left) != 0 {
				t.Errorf("failed commits left %v in tmp/", left)
			}
		})
	}
}

// TestCommitCollectionMatchesOstree checks the bindings written in a repo
// with a collection ID (ostree.ref-binding then ostree.collection-binding).
func TestCommitCollectionMatchesOstree(t *testing.T) {
	tree := fixtureTree(t)
	cases := []commitCase{
		{name: "branch", args: []string{"-b", "main", "-s", "s", "--timestamp=@1700000000", "--tree=dir={tree}"}},
		{name: "bind-refs", args: []string{"-b", "main", "--timestamp=@1700000001", "--tree=dir={tree}", "--bind-ref=b", "--bind-ref=a"}},
		{name: "no-bindings", args: []string{"-b", "nb", "--timestamp=@1700000000", "--tree=dir={tree}", "--no-bindings"}},
		{name: "orphan", args: []string{"--orphan", "--timestamp=@1700000000", "--tree=dir={tree}"}},
		{name: "metadata-then-bindings", args: []string{"-b", "md", "--timestamp=@1700000000", "--tree=dir={tree}",
			"--add-metadata-string=version=2", "--add-metadata-string=ostree.collection-binding=user.given"}},
	}
	for _, mode := range []string{"bare-user", "archive"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			orepo, srepo := filepath.Join(dir, "ostree"), filepath.Join(dir, "strata")
			mustRun(t, "ostree", "init", "--repo="+orepo, "--mode="+mode, "--collection-id=org.example.Os")
			mustRun(t, strataBin, "init", "--repo="+srepo, "--mode="+mode, "--collection-id=org.example.Os")
			for _, c := range cases {
				args := make([]string, len(c.args))
				for i, a := range c.args {
					args[i] = strings.ReplaceAll(a, "{tree}", tree)
				}
				sum := compareCommit(t, c, orepo, srepo, args)
				if sum == "" {
					continue
				}
				// The binding must really be there (not just equal by
				// accident of both tools omitting it).
				got := execTool("ostree", "--repo="+srepo, "show", "--print-metadata-key=ostree.collection-binding", sum)
				all := strings.Join(c.args, " ")
				if strings.Contains(all, "--no-bindings") {
					if got.err == nil {
						t.Errorf("%s: collection binding %q despite --no-bindings", c.name, got.out)
					}
				} else if want := "org.example.Os"; strings.Contains(all, "collection-binding=user.given") && !strings.Contains(got.out, "user.given") ||
					!strings.Contains(all, "collection-binding=") && !strings.Contains(got.out, want) {
					t.Errorf("%s: collection binding = %q (%s)", c.name, got.out, got.errOut)
				}
			}
			checkRepoAgainstOstree(t, orepo, srepo)
		})
	}
}

// compareCommit runs one commit with both tools and returns the checksum
// (empty for an expected failure).
func compareCommit(t *testing.T, c commitCase, orepo, srepo string, args []string) string {
	t.Helper()
	o := execTool("ostree", append([]string{"--repo=" + orepo, "commit"}, args...)...)
	s := execTool(strataBin, append([]string{"--repo=" + srepo, "commit"}, args...)...)
	if c.wantErr {
		if o.err == nil {
			t.Errorf("%s: ostree unexpectedly succeeded: %s", c.name, o.out)
		}
		if s.err == nil {
			t.Errorf("%s: strata succeeded where ostree fails (%s): %s", c.name, strings.TrimSpace(o.errOut), s.out)
		} else if msg := strings.TrimSpace(s.errOut); msg == "" || strings.Contains(msg, "\n") {
			t.Errorf("%s: strata's error is not one line: %q", c.name, msg)
		}
		return ""
	}
	if o.err != nil {
		t.Fatalf("%s: ostree commit %q: %v\n%s", c.name, args, o.err, o.errOut)
	}
	if s.err != nil {
		t.Fatalf("%s: strata commit %q: %v\n%s", c.name, args, s.err, s.errOut)
	}
	osum, ssum := strings.TrimSpace(o.out), strings.TrimSpace(s.out)
	if osum != ssum {
		t.Errorf("%s: commit checksum: strata %s, ostree %s\nostree: %s\nstrata: %s", c.name, ssum, osum,
			rawHead(orepo, osum), rawHead(srepo, ssum))
	}
	return osum
}

// checkRepoAgainstOstree compares refs, objects, `ostree show` and `ostree
// ls -R` between the two repos, and runs `ostree fsck` on strata's.
func checkRepoAgainstOstree(t *testing.T, orepo, srepo string) {
	t.Helper()
	orefs := mustRun(t, "ostree", "--repo="+orepo, "refs")
	srefs := mustRun(t, "ostree", "--repo="+srepo, "refs")
	if orefs != srefs {
		t.Errorf("refs differ:\nostree:\n%s\nstrata:\n%s", orefs, srefs)
	}
	if on, sn := objectNames(t, orepo), objectNames(t, srepo); !reflect.DeepEqual(on, sn) {
		t.Errorf("object sets differ: ostree has %d objects, strata %d\nonly in ostree: %v\nonly in strata: %v",
			len(on), len(sn), minus(on, sn), minus(sn, on))
	}
	for _, ref := range strings.Fields(srefs) {
		for _, verb := range [][]string{{"show", ref}, {"ls", "-R", "-X", ref}, {"log", ref}} {
			want := execTool("ostree", append([]string{"--repo=" + orepo}, verb...)...)
			got := execTool("ostree", append([]string{"--repo=" + srepo}, verb...)...)
			if got.err != nil {
				t.Errorf("ostree %s on strata's repo: %v: %s", strings.Join(verb, " "), got.err, got.errOut)
			} else if got.out != want.out {
				t.Errorf("ostree %s differs:\nostree repo:\n%s\nstrata repo:\n%s", strings.Join(verb, " "), want.out, got.out)
			}
		}
	}
	if r := execTool("ostree", "--repo="+srepo, "fsck"); r.err != nil {
		t.Errorf("ostree fsck of strata's repo: %v\n%s%s", r.err, r.out, r.errOut)
	}
	if left := stagingLeftovers(t, srepo); len(left) != 0 {
		t.Errorf("strata left %v in tmp/", left)
	}
}

func minus(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

// rawHead is the start of `ostree show --raw`: the commit's metadata.
func rawHead(repoDir, sum string) string {
	out := execTool("ostree", "--repo="+repoDir, "show", "--raw", sum).out
	if _, rest, ok := strings.Cut(out, "\n"); ok {
		out = rest
	}
	if len(out) > 300 {
		out = out[:300] + "..."
	}
	return out
}

// TestStrataCommitsOntoOstreeRepo has ostree create a repo and a commit,
// then strata and ostree each add a commit on top (parent from the
// branch, the branch's tree overlaid with a directory) in copies of it:
// same checksum, and ostree fscks strata's result.
func TestStrataCommitsOntoOstreeRepo(t *testing.T) {
	tree := fixtureTree(t)
	ov1, _, _, _ := overlays(t)
	for _, mode := range []string{"bare-user", "archive"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			orepo, srepo := filepath.Join(dir, "ostree"), filepath.Join(dir, "strata")
			mustRun(t, "ostree", "init", "--repo="+orepo, "--mode="+mode)
			base := strings.TrimSpace(mustRun(t, "ostree", "--repo="+orepo, "commit", "-b", "os/main", "--timestamp=@1700000000",
				"--add-metadata-string=version=1", "--tree=dir="+tree))
			if out, err := exec.Command("cp", "-a", orepo, srepo).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v: %s", err, out)
			}
			args := []string{"-b", "os/main", "-s", "on top", "--timestamp=@1700000100", "--add-metadata-string=version=2",
				"--tree=ref=os/main", "--tree=dir=" + ov1}
			sum := compareCommit(t, commitCase{name: "on-top"}, orepo, srepo, args)
			parent := strings.TrimSpace(mustRun(t, "ostree", "--repo="+srepo, "rev-parse", "os/main^"))
			if parent != base || sum == "" {
				t.Errorf("parent of strata's commit = %s, want ostree's %s", parent, base)
			}
			checkRepoAgainstOstree(t, orepo, srepo)
		})
	}
}
