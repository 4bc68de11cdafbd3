package objects

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-os/strata/gvariant"
)

func seedObjects() [][]byte {
	c := Commit{Subject: "s", Timestamp: 5, Metadata: Metadata{{Key: "version", Value: gvariant.Variant{Type: gvariant.MustParseType("s"), Value: "1"}}}}
	cb, _ := c.Marshal()
	dt := DirTree{Files: []TreeFile{{Name: "a"}}, Dirs: []TreeDir{{Name: "d"}}}
	dm := DirMeta{Mode: 0o40755, Xattrs: Xattrs{{Name: "user.x", Value: []byte("v")}}}
	h := FileHeader{Mode: 0o100644, Size: 3, Xattrs: Xattrs{{Name: "user.x", Value: []byte("v")}}}
	return [][]byte{cb, dt.Marshal(), dm.Marshal(), h.MarshalArchive(), nil, {0}}
}

// FuzzParseObjects feeds arbitrary bytes to every object parser: none may
// panic, and whatever parses must re-serialise to an object that parses to
// the same value.
func FuzzParseObjects(f *testing.F) {
	for _, s := range seedObjects() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseCommit(b); err == nil {
			re, err := c.Marshal()
			if err != nil {
				t.Fatalf("parsed commit does not marshal: %v", err)
			}
			if _, err := ParseCommit(re); err != nil {
				t.Fatalf("re-marshalled commit does not parse: %v", err)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("commit error not ErrCorrupt: %v", err)
		}
		if d, err := ParseDirTree(b); err == nil {
			if _, err := ParseDirTree(d.Marshal()); err != nil {
				t.Fatalf("re-marshalled dirtree does not parse: %v", err)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("dirtree error not ErrCorrupt: %v", err)
		}
		if d, err := ParseDirMeta(b); err == nil {
			if _, err := ParseDirMeta(d.Marshal()); err != nil {
				t.Fatalf("re-marshalled dirmeta does not parse: %v", err)
			}
		}
		if h, err := ReadArchiveHeader(bytes.NewReader(b)); err == nil {
			if err := h.Validate(); err != nil {
				t.Fatalf("ReadArchiveHeader returned an invalid header: %v", err)
			}
			if _, err := ReadArchiveHeader(bytes.NewReader(h.MarshalArchive())); err != nil {
				t.Fatalf("re-marshalled header does not parse: %v", err)
			}
		}
		_, _ = ParseMetadata(b)
	})
}
