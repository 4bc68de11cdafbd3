package demoos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCountOf(t *testing.T) {
	for _, c := range []struct {
		name        string
		left, done  int
		decremented string
	}{
		{"ostree-1-demo.conf", -1, 0, ""},
		{"ostree-2-demo+3.conf", 3, 0, "ostree-2-demo+2-1.conf"},
		{"ostree-2-demo+2-1.conf", 2, 1, "ostree-2-demo+1-2.conf"},
		{"ostree-2-demo+0-3.conf", 0, 3, ""},
		{"a+b+1-0.conf", 1, 0, "a+b+0-1.conf"},
		{"x+.conf", -1, 0, ""},
		{"x+1-y.conf", -1, 0, ""},
		{"x+-1.conf", -1, 0, ""},
	} {
		l, d := countOf(c.name)
		if l != c.left || d != c.done {
			t.Errorf("countOf(%q) = %d, %d; want %d, %d", c.name, l, d, c.left, c.done)
		}
		if c.decremented != "" {
			if got := decremented(&Entry{File: c.name, Left: l, Done: d}); got != c.decremented {
				t.Errorf("decremented(%q) = %q, want %q", c.name, got, c.decremented)
			}
		}
	}
}

func TestSortEntries(t *testing.T) {
	mk := func(file, version string) *Entry {
		e := &Entry{File: file, Version: version, Linux: "/vmlinuz"}
		e.Left, e.Done = countOf(file)
		return e
	}
	for _, c := range []struct {
		name string
		in   []*Entry
		want string
	}{
		{"highest version first", []*Entry{mk("ostree-1-demo.conf", "1"), mk("ostree-2-demo.conf", "2")}, "ostree-2-demo.conf ostree-1-demo.conf"},
		{"numeric, not lexical", []*Entry{mk("a.conf", "9"), mk("b.conf", "10")}, "b.conf a.conf"},
		{"counted entry with tries is still default", []*Entry{mk("ostree-1-demo.conf", "1"), mk("ostree-2-demo+1-2.conf", "2")}, "ostree-2-demo+1-2.conf ostree-1-demo.conf"},
		{"bad entries last", []*Entry{mk("ostree-2-demo+0-3.conf", "2"), mk("ostree-1-demo.conf", "1")}, "ostree-1-demo.conf ostree-2-demo+0-3.conf"},
		{"same version: file name", []*Entry{mk("a.conf", "1"), mk("b.conf", "1")}, "b.conf a.conf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			SortEntries(c.in)
			var got []string
			for _, e := range c.in {
				got = append(got, e.File)
			}
			if strings.Join(got, " ") != c.want {
				t.Fatalf("got %v, want %s", got, c.want)
			}
		})
	}
}

func TestParseEntry(t *testing.T) {
	e, err := ParseEntry("ostree-1-demo+3.conf", "title demo 1 (ostree:0)\nversion 2\n# comment\noptions ostree=/ostree/boot.1/demo/abc/0 rw\nlinux /ostree/demo-abc/vmlinuz-6.1\ninitrd /ostree/demo-abc/initramfs-6.1.img\n")
	if err != nil {
		t.Fatal(err)
	}
	if e.Title != "demo 1 (ostree:0)" || e.Version != "2" || e.Options != "ostree=/ostree/boot.1/demo/abc/0 rw" || e.Linux != "/ostree/demo-abc/vmlinuz-6.1" || e.Initrd != "/ostree/demo-abc/initramfs-6.1.img" || e.Left != 3 {
		t.Fatalf("parsed %+v", e)
	}
	if _, err := ParseEntry("x.conf", "title no kernel\n"); err == nil || !strings.Contains(err.Error(), "x.conf") {
		t.Fatalf("entry without linux: %v", err)
	}
}

// TestLoadDefault runs the loader on a real ext4 image: it boots the
// highest entry, renames it one try down and copies its kernel.
func TestLoadDefault(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	entries := filepath.Join(src, "boot/loader.0/entries")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(entries, 0o755))
	must(os.Symlink("loader.0", filepath.Join(src, "boot/loader")))
	must(os.MkdirAll(filepath.Join(src, "boot/ostree/demo-a"), 0o755))
	must(os.WriteFile(filepath.Join(src, "boot/ostree/demo-a/vmlinuz"), []byte("kernel"), 0o644))
	must(os.WriteFile(filepath.Join(entries, "ostree-1-demo.conf"), []byte("version 1\nlinux /ostree/demo-a/vmlinuz\noptions ostree=/x/1\n"), 0o644))
	must(os.WriteFile(filepath.Join(entries, "ostree-2-demo+3.conf"), []byte("version 2\nlinux /ostree/demo-a/vmlinuz\noptions ostree=/x/2\n"), 0o644))
	img := filepath.Join(dir, "disk.img")
	must(MakeDisk(img, 16, src))
	b, err := LoadDefault(img, dir)
	must(err)
	if b.Entry.File != "ostree-2-demo+3.conf" || b.Renamed != "ostree-2-demo+2-1.conf" || b.Options != "ostree=/x/2" || b.Initrd != "" {
		t.Fatalf("boot %+v", b)
	}
	if data, err := os.ReadFile(b.Kernel); err != nil || string(data) != "kernel" {
		t.Fatalf("kernel copy: %q %v", data, err)
	}
	b, err = LoadDefault(img, dir)
	must(err)
	if b.Renamed != "ostree-2-demo+1-2.conf" {
		t.Fatalf("second boot renamed to %q", b.Renamed)
	}
}
