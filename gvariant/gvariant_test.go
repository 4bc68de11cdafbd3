package gvariant

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
)

type golden struct {
	typ, text string
	data      []byte
}

// loadGolden reads testdata/golden.tsv: type, GLib's g_variant_print output
// and GLib's normal-form serialisation, as produced by GLib itself.
func loadGolden(t testing.TB) []golden {
	f, err := os.Open("testdata/golden.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []golden
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) != 3 {
			t.Fatalf("bad golden line %q", sc.Text())
		}
		d, err := hex.DecodeString(parts[2])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, golden{parts[0], parts[1], d})
	}
	return out
}

func TestGoldenRoundTrip(t *testing.T) {
	for _, g := range loadGolden(t) {
		typ := MustParseType(g.typ)
		v, err := UnmarshalNormal(typ, g.data)
		if err != nil {
			t.Errorf("%s %s: decode: %v", g.typ, g.text, err)
			continue
		}
		re, err := Marshal(typ, v)
		if err != nil {
			t.Errorf("%s %s: encode: %v", g.typ, g.text, err)
			continue
		}
		if !bytes.Equal(re, g.data) {
			t.Errorf("%s %s: re-encoded\n%x\nwant\n%x", g.typ, g.text, re, g.data)
		}
		if len(g.text) < 200 {
			if p := Print(typ, v); p != g.text {
				t.Errorf("%s: Print = %s, GLib prints %s", g.typ, p, g.text)
			}
		}
	}
}

func TestTypeLayout(t *testing.T) {
	for _, c := range []struct {
		typ          string
		align, fixed int
	}{
		{"y", 1, 1}, {"t", 8, 8}, {"s", 1, 0}, {"v", 8, 0}, {"()", 1, 1},
		{"(yu)", 4, 8}, {"(uy)", 4, 8}, {"(ty)", 8, 16}, {"a(ty)", 8, 0},
		{"(uuua(ayay))", 4, 0}, {"{yy}", 1, 2}, {"my", 1, 0},
	} {
		typ := MustParseType(c.typ)
		if typ.Alignment() != c.align || typ.FixedSize() != c.fixed || typ.String() != c.typ {
			t.Errorf("%s: align %d fixed %d, want %d %d", c.typ, typ.Alignment(), typ.FixedSize(), c.align, c.fixed)
		}
	}
	for _, bad := range []string{"", "a", "(", "{sv", "{vs}", "{s}", "z", "ss", "((((", strings.Repeat("a", 100) + "y"} {
		if _, err := ParseType(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseType(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRejectsMalformed(t *testing.T) {
	for _, c := range []struct {
		typ  string
		data string
	}{
		{"s", "616263"},        // no NUL
		{"s", "610062 00"},     // embedded NUL
		{"u", "0102"},          // wrong fixed size
		{"b", "02"},            // bad boolean
		{"as", "6100ff"},       // offset beyond end
		{"as", "610062000203"}, // offsets not increasing
		{"(ss)", "6100620009"}, // tuple offset beyond end
		{"v", "0102"},          // no type separator
		{"v", "00007a"},        // unknown type
		{"ms", "61"},           // maybe without trailing zero
		{"au", "010000000200"}, // not a multiple of 4
		{"a(say)", "0000000000ff"},
	} {
		d, err := hex.DecodeString(strings.ReplaceAll(c.data, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Unmarshal(MustParseType(c.typ), d); !errors.Is(err, ErrInvalid) {
			t.Errorf("Unmarshal(%s, %s) = %v, want ErrInvalid", c.typ, c.data, err)
		}
	}
}

func TestNotNormalForm(t *testing.T) {
	// (yu) with non-zero padding bytes decodes but is not normal form.
	d := []byte{1, 9, 9, 9, 2, 0, 0, 0}
	typ := MustParseType("(yu)")
	if _, err := Unmarshal(typ, d); err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalNormal(typ, d); !errors.Is(err, ErrInvalid) {
		t.Fatalf("UnmarshalNormal accepted non-zero padding: %v", err)
	}
}

func TestMarshalTypeMismatch(t *testing.T) {
	if _, err := Marshal(MustParseType("u"), "x"); err == nil {
		t.Error("Marshal of string as u succeeded")
	}
	if _, err := Marshal(MustParseType("(su)"), []any{"a"}); err == nil {
		t.Error("Marshal of short tuple succeeded")
	}
	if _, err := Marshal(MustParseType("s"), "a\x00b"); err == nil {
		t.Error("Marshal of string with NUL succeeded")
	}
}

func TestDeepVariantNesting(t *testing.T) {
	// 200 nested variants: must be refused, not overflow the stack.
	typ := MustParseType("v")
	var v any = "x"
	vt := MustParseType("s")
	for range 200 {
		v = Variant{Type: vt, Value: v}
		vt = typ
	}
	d, err := Marshal(typ, v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(typ, d); !errors.Is(err, ErrInvalid) {
		t.Fatalf("deep nesting: %v", err)
	}
}

// FuzzUnmarshal checks that hostile bytes never panic or hang, and that
// anything accepted in normal form re-encodes to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	for _, g := range loadGolden(f) {
		f.Add(g.typ, g.data)
	}
	f.Fuzz(func(t *testing.T, typStr string, data []byte) {
		typ, err := ParseType(typStr)
		if err != nil {
			return
		}
		v, err := Unmarshal(typ, data)
		if err != nil {
			return
		}
		_ = Print(typ, v)
		re, err := Marshal(typ, v)
		if err != nil {
			t.Fatalf("decoded value does not re-encode: %v", err)
		}
		v2, err := UnmarshalNormal(typ, re)
		if err != nil {
			t.Fatalf("re-encoded value not accepted: %v", err)
		}
		re2, _ := Marshal(typ, v2)
		if !bytes.Equal(re, re2) {
			t.Fatalf("normal form not stable")
		}
	})
}
