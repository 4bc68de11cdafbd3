package gvariant

import (
	"fmt"
	"strconv"
	"strings"
)

// Print renders v in GVariant text format, close to g_variant_print with type
// annotations, which is what `ostree show --print-metadata-key` prints.
func Print(t *Type, v any) string {
	var b strings.Builder
	printValue(&b, t, v, true)
	return b.String()
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('\'')
	return b.String()
}

func printValue(b *strings.Builder, t *Type, v any, top bool) {
	ann := func(word string) {
		if top {
			b.WriteString(word)
			b.WriteByte(' ')
		}
	}
	switch t.code {
	case 'b':
		b.WriteString(strconv.FormatBool(v.(bool)))
	case 'y':
		ann("byte")
		fmt.Fprintf(b, "0x%02x", v.(uint8))
	case 'n':
		ann("int16")
		fmt.Fprint(b, v)
	case 'q':
		ann("uint16")
		fmt.Fprint(b, v)
	case 'i':
		fmt.Fprint(b, v)
	case 'h':
		ann("handle")
		fmt.Fprint(b, v)
	case 'u':
		ann("uint32")
		fmt.Fprint(b, v)
	case 'x':
		ann("int64")
		fmt.Fprint(b, v)
	case 't':
		ann("uint64")
		fmt.Fprint(b, v)
	case 'd':
		s := strconv.FormatFloat(v.(float64), 'g', -1, 64)
		if !strings.ContainsAny(s, ".eEn") {
			s += ".0"
		}
		b.WriteString(s)
	case 's':
		b.WriteString(quote(v.(string)))
	case 'o':
		ann("objectpath")
		b.WriteString(quote(v.(string)))
	case 'g':
		ann("signature")
		b.WriteString(quote(v.(string)))
	case 'v':
		x := v.(Variant)
		b.WriteByte('<')
		printValue(b, x.Type, x.Value, true)
		b.WriteByte('>')
	case 'm':
		x := v.(Maybe)
		if !x.Valid {
			if top {
				b.WriteString("@" + t.str + " ")
			}
			b.WriteString("nothing")
			return
		}
		if top {
			b.WriteString("@" + t.str + " ")
		}
		if t.elems[0].code == 'm' {
			b.WriteString("just ")
		}
		printValue(b, t.elems[0], x.Value, false)
	case 'a':
		printArray(b, t, v, top)
	case '(':
		items := v.([]any)
		b.WriteByte('(')
		for i, it := range items {
			if i > 0 {
				b.WriteString(", ")
			}
			printValue(b, t.elems[i], it, top)
		}
		if len(items) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	case '{':
		items := v.([]any)
		b.WriteByte('{')
		printValue(b, t.elems[0], items[0], top)
		b.WriteString(", ")
		printValue(b, t.elems[1], items[1], top)
		b.WriteByte('}')
	}
}

func printArray(b *strings.Builder, t *Type, v any, top bool) {
	el := t.elems[0]
	if el.code == 'y' {
		d := v.([]byte)
		if len(d) == 0 {
			if top {
				b.WriteString("@ay ")
			}
			b.WriteString("[]")
			return
		}
		if d[len(d)-1] == 0 && printable(d[:len(d)-1]) {
			b.WriteString("b" + quote(string(d[:len(d)-1])))
			return
		}
		b.WriteByte('[')
		for i, c := range d {
			if i > 0 {
				b.WriteString(", ")
			}
			if i == 0 && top {
				b.WriteString("byte ")
			}
			fmt.Fprintf(b, "0x%02x", c)
		}
		b.WriteByte(']')
		return
	}
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	case []string:
		for _, s := range x {
			items = append(items, s)
		}
	}
	if len(items) == 0 {
		if top {
			b.WriteString("@" + t.str + " ")
		}
		if el.code == '{' {
			b.WriteString("{}")
		} else {
			b.WriteString("[]")
		}
		return
	}
	if el.code == '{' {
		b.WriteByte('{')
		for i, it := range items {
			if i > 0 {
				b.WriteString(", ")
			}
			kv := it.([]any)
			printValue(b, el.elems[0], kv[0], top && i == 0)
			b.WriteString(": ")
			printValue(b, el.elems[1], kv[1], top && i == 0)
		}
		b.WriteByte('}')
		return
	}
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		printValue(b, el, it, top && i == 0)
	}
	b.WriteByte(']')
}

func printable(d []byte) bool {
	for _, c := range d {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
