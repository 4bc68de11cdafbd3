package gvariant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// maxDepth bounds nesting of containers and variants while decoding.
const maxDepth = 64

// Unmarshal decodes data as a value of type t. It is strict: framing offsets
// out of range, wrong fixed sizes, unterminated strings or an embedded type
// that does not parse are errors wrapping ErrInvalid. Byte arrays in the
// result alias data.
func Unmarshal(t *Type, data []byte) (any, error) {
	return decode(t, data, 0)
}

// UnmarshalNormal is Unmarshal that also requires data to be in normal form,
// the only form whose checksum OSTree accepts.
func UnmarshalNormal(t *Type, data []byte) (any, error) {
	v, err := decode(t, data, 0)
	if err != nil {
		return nil, err
	}
	re, err := Marshal(t, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !bytes.Equal(re, data) {
		return nil, fmt.Errorf("%w: %s value not in normal form", ErrInvalid, t.str)
	}
	return v, nil
}

func invalid(t *Type, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, t.str, fmt.Sprintf(format, args...))
}

func decode(t *Type, d []byte, depth int) (any, error) {
	if depth > maxDepth {
		return nil, invalid(t, "nested too deeply")
	}
	if t.fixed != 0 && len(d) != t.fixed {
		return nil, invalid(t, "size %d, want %d", len(d), t.fixed)
	}
	switch t.code {
	case 'y':
		return d[0], nil
	case 'b':
		if d[0] > 1 {
			return nil, invalid(t, "boolean byte %d", d[0])
		}
		return d[0] == 1, nil
	case 'n':
		return int16(binary.LittleEndian.Uint16(d)), nil
	case 'q':
		return binary.LittleEndian.Uint16(d), nil
	case 'i', 'h':
		return int32(binary.LittleEndian.Uint32(d)), nil
	case 'u':
		return binary.LittleEndian.Uint32(d), nil
	case 'x':
		return int64(binary.LittleEndian.Uint64(d)), nil
	case 't':
		return binary.LittleEndian.Uint64(d), nil
	case 'd':
		return math.Float64frombits(binary.LittleEndian.Uint64(d)), nil
	case 's', 'o', 'g':
		if len(d) == 0 || d[len(d)-1] != 0 {
			return nil, invalid(t, "string not NUL-terminated")
		}
		if bytes.IndexByte(d[:len(d)-1], 0) >= 0 {
			return nil, invalid(t, "string contains a NUL byte")
		}
		return string(d[:len(d)-1]), nil
	case 'v':
		i := bytes.LastIndexByte(d, 0)
		if i < 0 {
			return nil, invalid(t, "variant without type")
		}
		ct, err := ParseType(string(d[i+1:]))
		if err != nil {
			return nil, invalid(t, "variant type: %v", err)
		}
		cv, err := decode(ct, d[:i], depth+1)
		if err != nil {
			return nil, err
		}
		return Variant{Type: ct, Value: cv}, nil
	case 'm':
		if len(d) == 0 {
			return Maybe{}, nil
		}
		el := t.elems[0]
		if el.fixed == 0 {
			if d[len(d)-1] != 0 {
				return nil, invalid(t, "maybe without trailing zero")
			}
			d = d[:len(d)-1]
		}
		v, err := decode(el, d, depth+1)
		if err != nil {
			return nil, err
		}
		return Maybe{Valid: true, Value: v}, nil
	case 'a':
		return decodeArray(t, d, depth)
	case '(', '{':
		return decodeTuple(t, d, depth)
	}
	return nil, invalid(t, "unsupported type")
}

// offsetSizeFor is the framing-offset width of a container of n bytes.
func offsetSizeFor(n int) int {
	switch {
	case n == 0:
		return 0
	case n <= math.MaxUint8:
		return 1
	case n <= math.MaxUint16:
		return 2
	case uint64(n) <= math.MaxUint32:
		return 4
	}
	return 8
}

func readOffset(d []byte, w int) uint64 {
	switch w {
	case 1:
		return uint64(d[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(d))
	case 4:
		return uint64(binary.LittleEndian.Uint32(d))
	}
	return binary.LittleEndian.Uint64(d)
}

func decodeArray(t *Type, d []byte, depth int) (any, error) {
	el := t.elems[0]
	if el.code == 'y' {
		return d, nil
	}
	if len(d) == 0 {
		return []any{}, nil
	}
	if el.fixed != 0 {
		if len(d)%el.fixed != 0 {
			return nil, invalid(t, "size %d not a multiple of %d", len(d), el.fixed)
		}
		n := len(d) / el.fixed
		out := make([]any, n)
		for i := range n {
			v, err := decode(el, d[i*el.fixed:(i+1)*el.fixed], depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	w := offsetSizeFor(len(d))
	if len(d) < w {
		return nil, invalid(t, "truncated framing offsets")
	}
	last := readOffset(d[len(d)-w:], w)
	if last > uint64(len(d)) || (uint64(len(d))-last)%uint64(w) != 0 {
		return nil, invalid(t, "bad framing offset %d", last)
	}
	tableStart := int(last)
	n := (len(d) - tableStart) / w
	if n == 0 {
		return nil, invalid(t, "empty offset table in non-empty array")
	}
	out := make([]any, n)
	pos := 0
	for i := range n {
		end := readOffset(d[tableStart+i*w:], w)
		start := alignUp(pos, el.align)
		if end > uint64(tableStart) || uint64(start) > end {
			return nil, invalid(t, "element %d out of bounds", i)
		}
		v, err := decode(el, d[start:end], depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = v
		pos = int(end)
	}
	return out, nil
}

func decodeTuple(t *Type, d []byte, depth int) (any, error) {
	out := make([]any, len(t.elems))
	w := 0
	if t.fixed == 0 {
		w = offsetSizeFor(len(d))
	}
	pos := 0
	used := 0 // framing offsets consumed from the end
	for i, m := range t.elems {
		start := alignUp(pos, m.align)
		var end int
		switch {
		case m.fixed != 0:
			end = start + m.fixed
		case i == len(t.elems)-1:
			end = len(d) - used*w
		default:
			used++
			if w == 0 || used*w > len(d) {
				return nil, invalid(t, "truncated framing offsets")
			}
			o := readOffset(d[len(d)-used*w:], w)
			if o > uint64(len(d)) {
				return nil, invalid(t, "bad framing offset %d", o)
			}
			end = int(o)
		}
		if start > end || end > len(d)-used*w {
			return nil, invalid(t, "member %d out of bounds", i)
		}
		v, err := decode(m, d[start:end], depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = v
		pos = end
	}
	if t.fixed == 0 && pos != len(d)-used*w {
		return nil, invalid(t, "trailing bytes")
	}
	return out, nil
}
