package bootloader

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEntryKeyOrderInterop checks the order in which ostree writes keys it
// does not know (its hash table order) in three ostree code paths:
//   - deploy with sysroot.bls-append-except-default: the old entry is
//     parsed from its file and gets the bls-append keys, in the order of
//     ostree's own table of them (ghash.Order);
//   - `ostree admin kargs edit-in-place`: entries parsed, options set,
//     written;
//   - `ostree admin instutil set-kargs`: the default deployment's entry is
//     cloned (Clone), options set, written.
func TestEntryKeyOrderInterop(t *testing.T) {
	s := newOstreeSysroot(t, "testos")
	repoArg := "--repo=" + filepath.Join(s.dir, "ostree/repo")
	blsKeys := []string{"grub_users", "grub_arg", "grub_class", "id", "zeta", "alpha", "k1", "k22", "sort-key"}
	var pairs []string
	for i, k := range blsKeys {
		pairs = append(pairs, fmt.Sprintf("%s=v%d", k, i))
	}
	runOstree(t, repoArg, "config", "set", "sysroot.bls-append-except-default", strings.Join(pairs, ";"))
	tree := writeTree(t, map[string]string{
		"usr/etc/hostname":                   "test\n",
		"usr/lib/os-release":                 osRelease,
		"usr/lib/modules/5.10/vmlinuz":       "k\n",
		"usr/lib/modules/5.10/initramfs.img": "i\n",
	})
	s.commit(tree, "test/os", "1.0")
	s.deploy("test/os", "--karg=root=/dev/vda")
	first := s.entries()["ostree-1-testos.conf"]
	s.deploy("test/os")
	second := s.entries()

	// 1. The old entry: parsed, known keys set again, then bls-append.
	old, err := ParseEntry(first)
	if err != nil {
		t.Fatal(err)
	}
	l, err := FindKernel(context.Background(), s.deploymentDirs()[0])
	if err != nil {
		t.Fatal(err)
	}
	var bls [][2]string
	for i, k := range blsKeys {
		bls = append(bls, [2]string{k, fmt.Sprintf("v%d", i)})
	}
	old.SetSpec(EntrySpec{
		OSName: "testos", Name: "Test OS 1", Version: "1.0", Index: 1, Count: 2,
		BootVersion: 0, BootSerial: 1, Kernel: l, BLSAppend: bls,
	})
	if got := string(old.Format()); got != string(second["ostree-1-testos.conf"]) {
		t.Errorf("bls-append: ostree wrote\n%s\nFormat gives\n%s", second["ostree-1-testos.conf"], got)
	}

	// 2. Hand-add unknown keys to the default entry, then edit in place.
	dir := filepath.Join(s.dir, "boot/loader/entries")
	defPath := filepath.Join(dir, "ostree-2-testos.conf")
	extra := "aboot /aboot.img\nabootcfg /aboot.cfg\nzz 1\ngrub_class os\nmachine-id 0123\narchitecture x64\nfoo bar baz\n"
	if err := os.WriteFile(defPath, append(second["ostree-2-testos.conf"], extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	before := s.entries()
	runOstree(t, "admin", "kargs", "edit-in-place", "--sysroot="+s.dir, "--append-if-missing=quiet", "--append-if-missing=root=/dev/other")
	after := s.entries()
	for name, data := range before {
		e, err := ParseEntry(data)
		if err != nil {
			t.Fatal(err)
		}
		k := ParseKargs(e.Value("options"))
		k.AppendIfMissing("quiet")
		k.AppendIfMissing("root=/dev/other")
		e.Set("options", k.String())
		if got := string(e.Format()); got != string(after[name]) {
			t.Errorf("edit-in-place %s: ostree wrote\n%s\nFormat gives\n%s", name, after[name], got)
		}
	}

	// 3. set-kargs clones the default deployment's entry.
	runOstree(t, "admin", "instutil", "set-kargs", "--sysroot="+s.dir, "--merge", "--append=x=y")
	final := s.entries()
	def, err := ParseEntry(after["ostree-2-testos.conf"])
	if err != nil {
		t.Fatal(err)
	}
	c := def.Clone()
	k := ParseKargs(def.Value("options"))
	k.Append("x=y")
	c.Set("options", k.String())
	c.SetSpec(EntrySpec{
		OSName: "testos", Name: "Test OS 1", Version: "1.0", Index: 0, Count: 2,
		BootVersion: 1, BootSerial: 0, Kernel: l, BLSAppend: bls,
	})
	if got := string(c.Format()); got != string(final["ostree-2-testos.conf"]) {
		t.Errorf("set-kargs clone: ostree wrote\n%s\nFormat gives\n%s", final["ostree-2-testos.conf"], got)
	}
	golden(t, "keyorder/bls-append.conf", second["ostree-1-testos.conf"])
	golden(t, "keyorder/edit-in-place.conf", after["ostree-2-testos.conf"])
	golden(t, "keyorder/set-kargs.conf", final["ostree-2-testos.conf"])
}
