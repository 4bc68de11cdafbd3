package gvariant

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// Marshal serialises v as type t in normal form.
func Marshal(t *Type, v any) ([]byte, error) {
	return AppendMarshal(nil, t, v)
}

// MustMarshal is Marshal for values built by the program itself, whose shape
// is known to match t; it panics on a mismatch (a programming error).
func MustMarshal(t *Type, v any) []byte {
	b, err := Marshal(t, v)
	if err != nil {
		panic(err)
	}
	return b
}

// AppendMarshal appends the serialisation of v to buf. The start of the value
// is taken to be len(buf), which must be a multiple of t's alignment.
func AppendMarshal(buf []byte, t *Type, v any) ([]byte, error) {
	e := encoder{buf: buf, base: len(buf)}
	if err := e.write(t, v); err != nil {
		return buf, err
	}
	return e.buf, nil
}

type encoder struct {
	buf  []byte
	base int
}

func (e *encoder) pad(align int) {
	for (len(e.buf)-e.base)&(align-1) != 0 {
		e.buf = append(e.buf, 0)
	}
}

func typeErr(t *Type, v any) error {
	return fmt.Errorf("gvariant: cannot encode %T as %s", v, t.str)
}

func (e *encoder) write(t *Type, v any) error {
	switch t.code {
	case 'y':
		x, ok := v.(uint8)
		if !ok {
			return typeErr(t, v)
		}
		e.buf = append(e.buf, x)
	case 'b':
		x, ok := v.(bool)
		if !ok {
			return typeErr(t, v)
		}
		if x {
			e.buf = append(e.buf, 1)
		} else {
			e.buf = append(e.buf, 0)
		}
	case 'n':
		x, ok := v.(int16)
		if !ok {
			return typeErr(t, v)
		}
		e.pad(2)
		e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(x))
	case 'q':
		x, ok := v.(uint16)
		if !ok {
			return typeErr(t, v)
		}
		e.pad(2)
		e.buf = binary.LittleEndian.AppendUint16(e.buf, x)
	case 'i', 'h':
		x, ok := v.(int32)
		if !ok {
			return typeErr(t, v)
		}
		e.pad(4)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(x))
	case 'u':
		x, ok := v.(uint32)
		if !ok {
			return typeErr(t, v)
		}
		e.pad(4)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, x)
	case 'x':
		x, ok := v.(int64)
		if !ok {
			return typeErr(t, v)
		}
		e.pad(8)
		e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(x))
	case 't':
		x, ok := v.(uint64)
		if !ok {
			return typeErr(t, v)
		}
		e.pad(8)
		e.buf = binary.LittleEndian.AppendUint64(e.buf, x)
	case 'd':
		x, ok := v.(float64)
		if !ok {
			return typeErr(t, v)
		}
		e.pad(8)
		e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(x))
	case 's', 'o', 'g':
		x, ok := v.(string)
		if !ok {
			return typeErr(t, v)
		}
		if strings.IndexByte(x, 0) >= 0 {
			return fmt.Errorf("gvariant: string contains a NUL byte")
		}
		e.buf = append(e.buf, x...)
		e.buf = append(e.buf, 0)
	case 'v':
		x, ok := v.(Variant)
		if !ok || x.Type == nil {
			return typeErr(t, v)
		}
		e.pad(8)
		if err := e.write(x.Type, x.Value); err != nil {
			return err
		}
		e.buf = append(e.buf, 0)
		e.buf = append(e.buf, x.Type.str...)
	case 'm':
		x, ok := v.(Maybe)
		if !ok {
			return typeErr(t, v)
		}
		if !x.Valid {
			return nil
		}
		e.pad(t.align)
		if err := e.write(t.elems[0], x.Value); err != nil {
			return err
		}
		if t.elems[0].fixed == 0 {
			e.buf = append(e.buf, 0)
		}
	case 'a':
		return e.writeArray(t, v)
	case '(', '{':
		return e.writeTuple(t, v)
	default:
		return typeErr(t, v)
	}
	return nil
}

func (e *encoder) writeArray(t *Type, v any) error {
	el := t.elems[0]
	if el.code == 'y' {
		x, ok := v.([]byte)
		if !ok {
			return typeErr(t, v)
		}
		e.buf = append(e.buf, x...)
		return nil
	}
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	case []string:
		if el.code != 's' && el.code != 'o' && el.code != 'g' {
			return typeErr(t, v)
		}
		items = make([]any, len(x))
		for i, s := range x {
			items[i] = s
		}
	default:
		return typeErr(t, v)
	}
	if len(items) == 0 {
		return nil
	}
	e.pad(t.align)
	start := len(e.buf)
	if el.fixed != 0 {
		for _, it := range items {
			e.pad(el.align)
			if err := e.write(el, it); err != nil {
				return err
			}
		}
		return nil
	}
	ends := make([]int, 0, len(items))
	for _, it := range items {
		e.pad(el.align)
		if err := e.write(el, it); err != nil {
			return err
		}
		ends = append(ends, len(e.buf)-start)
	}
	e.appendOffsets(len(e.buf)-start, ends)
	return nil
}

func (e *encoder) writeTuple(t *Type, v any) error {
	items, ok := v.([]any)
	if !ok || len(items) != len(t.elems) {
		return typeErr(t, v)
	}
	e.pad(t.align)
	start := len(e.buf)
	var ends []int
	for i, m := range t.elems {
		e.pad(m.align)
		if err := e.write(m, items[i]); err != nil {
			return err
		}
		if m.fixed == 0 && i != len(t.elems)-1 {
			ends = append(ends, len(e.buf)-start)
		}
	}
	if t.fixed != 0 {
		for len(e.buf)-start < t.fixed {
			e.buf = append(e.buf, 0)
		}
		return nil
	}
	// Tuple framing offsets are stored in reverse order.
	for i, j := 0, len(ends)-1; i < j; i, j = i+1, j-1 {
		ends[i], ends[j] = ends[j], ends[i]
	}
	e.appendOffsets(len(e.buf)-start, ends)
	return nil
}

// offsetWidth is the framing-offset size for a container whose body is body
// bytes long and which stores n offsets.
func offsetWidth(body, n int) int {
	switch {
	case n == 0:
		return 0
	case body+n <= math.MaxUint8:
		return 1
	case body+2*n <= math.MaxUint16:
		return 2
	case body+4*n <= math.MaxUint32:
		return 4
	}
	return 8
}

func (e *encoder) appendOffsets(body int, offs []int) {
	w := offsetWidth(body, len(offs))
	for _, o := range offs {
		switch w {
		case 1:
			e.buf = append(e.buf, byte(o))
		case 2:
			e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(o))
		case 4:
			e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(o))
		default:
			e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(o))
		}
	}
}
