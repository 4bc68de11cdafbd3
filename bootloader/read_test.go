package bootloader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadEntries(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"ostree-1-os.conf":     "title one\nversion 1\n",
		"ostree-10-os.conf":    "title ten\nversion 10\n",
		"ostree-2-os+3.conf":   "title two\nversion 2\n",
		"ostree-x-os.conf":     "title none\n",
		"other.conf":           "title other\nversion 99\n",
		"ostree-3-os.conf.bak": "version 98\n",
		"ostree-dir.conf/":     "",
		"ostree-4-os.conf":     "->ostree-1-os.conf",
	})
	es, err := ReadEntries(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name)
	}
	if got := strings.Join(names, " "); got != "ostree-10-os.conf ostree-2-os+3.conf ostree-1-os.conf ostree-4-os.conf ostree-x-os.conf" &&
		got != "ostree-10-os.conf ostree-2-os+3.conf ostree-4-os.conf ostree-1-os.conf ostree-x-os.conf" {
		t.Errorf("order %s", got)
	}
	if es, err := ReadEntries(filepath.Join(dir, "missing")); err != nil || es != nil {
		t.Errorf("missing dir: %v %v", es, err)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadEntries(dir); err == nil {
		t.Error("dangling symlink accepted (ostree fails on it)")
	}
	bad := writeTree(t, map[string]string{"ostree-1-os.conf": "title \xff\n"})
	if _, err := ReadEntries(bad); err == nil || !strings.Contains(err.Error(), "ostree-1-os.conf") {
		t.Errorf("bad entry: %v", err)
	}
}
