package sysroot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/tree"
)

// commitWithKargsD commits a test tree whose /usr/lib/bootc/kargs.d holds
// the given files.
func (f *fixture) commitWithKargsD(version string, files map[string]string, ts time.Time) objects.Checksum {
	f.t.Helper()
	dir := buildTree(f.t, treeSpec{version: version})
	for name, c := range files {
		p := filepath.Join(dir, KargsDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	return commitTree(f.t, f.repo(), dir, "testos/stable", version, ts)
}

// TestDeployImageKargs: the BLS entry gets the image's kargs.d arguments
// (in file-name order, architecture filter applied); an update drops the
// arguments only the old image had, adds the new image's, and keeps the
// ones the administrator added.
func TestDeployImageKargs(t *testing.T) {
	f := newFixture(t, 0)
	t0 := time.Unix(1700000000, 0)
	f.commitWithKargsD("1", map[string]string{
		"20-b.toml":    `kargs = ["quiet", "mitigations=off"]`,
		"10-a.toml":    `kargs = ["console=ttyS0,115200"]`,
		"30-arm.toml":  "kargs = [\"arm-only\"]\nmatch-architectures = [\"aarch64\"]\n",
		"40-x86.toml":  "kargs = [\"x86-only\"]\nmatch-architectures = [\"x86_64\", \"aarch64\"]\n",
		"README":       "not toml",
		"50-none.toml": "",
	}, t0)
	s := f.open()
	d := f.deploy(s, DeployOptions{KargAppend: []string{"rw"}})
	opts := d.Options()
	for _, want := range []string{"console=ttyS0,115200 quiet mitigations=off x86-only", "rw"} {
		if !strings.Contains(opts, want) {
			t.Fatalf("options %q lack %q", opts, want)
		}
	}
	if strings.Contains(opts, "arm-only") {
		t.Fatalf("options %q have another architecture's argument", opts)
	}
	// v2: quiet dropped from the image, loglevel added; the admin adds
	// an argument of their own on v1 first.
	s = f.open()
	if _, err := s.EditKargs(t.Context(), 0, KargsEdit{Append: []string{"admin=1"}}); err != nil {
		t.Fatalf("kargs edit: %v", err)
	}
	f.commitWithKargsD("2", map[string]string{
		"10-a.toml": `kargs = ["console=ttyS0,115200", "loglevel=3"]`,
		"20-b.toml": `kargs = ["mitigations=off"]`,
	}, t0.Add(time.Hour))
	s = f.open()
	d2 := f.deploy(s, DeployOptions{})
	opts = d2.Options()
	for _, want := range []string{"console=ttyS0,115200", "mitigations=off", "loglevel=3", "admin=1", "rw"} {
		if !strings.Contains(" "+opts+" ", " "+want+" ") {
			t.Fatalf("v2 options %q lack %q", opts, want)
		}
	}
	if strings.Contains(" "+opts+" ", " quiet ") || strings.Count(opts, "console=") != 1 {
		t.Fatalf("v2 options %q: quiet should be gone, console= once", opts)
	}
}

func TestImageKargsBadToml(t *testing.T) {
	f := newFixture(t, 0)
	c := f.commitWithKargsD("1", map[string]string{"10.toml": "kargs = 3\n"}, time.Unix(1700000000, 0))
	if _, err := ImageKargs(f.repo(), c); err == nil || !strings.Contains(err.Error(), "kargs.d/10.toml") {
		t.Fatalf("err %v", err)
	}
}

// TestImageKargsBounded: a kargs.d file over 1 MiB is refused, naming it
// (it was cut at 1 MiB and its first MiB used); a file of exactly 1 MiB
// whose object was altered is refused (its reader was never read to EOF,
// where the object is verified).
func TestImageKargsBounded(t *testing.T) {
	f := newFixture(t, 0)
	line := "kargs = [\"big\"]\n#"
	big := line + strings.Repeat("x", maxKargsFile-len(line)) + "\nkargs2 = 1\n"
	c := f.commitWithKargsD("1", map[string]string{"10.toml": big}, time.Unix(1700000000, 0))
	if _, err := ImageKargs(f.repo(), c); !errors.Is(err, fsutil.ErrTooLarge) || !strings.Contains(err.Error(), "kargs.d/10.toml") {
		t.Fatalf("over 1 MiB: err %v", err)
	}
	exact := big[:maxKargsFile-1] + "\n"
	c = f.commitWithKargsD("2", map[string]string{"10.toml": exact}, time.Unix(1700000001, 0))
	r := f.repo()
	args, err := ImageKargs(r, c)
	if err != nil || len(args) != 1 || args[0] != "big" {
		t.Fatalf("1 MiB: %q, %v", args, err)
	}
	root, err := tree.Commit(r, c)
	if err != nil {
		t.Fatal(err)
	}
	e, err := tree.Lookup(r, root, KargsDir+"/10.toml")
	if err != nil {
		t.Fatal(err)
	}
	obj := r.ObjectPath(objects.KindFile, e.File)
	os.Chmod(obj, 0o644)
	if err := os.WriteFile(obj, []byte(strings.Replace(exact, "big", "bad", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if args, err := ImageKargs(r, c); !errdefs.IsCorrupt(err) {
		t.Fatalf("altered object: %q, %v", args, err)
	}
}

// TestDeployHostileImageKargs: a commit whose kargs.d holds an argument
// with a newline or carriage return (which would add a line to the boot
// entry) is refused by the deploy with one line naming the commit and
// kargs.d: no deployment, no deployment directory, no boot entry.
func TestDeployHostileImageKargs(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"newline":         {"10.toml": "kargs = [\"quiet\\ninit=/bin/sh\"]\n"},
		"carriage return": {"10.toml": "kargs = [\"quiet\\rinit=/bin/sh\"]\n"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 0)
			c := f.commitWithKargsD("1", files, time.Unix(1700000000, 0))
			s := f.open()
			_, err := s.Deploy(t.Context(), DeployOptions{OS: f.os, Revision: "testos/stable"})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.String()) || !strings.Contains(err.Error(), KargsDir) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %v, want one ErrInvalid line naming %s and %s", err, c, KargsDir)
			}
			if len(s.Deployments()) != 0 {
				t.Fatalf("deployments after a failed deploy: %v", names(s))
			}
			if dirs, _ := filepath.Glob(filepath.Join(f.path, "ostree/deploy/testos/deploy/*")); len(dirs) != 0 {
				t.Fatalf("left behind: %v", dirs)
			}
			if entries, _ := filepath.Glob(filepath.Join(f.path, "boot/loader*/entries/*")); len(entries) != 0 {
				t.Fatalf("boot entries after a failed deploy: %v", entries)
			}
		})
	}
}
