package interop

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommitBootableMatchesOstree commits trees with --bootable with both
// tools and requires the same checksums: ostree passes the metadata
// through a GVariantDict (hash-table order, a repeated key keeps its first
// place and its last value), which strata must reproduce byte for byte.
// Trees without exactly one kernel in usr/lib/modules are refused by both.
func TestCommitBootableMatchesOstree(t *testing.T) {
	base := t.TempDir()
	write := func(p, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kernel := filepath.Join(base, "kernel")
	write(filepath.Join(kernel, "usr/lib/modules/6.1.0-21-amd64/vmlinuz"), "a kernel\n")
	write(filepath.Join(kernel, "usr/lib/modules/6.1.0-21-amd64/initramfs.img"), "an initramfs\n")
	write(filepath.Join(kernel, "usr/lib/modules/5.10.0-old/modules.dep"), "modules only, no kernel\n")
	write(filepath.Join(kernel, "etc/os-release"), "ID=test\n")
	linked := filepath.Join(base, "linked")
	write(filepath.Join(linked, "usr/lib/modules/6.2.0/real"), "kernel\n")
	if err := os.Symlink("real", filepath.Join(linked, "usr/lib/modules/6.2.0/vmlinuz")); err != nil {
		t.Fatal(err)
	}
	two := filepath.Join(base, "two")
	write(filepath.Join(two, "usr/lib/modules/1/vmlinuz"), "one\n")
	write(filepath.Join(two, "usr/lib/modules/2/vmlinuz"), "two\n")
	none := filepath.Join(base, "none")
	write(filepath.Join(none, "usr/lib/modules/1/modules.dep"), "\n")
	noUsr := filepath.Join(base, "no-usr")
	write(filepath.Join(noUsr, "boot/vmlinuz-6.1.0"), "kernel in /boot only\n")

	const ts = "--timestamp=@1700000000"
	var many []string
	for i := range 20 {
		many = append(many, fmt.Sprintf("--add-metadata-string=key.%02d=value %d", i, i))
	}
	cases := []commitCase{
		{name: "kernel", args: []string{"-b", "k", ts, "--bootable", "--tree=dir=" + kernel}},
		{name: "kernel-with-metadata", args: []string{"-b", "km", ts, "--bootable", "--tree=dir=" + kernel,
			"--add-metadata-string=version=1", "--add-metadata-string=zz=2", "--add-metadata-string=aa=3"}},
		{name: "repeated-and-overridden-keys", args: []string{"-b", "kr", ts, "--bootable", "--tree=dir=" + kernel,
			"--add-metadata-string=version=1", "--add-metadata-string=ostree.linux=not the kernel",
			"--add-metadata=ostree.bootable=false", "--add-metadata-string=version=2"}},
		{name: "many-keys", args: append([]string{"-b", "many", ts, "--bootable", "--tree=dir=" + kernel}, many...)},
		{name: "orphan-no-bindings", args: []string{"--orphan", "--no-bindings", ts, "--bootable", "--tree=dir=" + kernel}},
		{name: "vmlinuz-symlink", args: []string{"-b", "link", ts, "--bootable", "--tree=dir=" + linked}},
		{name: "ref-tree", args: []string{"-b", "fromref", ts, "--bootable", "--tree=ref=k", "--add-metadata-string=version=3"}},
		{name: "two-kernels", args: []string{"-b", "never", ts, "--bootable", "--tree=dir=" + two}, wantErr: true},
		{name: "no-kernel", args: []string{"-b", "never", ts, "--bootable", "--tree=dir=" + none}, wantErr: true},
		{name: "no-usr-lib-modules", args: []string{"-b", "never", ts, "--bootable", "--tree=dir=" + noUsr}, wantErr: true},
	}
	for _, mode := range []string{"bare-user", "archive"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			orepo, srepo := filepath.Join(dir, "ostree"), filepath.Join(dir, "strata")
			mustRun(t, "ostree", "init", "--repo="+orepo, "--mode="+mode)
			mustRun(t, strataBin, "init", "--repo="+srepo, "--mode="+mode)
			for _, c := range cases {
				sum := compareCommit(t, c, orepo, srepo, c.args)
				if sum == "" {
					continue
				}
				// The keys must really be there, not equal by accident
				// of both tools leaving them out.
				got := mustRun(t, "ostree", "--repo="+srepo, "show", "--print-metadata-key=ostree.linux", sum)
				want := "'6.1.0-21-amd64'"
				if c.name == "vmlinuz-symlink" {
					want = "'6.2.0'"
				}
				if strings.TrimSpace(got) != want {
					t.Errorf("%s: ostree.linux = %s, want %s", c.name, got, want)
				}
			}
			if refs := mustRun(t, "ostree", "--repo="+srepo, "refs"); strings.Contains(refs, "never") {
				t.Errorf("a refused --bootable commit wrote a ref:\n%s", refs)
			}
		})
	}
}

// TestCommitCurrentDirectory commits with neither a PATH nor --tree: both
// tools commit the current directory.
func TestCommitCurrentDirectory(t *testing.T) {
	tree := fixtureTree(t)
	dir := t.TempDir()
	orepo, srepo := filepath.Join(dir, "ostree"), filepath.Join(dir, "strata")
	mustRun(t, "ostree", "init", "--repo="+orepo, "--mode=bare-user")
	mustRun(t, strataBin, "init", "--repo="+srepo, "--mode=bare-user")
	inDir := func(bin, repoDir string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		c := exec.Command(bin, "--repo="+repoDir, "commit", "-b", "cwd", "--timestamp=@1700000000")
		c.Dir, c.Stdout, c.Stderr = tree, &out, &errOut
		if err := c.Run(); err != nil {
			t.Fatalf("%s commit in %s: %v\n%s", filepath.Base(bin), tree, err, errOut.String())
		}
		return strings.TrimSpace(out.String())
	}
	osum, ssum := inDir("ostree", orepo), inDir(strataBin, srepo)
	if osum != ssum {
		t.Errorf("commit of the current directory: strata %s, ostree %s", ssum, osum)
	}
	explicit := mustRun(t, strataBin, "--repo="+srepo, "commit", "-b", "explicit", "--timestamp=@1700000000", tree)
	if strings.TrimSpace(explicit) != ssum {
		// Same tree, same metadata but the binding: the root trees must match.
		a := mustRun(t, "ostree", "--repo="+srepo, "show", "--print-metadata-key=ostree.ref-binding", ssum)
		if !strings.Contains(a, "cwd") {
			t.Errorf("commit of the current directory is not bound to its branch: %s", a)
		}
		lsA := mustRun(t, "ostree", "--repo="+srepo, "ls", "-R", "-C", ssum)
		lsB := mustRun(t, "ostree", "--repo="+srepo, "ls", "-R", "-C", strings.TrimSpace(explicit))
		if lsA != lsB {
			t.Errorf("the current directory committed differs from the same directory named:\n%s\n%s", lsA, lsB)
		}
	}
}
