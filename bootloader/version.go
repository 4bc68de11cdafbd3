package bootloader

import "strings"

// VersionCompare compares two strings as systemd's strverscmp_improved()
// does, following the UAPI group's Version Format Specification (written
// from the specification's rules, not from systemd's code):
//
//   - characters other than ASCII letters, digits, '-', '.', '~' and '^'
//     are skipped in both strings;
//   - '~' sorts lower than anything, even the end of the string;
//   - a string that ended sorts lower than one that did not;
//   - '-' sorts lower than anything but '~' and the end;
//   - '^' sorts lower than anything but '~', the end and '-';
//   - '.' sorts lower than a letter or digit;
//   - a letter run sorts lower than a digit run; letter runs compare
//     bytewise (a prefix sorts lower), digit runs numerically (leading
//     zeros ignored).
//
// It returns -1, 0 or 1. systemd-boot orders its entries with it
// (SortEntries); ostree orders its own deployments' entries with glibc's
// strverscmp (Strverscmp), which differs on leading zeros and on '~',
// '-', '^' and '.'.
func VersionCompare(a, b string) int {
	valid := func(c byte) bool {
		return isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '~' || c == '^'
	}
	for {
		for a != "" && !valid(a[0]) {
			a = a[1:]
		}
		for b != "" && !valid(b[0]) {
			b = b[1:]
		}
		// '~' first, then the end, then '-', '^', '.'.
		for _, sep := range []byte{'~', 0, '-', '^', '.'} {
			var as, bs bool
			if sep == 0 {
				as, bs = a == "", b == ""
			} else {
				as, bs = a != "" && a[0] == sep, b != "" && b[0] == sep
			}
			if as != bs {
				if as {
					return -1
				}
				return 1
			}
			if as {
				if sep == 0 {
					return 0
				}
				a, b = a[1:], b[1:]
				goto next
			}
		}
		if isDigit(a[0]) != isDigit(b[0]) {
			if isDigit(a[0]) {
				return 1
			}
			return -1
		}
		if isDigit(a[0]) {
			ar, arest := span(a, isDigit)
			br, brest := span(b, isDigit)
			ar, br = strings.TrimLeft(ar, "0"), strings.TrimLeft(br, "0")
			if len(ar) != len(br) {
				if len(ar) < len(br) {
					return -1
				}
				return 1
			}
			if c := strings.Compare(ar, br); c != 0 {
				return c
			}
			a, b = arest, brest
		} else {
			ar, arest := span(a, isAlpha)
			br, brest := span(b, isAlpha)
			if c := strings.Compare(ar, br); c != 0 {
				return c
			}
			a, b = arest, brest
		}
	next:
	}
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// span splits s after its longest prefix of bytes satisfying f.
func span(s string, f func(byte) bool) (string, string) {
	i := 0
	for i < len(s) && f(s[i]) {
		i++
	}
	return s[:i], s[i:]
}
