package sysroot

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

const testKver = "5.10.0-test"

// treeSpec describes a small OS tree for tests.
type treeSpec struct {
	version  string            // os-release PRETTY_NAME suffix and file content
	kernel   string            // vmlinuz content
	noInitrd bool              // leave out initramfs.img
	etc      map[string]string // usr/etc files (path -> content), added to the defaults
	varFiles map[string]string // var/ files
}

// buildTree writes a fake OS tree into a new directory.
func buildTree(t *testing.T, sp treeSpec) string {
	t.Helper()
	dir := t.TempDir()
	kernel := sp.kernel
	if kernel == "" {
		kernel = "kernel-1\n"
	}
	files := map[string]string{
		"usr/lib/modules/" + testKver + "/vmlinuz": kernel,
		"usr/lib/os-release":                       "NAME=\"Test OS\"\nID=testos\nPRETTY_NAME=\"Test OS\"\n",
		"usr/etc/hosts":                            "127.0.0.1 localhost\n",
		"usr/etc/motd":                             "hello " + sp.version + "\n",
		"usr/etc/ssh/sshd_config":                  "Port 22\n",
		"usr/bin/sh":                               "#!fake shell " + sp.version + "\n",
	}
	if !sp.noInitrd {
		files["usr/lib/modules/"+testKver+"/initramfs.img"] = "initrd for " + kernel
	}
	for k, v := range sp.etc {
		files["usr/etc/"+k] = v
	}
	for k, v := range sp.varFiles {
		files["var/"+k] = v
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"var", "boot", "proc", "sys", "dev", "run", "tmp", "sysroot"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "usr/bin/sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// commitTree commits dir to the repo on ref with a version and timestamp.
func commitTree(t *testing.T, r *repo.Repo, dir, ref, version string, ts time.Time) objects.Checksum {
	t.Helper()
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := commit.NewMTree(nil)
	if err := commit.AddDir(ctx, tx, m, dir, commit.Filter{}, nil); err != nil {
		t.Fatal(err)
	}
	var md objects.Metadata
	if version != "" {
		md.Set("version", gvariant.Variant{Type: gvariant.MustParseType("s"), Value: version})
	}
	res, err := commit.Write(ctx, tx, m, commit.Options{Branch: ref, Subject: "version " + version, Timestamp: ts, Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return res.Checksum
}

// fixture is a sysroot with a stateroot, for tests.
type fixture struct {
	t    *testing.T
	path string
	os   string
	run  string // RunDir
	root string // Root, for booted tests
	cmd  string // Cmdline file
	esp  string // ESPDir ("" for the default, boot/efi)
}

// newFixture makes a sysroot with init-fs and os-init of "testos"; tries
// sets sysroot.boot-counting-tries (-1 leaves the default).
func newFixture(t *testing.T, tries int) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{t: t, path: filepath.Join(base, "sysroot"), os: "testos", run: filepath.Join(base, "run"), root: "/", cmd: filepath.Join(base, "cmdline")}
	for _, d := range []string{f.path, f.run} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(f.cmd, []byte("root=/dev/vda1 quiet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := InitFS(f.path, false); err != nil {
		t.Fatal(err)
	}
	if err := InitOS(f.path, f.os); err != nil {
		t.Fatal(err)
	}
	if tries >= 0 {
		f.setConfig("sysroot", "boot-counting-tries", fmt.Sprint(tries))
	}
	t.Cleanup(func() { unsealAll(f.path) })
	return f
}

func (f *fixture) setConfig(group, key, value string) {
	f.t.Helper()
	r, err := repo.Open(filepath.Join(f.path, "ostree/repo"))
	if err != nil {
		f.t.Fatal(err)
	}
	kf := r.Config()
	kf.Set(group, key, value)
	if err := r.WriteConfig(kf); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) repo() *repo.Repo {
	f.t.Helper()
	r, err := repo.Open(filepath.Join(f.path, "ostree/repo"))
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// commit builds and commits a tree on ref "testos/stable".
func (f *fixture) commit(sp treeSpec, ts time.Time) objects.Checksum {
	f.t.Helper()
	return commitTree(f.t, f.repo(), buildTree(f.t, sp), "testos/stable", sp.version, ts)
}

func (f *fixture) open() *Sysroot {
	f.t.Helper()
	s, err := Open(f.path, Options{RunDir: f.run, Root: f.root, Cmdline: f.cmd, ESPDir: f.esp})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// boot makes the fixture look booted into deployment d: ostree-booted,
// ostree= on the command line, Root the deployment directory.
func (f *fixture) boot(s *Sysroot, d *Deployment) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.run, "ostree-booted"), nil, 0o644); err != nil {
		f.t.Fatal(err)
	}
	arg, _ := kargValue(d.Options(), "ostree")
	if err := os.WriteFile(f.cmd, []byte("root=/dev/vda1 ostree="+arg+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
	f.root = s.DeploymentPath(d)
}

func (f *fixture) deploy(s *Sysroot, o DeployOptions) *Deployment {
	f.t.Helper()
	if o.OS == "" {
		o.OS = f.os
	}
	if o.Revision == "" {
		o.Revision = "testos/stable"
	}
	res, err := s.Deploy(context.Background(), o)
	if err != nil {
		f.t.Fatalf("deploy: %v", err)
	}
	return res.Deployment
}

// names lists "CSUM.SERIAL" of the deployments in order.
func names(s *Sysroot) []string {
	var out []string
	for _, d := range s.Deployments() {
		out = append(out, d.Name())
	}
	return out
}

// unsealAll clears the immutable flag of every deployment directory under
// a sysroot, so that the test's temporary directory can be removed.
func unsealAll(path string) {
	dirs, _ := filepath.Glob(filepath.Join(path, "ostree/deploy/*/deploy/*"))
	for _, d := range dirs {
		if st, err := os.Lstat(d); err == nil && st.IsDir() {
			seal(d, false)
		}
	}
}

// listTree describes every entry under root (type, mode, owner, symlink
// target or content) in path order, skipping paths for which skip is true.
func listTree(t *testing.T, root string, skip func(rel string) bool) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if skip != nil && skip(rel) {
			if info.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		st := info.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case info.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			if len(data) < 512 {
				line += fmt.Sprintf(" %q", data)
			} else {
				line += fmt.Sprintf(" %d bytes", len(data))
			}
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// ostree runs the real ostree binary.
func ostree(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ostree", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
