// Package gvariant implements the subset of the GVariant serialisation format
// that OSTree uses: basic types, strings, arrays, maybes, tuples, dict entries
// and variants, in normal form, with GVariant's framing-offset rules.
//
// Values map to Go types as follows:
//
//	y uint8   b bool    n int16   q uint16  i int32   u uint32  h int32
//	x int64   t uint64  d float64 s,o,g string
//	ay []byte (any other array: []any)
//	m* Maybe
//	(...) and {..}: []any, one element per member
//	v Variant
//
// Numbers are serialised little-endian, as GVariant does on the machines OSTree
// runs on; OSTree's own big-endian fields are converted by the caller.
//
// Decoding never panics and never allocates more than a small multiple of the
// input size: hostile bytes yield an error (ErrInvalid).
package gvariant

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every decoding error caused by malformed input.
var ErrInvalid = errors.New("invalid gvariant")

// Type is a parsed GVariant type. The zero value is not a valid type.
type Type struct {
	code  byte    // 'y', 'a', '(', '{', 'm', 'v', ...
	elems []*Type // element type for a/m; members for ( and {
	str   string
	align int // alignment in bytes: 1, 2, 4 or 8
	fixed int // fixed size in bytes, or 0 if variable-size
}

// String returns the type string, e.g. "(a{sv}aya(say)sstayay)".
func (t *Type) String() string { return t.str }

// Alignment returns the alignment of the type in bytes.
func (t *Type) Alignment() int { return t.align }

// FixedSize returns the fixed serialised size of the type, or 0 if values of
// the type vary in size.
func (t *Type) FixedSize() int { return t.fixed }

// MustParseType parses s and panics on error. Use it for constant type strings.
func MustParseType(s string) *Type {
	t, err := ParseType(s)
	if err != nil {
		panic(err)
	}
	return t
}

// ParseType parses a single complete GVariant type string.
func ParseType(s string) (*Type, error) {
	t, rest, err := parseType(s, 0)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, fmt.Errorf("%w: trailing characters in type %q", ErrInvalid, s)
	}
	return t, nil
}

const maxTypeDepth = 64

func parseType(s string, depth int) (*Type, string, error) {
	if depth > maxTypeDepth {
		return nil, "", fmt.Errorf("%w: type nested too deeply", ErrInvalid)
	}
	if s == "" {
		return nil, "", fmt.Errorf("%w: empty type", ErrInvalid)
	}
	c := s[0]
	switch c {
	case 'y', 'b':
		return basic(c, 1, 1), s[1:], nil
	case 'n', 'q':
		return basic(c, 2, 2), s[1:], nil
	case 'i', 'u', 'h':
		return basic(c, 4, 4), s[1:], nil
	case 'x', 't', 'd':
		return basic(c, 8, 8), s[1:], nil
	case 's', 'o', 'g':
		return basic(c, 1, 0), s[1:], nil
	case 'v':
		return basic(c, 8, 0), s[1:], nil
	case 'a', 'm':
		e, rest, err := parseType(s[1:], depth+1)
		if err != nil {
			return nil, "", err
		}
		t := &Type{code: c, elems: []*Type{e}, align: e.align}
		t.str = string(c) + e.str
		return t, rest, nil
	case '(', '{':
		end := byte(')')
		if c == '{' {
			end = '}'
		}
		rest := s[1:]
		t := &Type{code: c, align: 1}
		for {
			if rest == "" {
				return nil, "", fmt.Errorf("%w: unterminated type %q", ErrInvalid, s)
			}
			if rest[0] == end {
				rest = rest[1:]
				break
			}
			e, r, err := parseType(rest, depth+1)
			if err != nil {
				return nil, "", err
			}
			t.elems = append(t.elems, e)
			rest = r
		}
		if c == '{' {
			if len(t.elems) != 2 || !t.elems[0].isBasic() {
				return nil, "", fmt.Errorf("%w: bad dict entry type", ErrInvalid)
			}
		}
		t.str = s[:len(s)-len(rest)]
		layoutTuple(t)
		return t, rest, nil
	}
	return nil, "", fmt.Errorf("%w: unknown type code %q", ErrInvalid, c)
}

func basic(c byte, align, fixed int) *Type {
	return &Type{code: c, str: string(c), align: align, fixed: fixed}
}

func (t *Type) isBasic() bool {
	return t.code != 'a' && t.code != 'm' && t.code != '(' && t.code != '{' && t.code != 'v'
}

// layoutTuple computes alignment and fixed size of a tuple or dict entry.
func layoutTuple(t *Type) {
	size := 0
	fixed := true
	for _, e := range t.elems {
		if e.align > t.align {
			t.align = e.align
		}
		if e.fixed == 0 {
			fixed = false
		}
		size = alignUp(size, e.align) + e.fixed
	}
	if !fixed {
		return
	}
	size = alignUp(size, t.align)
	if size == 0 {
		size = 1 // the unit type "()" serialises as one zero byte
	}
	t.fixed = size
}

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }

// Variant is a value together with its type, the Go form of GVariant's "v".
type Variant struct {
	Type  *Type
	Value any
}

// Maybe is the Go form of a GVariant maybe ("m") value.
type Maybe struct {
	Valid bool
	Value any
}

// Code returns the type's leading character: 'y', 's', 'a', '(', '{', 'm', 'v', ...
func (t *Type) Code() byte { return t.code }

// Elem returns the element type of an array or maybe type, or nil.
func (t *Type) Elem() *Type {
	if t.code == 'a' || t.code == 'm' {
		return t.elems[0]
	}
	return nil
}

// Members returns the member types of a tuple or dict entry type.
func (t *Type) Members() []*Type {
	if t.code == '(' || t.code == '{' {
		return t.elems
	}
	return nil
}
