package gvariant

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseLiteral parses the GVariant text forms a user writes for
// `commit --add-metadata` and `summary --add-metadata`, as g_variant_parse
// reads them: 'string' or "string", true/false, integers (int32 unless
// annotated: byte, int16, uint16, int32, uint32, int64, uint64), doubles.
func ParseLiteral(s string) (Variant, error) {
	s = strings.TrimSpace(s)
	typed := map[string]string{"byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u", "int64": "x", "uint64": "t", "double": "d"}
	if word, rest, ok := strings.Cut(s, " "); ok {
		if code, ok := typed[word]; ok {
			return parseNumber(strings.TrimSpace(rest), code)
		}
	}
	switch {
	case s == "true" || s == "false":
		return Variant{Type: MustParseType("b"), Value: s == "true"}, nil
	case len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0]:
		return Variant{Type: MustParseType("s"), Value: s[1 : len(s)-1]}, nil
	case strings.ContainsAny(s, ".eE") && !strings.HasPrefix(s, "0x"):
		return parseNumber(s, "d")
	}
	return parseNumber(s, "i")
}

func parseNumber(s, code string) (Variant, error) {
	t := MustParseType(code)
	bad := fmt.Errorf("cannot parse %q as a GVariant value (%s)", s, code)
	if code == "d" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return Variant{}, bad
		}
		return Variant{Type: t, Value: f}, nil
	}
	bits := map[string]int{"y": 8, "n": 16, "q": 16, "i": 32, "u": 32, "x": 64, "t": 64}[code]
	if code == "y" || code == "q" || code == "u" || code == "t" {
		n, err := strconv.ParseUint(s, 0, bits)
		if err != nil {
			return Variant{}, bad
		}
		var v any
		switch code {
		case "y":
			v = uint8(n)
		case "q":
			v = uint16(n)
		case "u":
			v = uint32(n)
		default:
			v = n
		}
		return Variant{Type: t, Value: v}, nil
	}
	n, err := strconv.ParseInt(s, 0, bits)
	if err != nil {
		return Variant{}, bad
	}
	var v any
	switch code {
	case "n":
		v = int16(n)
	case "i":
		v = int32(n)
	default:
		v = n
	}
	return Variant{Type: t, Value: v}, nil
}
