package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testCat(t *testing.T, f *readFixture) {
	for _, args := range [][]string{
		{"cat", "os/main", "/hello.txt"}, {"cat", "os/main^", "/hello.txt", "/etc/os-release", "/empty"},
		{"cat", "os/main", "/usr/share/large.bin"}, {"cat", "os/main", "/abs-link"}, {"cat", "os/main", "hello.txt"},
	} {
		f.sameAsOstree(t, nil, args...)
	}
	// Symlinks are followed inside the commit, also where ostree gives
	// up (relative targets with "..", links to directories).
	if got := f.strata(t, "cat", "os/main^", "/bin/rel-link", "/dir-link/large.bin"); !strings.HasPrefix(got, "hello, world\n0123456789abcdef") {
		t.Errorf("cat through symlinks: %.40q", got)
	}

	// A corrupt object: an error and not one byte of it on stdout.
	broken := &readFixture{bin: f.bin, repo: f.copyRepo(t)}
	sum := strings.Fields(f.ostree(t, "ls", "-C", "os/main", "/usr/share/large.bin"))[4]
	obj := filepath.Join(broken.repo, "objects", sum[:2], sum[2:]+".file")
	if f.mode == "archive" {
		obj += "z"
	}
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-20] ^= 0xff
	if err := os.WriteFile(obj, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := run(t, f.bin, "--repo="+broken.repo, "cat", "os/main", "/hello.txt", "/usr/share/large.bin")
	if code != 1 || out != "changed\n" || !strings.HasPrefix(errs, "error: ") || strings.Count(errs, "\n") != 1 {
		t.Errorf("cat of a corrupt object: exit %d, stdout %.60q, stderr %q", code, out, errs)
	}
}

// TestCatCorruptSymlink: a symlink object whose stored target does not
// hash to its name is refused by cat, whether cat follows it on the way to
// a file or it is the last component, in every mode that stores symlinks
// differently (a symlink, a file holding the target, a .filez header).
func TestCatCorruptSymlink(t *testing.T) {
	bin := buildCLI(t)
	for _, mode := range []string{"bare", "bare-user", "archive"} {
		t.Run(mode, func(t *testing.T) {
			src := t.TempDir()
			os.MkdirAll(filepath.Join(src, "d"), 0o755)
			os.WriteFile(filepath.Join(src, "d/f"), []byte("in d\n"), 0o644)
			os.WriteFile(filepath.Join(src, "e"), []byte("in e\n"), 0o644)
			os.Symlink("d", filepath.Join(src, "l"))
			r := filepath.Join(t.TempDir(), "repo")
			for _, args := range [][]string{{"init", "--mode=" + mode}, {"commit", "-b", "main", "--tree=dir=" + src}} {
				if out, err := runOut(t, bin, append([]string{"--repo=" + r}, args...)...); err != nil {
					t.Fatalf("%v: %v\n%s", args, err, out)
				}
			}
			if out, _, code := run(t, bin, "--repo="+r, "cat", "main", "/l/f"); code != 0 || out != "in d\n" {
				t.Fatalf("cat through the good link: exit %d, %q", code, out)
			}
			ls, err := runOut(t, "ostree", "--repo="+r, "ls", "-C", "main", "/l")
			if err != nil {
				t.Fatal(err)
			}
			sum := strings.Fields(ls)[4]
			obj := filepath.Join(r, "objects", sum[:2], sum[2:]+".file")
			switch mode {
			case "bare":
				os.Remove(obj)
				os.Symlink("e", obj) // a link to the file e: cat /l would print it
			case "bare-user":
				os.WriteFile(obj, []byte("e\x00"), 0o644) // rewritten in place: the xattr stays
			case "archive":
				obj += "z"
				data, err := os.ReadFile(obj)
				if err != nil {
					t.Fatal(err)
				}
				// The target "d" is the header's only "d\x00" (a GVariant string).
				i := strings.Index(string(data), "d\x00")
				if i < 0 {
					t.Fatal("no target in the header")
				}
				data[i] = 'e'
				os.WriteFile(obj, data, 0o644)
			}
			for _, p := range []string{"/l/f", "/l"} {
				out, errs, code := run(t, bin, "--repo="+r, "cat", "main", p)
				if code != 1 || out != "" || !strings.Contains(errs, "corrupt") || !strings.Contains(errs, sum) {
					t.Errorf("cat %s through a corrupt link: exit %d, stdout %q, stderr %q", p, code, out, errs)
				}
			}
		})
	}
}
