package objects

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/strata-os/strata/gvariant"
)

// The expected checksums below were produced by `ostree commit` (2022.7) on
// this tree: a = "hello\n" mode 04755 with xattr user.foo=bar, link -> a,
// sub/ empty, all directories 0755 root:root, committed with subject "s",
// no body, --timestamp=2024-01-01T00:00:00Z, ref "main".
func mustSum(t *testing.T, s string) Checksum {
	t.Helper()
	c, err := ParseChecksum(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChecksumsMatchOstree(t *testing.T) {
	a := &FileHeader{Mode: 0o104755, Xattrs: Xattrs{{Name: "user.foo", Value: []byte("bar")}}}
	ca, err := FileChecksum(a, strings.NewReader("hello\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := mustSum(t, "64c9cce85b19a863071cd271264b39d175bf59f6295484dee4fc6138140a58ea"); ca != want {
		t.Errorf("file a: %s, want %s", ca, want)
	}
	link := &FileHeader{Mode: 0o120777, Target: "a"}
	cl, _ := FileChecksum(link, nil)
	if want := mustSum(t, "438802d990f25270d36f902bc9ce9d0737b88f9ae0b41ed59ec9e47c28523e0a"); cl != want {
		t.Errorf("link: %s, want %s", cl, want)
	}
	dm := DirMeta{Mode: 0o40755}
	cdm := Sum(dm.Marshal())
	if want := mustSum(t, "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"); cdm != want {
		t.Errorf("dirmeta: %s, want %s", cdm, want)
	}
	empty := DirTree{}
	cempty := Sum(empty.Marshal())
	if want := mustSum(t, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"); cempty != want {
		t.Errorf("empty dirtree: %s, want %s", cempty, want)
	}
	root := DirTree{
		Files: []TreeFile{{"link", cl}, {"a", ca}},
		Dirs:  []TreeDir{{"sub", cempty, cdm}},
	}
	root.Sort()
	croot := Sum(root.Marshal())
	if want := mustSum(t, "57c7343d72da7fdbb078f97dfebc8ea90e36903d6551e6d8b009cf0c9b110e8f"); croot != want {
		t.Errorf("root dirtree: %s, want %s", croot, want)
	}
	c := Commit{
		Metadata: Metadata{{Key: "ostree.ref-binding", Value: gvariant.Variant{Type: gvariant.MustParseType("as"), Value: []string{"main"}}}},
		Subject:  "s", Timestamp: 1704067200, RootTree: croot, RootMeta: cdm,
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := mustSum(t, "6c4e2d0f84347c773c7fb6c23d0762161717ea9ab8585ccc31e825c31730348c"); Sum(b) != want {
		t.Errorf("commit: %s, want %s", Sum(b), want)
	}
	back, err := ParseCommit(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := back.Marshal()
	if !bytes.Equal(b, b2) || back.Timestamp != 1704067200 || back.RootTree != croot {
		t.Errorf("commit does not round-trip: %+v", back)
	}
}

func TestArchiveHeaderMatchesOstree(t *testing.T) {
	// Header bytes of the symlink's .filez object as ostree wrote them.
	want := []byte{0, 0, 0, 0x1b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0xa1, 0xff, 0, 0, 0, 0, 'a', 0, 0x1a}
	h := &FileHeader{Mode: 0o120777, Target: "a"}
	if got := h.MarshalArchive(); !bytes.Equal(got, want) {
		t.Fatalf("archive header\n%x\nwant\n%x", got, want)
	}
	back, err := ReadArchiveHeader(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if back.Mode != h.Mode || back.Target != "a" {
		t.Errorf("parsed %+v", back)
	}
}

func TestParseDirTreeRejects(t *testing.T) {
	var c Checksum
	for name, d := range map[string]DirTree{
		"dotdot":   {Files: []TreeFile{{"..", c}}},
		"slash":    {Files: []TreeFile{{"a/b", c}}},
		"empty":    {Dirs: []TreeDir{{"", c, c}}},
		"unsorted": {Files: []TreeFile{{"b", c}, {"a", c}}},
		"dup":      {Files: []TreeFile{{"a", c}, {"a", c}}},
		"both":     {Files: []TreeFile{{"a", c}}, Dirs: []TreeDir{{"a", c, c}}},
	} {
		if _, err := ParseDirTree(d.Marshal()); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func TestValidateHeader(t *testing.T) {
	for name, h := range map[string]FileHeader{
		"device":       {Mode: 0o20644, Rdev: 5},
		"fifo":         {Mode: 0o10644},
		"empty link":   {Mode: 0o120777},
		"regular+link": {Mode: 0o100644, Target: "x"},
	} {
		if err := h.Validate(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestByteswap(t *testing.T) {
	v := gvariant.Variant{Type: gvariant.MustParseType("(us)"), Value: []any{uint32(1), "x"}}
	got := Byteswap(v).Value.([]any)
	if got[0].(uint32) != 1<<24 || got[1].(string) != "x" {
		t.Errorf("Byteswap = %v", got)
	}
}
