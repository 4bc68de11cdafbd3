package bootloader

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// update regenerates the golden files under testdata from the real ostree.
var update = flag.Bool("update", false, "rewrite golden files from the real ostree")

// ostreeSysroot is a sysroot made and deployed by the real ostree, with
// sysroot.bootloader=none so that only the BLS entries are written.
type ostreeSysroot struct {
	t   *testing.T
	dir string
	os  string
}

func runOstree(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ostree", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newOstreeSysroot(t *testing.T, osname string) *ostreeSysroot {
	t.Helper()
	dir := t.TempDir()
	// Deployments are immutable (chattr +i): undo that before TempDir's
	// removal, which runs after this cleanup.
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join(dir, "ostree/deploy/*/deploy/*"))
		for _, d := range dirs {
			exec.Command("chattr", "-i", d).Run()
		}
	})
	runOstree(t, "admin", "init-fs", dir)
	runOstree(t, "--repo="+filepath.Join(dir, "ostree/repo"), "config", "set", "sysroot.bootloader", "none")
	runOstree(t, "admin", "os-init", "--sysroot="+dir, osname)
	return &ostreeSysroot{t: t, dir: dir, os: osname}
}

// commit commits tree on branch with a version and returns the checksum.
func (s *ostreeSysroot) commit(tree, branch, version string) string {
	s.t.Helper()
	args := []string{"--repo=" + filepath.Join(s.dir, "ostree/repo"), "commit", "-b", branch, "--tree=dir=" + tree, "-s", "test"}
	if version != "" {
		args = append(args, "--add-metadata-string=version="+version)
	}
	return strings.TrimSpace(runOstree(s.t, args...))
}

func (s *ostreeSysroot) deploy(ref string, args ...string) {
	s.t.Helper()
	runOstree(s.t, append([]string{"admin", "deploy", "--sysroot=" + s.dir, "--os=" + s.os}, append(args, ref)...)...)
}

// entries returns the current boot/loader/entries files by name.
func (s *ostreeSysroot) entries() map[string][]byte {
	s.t.Helper()
	dir := filepath.Join(s.dir, "boot/loader/entries")
	ents, err := os.ReadDir(dir)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			s.t.Fatal(err)
		}
		out[e.Name()] = data
	}
	return out
}

// deployments returns the deployment directories, newest serial last.
func (s *ostreeSysroot) deploymentDirs() []string {
	dirs, _ := filepath.Glob(filepath.Join(s.dir, "ostree/deploy", s.os, "deploy/*.[0-9]*"))
	var out []string
	for _, d := range dirs {
		if !strings.HasSuffix(d, ".origin") {
			out = append(out, d)
		}
	}
	return out
}

// writeTree creates files (name -> content; a trailing "/" makes a
// directory, content "->target" a symlink) under a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s: real ostree now gives\n%s\nthe golden file has\n%s", name, got, want)
	}
}
