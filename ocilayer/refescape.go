package ocilayer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/repo"
)

// Ref prefixes ostree-ext uses.
const (
	// LayerRefPrefix holds one ref per imported layer, named after the
	// layer's (compressed) digest.
	LayerRefPrefix = "ostree/container/blob"
	// ImageRefPrefix holds one ref per image reference, to the merge commit.
	ImageRefPrefix = "ostree/container/image"
)

// EscapeRef escapes s into a ref under prefix as ostree-ext's refescape
// does: ASCII letters and digits kept, "-" kept, "/" kept between an
// alphanumeric and something more, "_" doubled, anything else as
// _XX_ (its code point in upper-case hex). "sha256:ab" -> "sha256_3A_ab".
func EscapeRef(prefix, s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: empty string for a ref", errdefs.ErrInvalid)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: invalid UTF-8 in %q", errdefs.ErrInvalid, s)
	}
	var b strings.Builder
	rs := []rune(s)
	prevAlnum := false
	for i, c := range rs {
		alnum := c < 128 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9')
		switch {
		case c == 0:
			return "", fmt.Errorf("%w: NUL in %q", errdefs.ErrInvalid, s)
		case alnum:
			b.WriteRune(c)
		case c == '/' && prevAlnum && i+1 < len(rs):
			b.WriteRune(c)
		case c == '-':
			b.WriteRune(c)
		case c == '_':
			b.WriteString("__")
		default:
			fmt.Fprintf(&b, "_%02X_", c)
		}
		prevAlnum = alnum
	}
	ref := prefix + "/" + b.String()
	if err := repo.ValidateRefName(ref); err != nil {
		return "", fmt.Errorf("%w: %q does not escape to a valid ref: %w", errdefs.ErrInvalid, s, err)
	}
	return ref, nil
}

// UnescapeRef is the inverse of EscapeRef for a ref under prefix.
func UnescapeRef(prefix, ref string) (string, error) {
	s, ok := strings.CutPrefix(ref, prefix+"/")
	if !ok {
		return "", fmt.Errorf("%w: ref %q is not under %s", errdefs.ErrInvalid, ref, prefix)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_':
			if i+1 < len(s) && s[i+1] == '_' {
				b.WriteByte('_')
				i++
				continue
			}
			end := strings.IndexByte(s[i+1:], '_')
			if end < 0 {
				return "", fmt.Errorf("%w: ref %q: unterminated escape", errdefs.ErrInvalid, ref)
			}
			v, err := strconv.ParseUint(s[i+1:i+1+end], 16, 32)
			if err != nil {
				return "", fmt.Errorf("%w: ref %q: bad escape", errdefs.ErrInvalid, ref)
			}
			b.WriteRune(rune(v))
			i += end + 1
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '/':
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("%w: ref %q: invalid character %q", errdefs.ErrInvalid, ref, c)
		}
	}
	return b.String(), nil
}
