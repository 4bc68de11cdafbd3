package summary

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"testing"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
)

// seedSummary is a valid summary: two refs, one with metadata, and a
// collection map.
func seedSummary() []byte {
	var c1, c2 objects.Checksum
	c1[0], c2[0] = 1, 2
	ref := func(name string, c objects.Checksum, md objects.Metadata) any {
		return []any{name, []any{uint64(100), c[:], metadataGV(md)}}
	}
	ver := objects.Metadata{{Key: KeyCommitVersion, Value: gvariant.Variant{Type: gvariant.MustParseType("s"), Value: "1.0"}}}
	refs := []any{ref("a/main", c1, ver), ref("b", c2, nil)}
	meta := objects.Metadata{
		{Key: KeyMode, Value: gvariant.Variant{Type: gvariant.MustParseType("s"), Value: "archive-z2"}},
		{Key: KeyCollectionMap, Value: gvariant.Variant{Type: collMapType, Value: []any{[]any{"org.example", []any{ref("x", c1, nil)}}}}},
	}
	return gvariant.MustMarshal(GVType, []any{refs, metadataGV(meta)})
}

// FuzzParse feeds arbitrary bytes to the summary parser (a summary comes
// from the network before any signature on it is checked): it must not
// panic, must refuse with ErrCorrupt, must allocate in proportion to its
// input, and what it accepts must survive a re-serialisation unchanged,
// with refs that Lookup finds.
func FuzzParse(f *testing.F) {
	f.Add(seedSummary())
	f.Add(gvariant.MustMarshal(GVType, []any{[]any{
		[]any{"a", []any{uint64(1), make([]byte, 32), []any{}}},
	}, []any{}}))
	f.Add([]byte{})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s, err := Parse(data)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20+512*uint64(len(data)) {
			t.Fatalf("Parse of %d bytes allocated %d bytes", len(data), alloc)
		}
		if err != nil {
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		var w bytes.Buffer
		View(&w, s)
		for _, r := range s.Refs {
			if got, ok := s.Lookup(r.Name); !ok || got.Checksum != r.Checksum {
				t.Fatalf("Lookup(%q) does not find the parsed ref", r.Name)
			}
		}
		v, err := gvariant.Unmarshal(GVType, data)
		if err != nil {
			t.Fatalf("accepted summary does not decode: %v", err)
		}
		re, err := gvariant.Marshal(GVType, v)
		if err != nil {
			t.Fatalf("accepted summary does not re-encode: %v", err)
		}
		s2, err := Parse(re)
		if err != nil {
			t.Fatalf("re-encoded summary refused: %v", err)
		}
		if !reflect.DeepEqual(s.Refs, s2.Refs) || !reflect.DeepEqual(s.Collections, s2.Collections) {
			t.Fatalf("re-encoded summary differs:\n%+v\n%+v", s, s2)
		}
	})
}
