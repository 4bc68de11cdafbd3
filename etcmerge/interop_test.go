package etcmerge

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func runOstree(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("ostree", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func mustOstree(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runOstree(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ostreeSysroot is a sysroot the real ostree made (boot loader "none").
type ostreeSysroot struct {
	t   *testing.T
	dir string
}

const osname = "testos"

func newOstreeSysroot(t *testing.T) *ostreeSysroot {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { // deployments are chattr +i
		dirs, _ := filepath.Glob(filepath.Join(dir, "ostree/deploy/*/deploy/*"))
		for _, d := range dirs {
			exec.Command("chattr", "-i", d).Run()
		}
	})
	mustOstree(t, "admin", "init-fs", dir)
	mustOstree(t, "--repo="+filepath.Join(dir, "ostree/repo"), "config", "set", "sysroot.bootloader", "none")
	mustOstree(t, "admin", "os-init", "--sysroot="+dir, osname)
	return &ostreeSysroot{t: t, dir: dir}
}

// commitEtc commits a bootable tree whose usr/etc is etc.
func (s *ostreeSysroot) commitEtc(etc tree) {
	s.t.Helper()
	root := s.t.TempDir()
	buildTree(s.t, filepath.Join(root, "usr/etc"), etc)
	for name, data := range map[string]string{
		"usr/lib/modules/5.10.0/vmlinuz": "kernel\n",
		"usr/lib/os-release":             "ID=testos\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			s.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	mustOstree(s.t, "--repo="+filepath.Join(s.dir, "ostree/repo"), "commit", "-b", "test/os", "--tree=dir="+root, "-s", "test")
}

func (s *ostreeSysroot) deploy() error {
	_, err := runOstree(s.t, "admin", "deploy", "--sysroot="+s.dir, "--os="+osname, "test/os")
	return err
}

// newest returns the deployment directory with the highest serial...
// ostree lists the default deployment first in `admin status`; with one
// commit per deploy the newest is the one not yet seen.
func (s *ostreeSysroot) deployments() []string {
	s.t.Helper()
	dirs, err := filepath.Glob(filepath.Join(s.dir, "ostree/deploy", osname, "deploy/*.[0-9]"))
	if err != nil {
		s.t.Fatal(err)
	}
	return dirs
}

// replaceTree makes dir's content exactly tr (dir itself stays).
func replaceTree(t *testing.T, dir string, tr tree) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	buildTree(t, dir, tr)
}

// ostreeable reports whether ostree can commit a tree (no FIFOs).
func ostreeable(tr tree) bool {
	for _, n := range tr {
		if n.typ == 'p' {
			return false
		}
	}
	return true
}

// TestMergeInterop runs every merge case through the real `ostree admin
// deploy` and compares the /etc it produces, entry by entry (type, mode,
// owner, xattrs, content, symlink target; mtimes of the copied files),
// with what NewPlan+Apply produce from the same three inputs. Conflicts
// must make ostree fail too. It also checks Diff against `ostree admin
// config-diff` on each case.
func TestMergeInterop(t *testing.T) {
	ctx := context.Background()
	for _, tc := range mergeCases {
		if !ostreeable(tc.orig) || !ostreeable(tc.next) || strings.Contains(tc.name, "symlink of the new defaults") {
			// ostree cannot commit a FIFO; and below a symlink ostree
			// would write through it, outside the test's directories.
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			s := newOstreeSysroot(t)
			s.commitEtc(tc.orig)
			if err := s.deploy(); err != nil {
				t.Fatal(err)
			}
			old := s.deployments()
			if len(old) != 1 {
				t.Fatalf("deployments %v", old)
			}
			replaceTree(t, filepath.Join(old[0], "etc"), tc.local)
			checkConfigDiff(t, s, old[0])

			s.commitEtc(tc.next)
			err := s.deploy()
			if tc.err != "" {
				if err == nil {
					t.Fatalf("ostree merged what etcmerge calls a conflict (%s)", tc.err)
				}
				if strings.Contains(tc.err, "newly defaults to directory") && !strings.Contains(err.Error(), "Modified config file newly defaults to directory") {
					t.Errorf("ostree failed differently: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var newDep string
			for _, d := range s.deployments() {
				if d != old[0] {
					newDep = d
				}
			}
			mine := filepath.Join(t.TempDir(), "etc")
			if out, err := exec.Command("cp", "-a", filepath.Join(newDep, "usr/etc"), mine).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			p, err := NewPlan(ctx, filepath.Join(old[0], "usr/etc"), filepath.Join(old[0], "etc"), mine)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Apply(ctx); err != nil {
				t.Fatal(err)
			}
			theirs := filepath.Join(newDep, "etc")
			if d := diffSnapshots(snapshot(t, mine, false), snapshot(t, theirs, false)); d != "" {
				t.Errorf("etcmerge and ostree merge differently (got = etcmerge, want = ostree):\n%s", d)
			}
			for _, c := range p.Changes() {
				if c.Kind == Deleted {
					continue
				}
				var a, b unix.Stat_t
				if unix.Lstat(filepath.Join(mine, c.Path), &a) != nil || unix.Lstat(filepath.Join(theirs, c.Path), &b) != nil {
					continue
				}
				if a.Mode&unix.S_IFMT == unix.S_IFREG && a.Mtim != b.Mtim {
					t.Errorf("%s: mtime %v, ostree's %v", c.Path, a.Mtim, b.Mtim)
				}
			}
		})
	}
}

// checkConfigDiff compares Diff with `ostree admin config-diff` on the
// deployment dep.
func checkConfigDiff(t *testing.T, s *ostreeSysroot, dep string) {
	t.Helper()
	out := mustOstree(t, "admin", "config-diff", "--sysroot="+s.dir, "--os="+osname)
	changes, err := Diff(context.Background(), filepath.Join(dep, "usr/etc"), filepath.Join(dep, "etc"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, c := range changes {
		b.WriteString(c.String() + "\n")
	}
	if b.String() != out {
		t.Errorf("Diff:\n%s\nostree admin config-diff:\n%s", b.String(), out)
	}
}

// TestConfigDiffOrderInterop checks Diff's order against `ostree admin
// config-diff` on an /etc with many entries created in a scrambled order,
// and a directory of more than 1000 entries (GLib sorts by inode in
// chunks of 1000).
func TestConfigDiffOrderInterop(t *testing.T) {
	orig := tree{}
	for i := 0; i < 40; i++ {
		orig[fmt.Sprintf("d%d/f%d", i%5, (i*7)%40)] = F(fmt.Sprint(i))
		orig[fmt.Sprintf("top%d", (i*13)%40)] = F(fmt.Sprint(i))
	}
	s := newOstreeSysroot(t)
	s.commitEtc(orig)
	if err := s.deploy(); err != nil {
		t.Fatal(err)
	}
	dep := s.deployments()[0]
	etc := filepath.Join(dep, "etc")
	for i := 0; i < 40; i += 3 {
		if err := os.WriteFile(filepath.Join(etc, fmt.Sprintf("top%d", i)), []byte("edited"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(etc, fmt.Sprintf("top%d", (i+1)%40))); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, fmt.Sprintf("d%d/new%d", i%5, i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(etc, fmt.Sprintf("d%d/f%d", (i+2)%5, (i*7)%40)), 0o600); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	big := filepath.Join(etc, "big")
	if err := os.Mkdir(big, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1300; i++ {
		if err := os.WriteFile(filepath.Join(big, fmt.Sprintf("%x", (i*7919)%4096)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(etc, "d3")); err != nil {
		t.Fatal(err)
	}
	checkConfigDiff(t, s, dep)
}
