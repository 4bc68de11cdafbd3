package demoos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEntriesOrder: the loader lists entries as bootloader.SortEntries
// orders them, reading every *.conf (not only ostree's).
func TestEntriesOrder(t *testing.T) {
	dir := t.TempDir()
	entries := filepath.Join(dir, "boot/loader/entries")
	if err := os.MkdirAll(entries, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, version := range map[string]string{"ostree-1-demo.conf": "1", "ostree-3-demo+0-3.conf": "3", "ostree-2-demo+1-2.conf": "2", "other.conf": "10"} {
		if err := os.WriteFile(filepath.Join(entries, name), []byte("version "+version+"\nlinux /vmlinuz\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	es, err := Entries(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.File)
	}
	if want := "other.conf ostree-2-demo+1-2.conf ostree-1-demo.conf ostree-3-demo+0-3.conf"; strings.Join(got, " ") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
	if !es[3].Bad() || es[1].Bad() {
		t.Fatal("Bad() wrong")
	}
	if err := os.WriteFile(filepath.Join(entries, "broken.conf"), []byte("title no kernel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Entries(dir); err == nil || !strings.Contains(err.Error(), "broken.conf") {
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
