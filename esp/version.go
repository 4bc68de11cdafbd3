package esp

import (
	"sort"
	"strconv"
	"strings"

	"github.com/strata-os/strata/bootloader"
)

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
// It returns -1, 0 or 1.
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
			ar, brest := span(a, isDigit)
			br, brest2 := span(b, isDigit)
			ar, br = strings.TrimLeft(ar, "0"), strings.TrimLeft(br, "0")
			if len(ar) != len(br) {
				return cmpInt(len(ar), len(br))
			}
			if c := strings.Compare(ar, br); c != 0 {
				return c
			}
			a, b = brest, brest2
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

func span(s string, f func(byte) bool) (string, string) {
	i := 0
	for i < len(s) && f(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// LoaderEntry is one entry file as systemd-boot sees it: its file name
// in loader/entries and its parsed content.
type LoaderEntry = bootloader.LoaderEntry

// SortSystemdBoot orders type #1 entries as systemd-boot (Debian 12's
// 252 and later) lists them, written from its documented rules (the Boot
// Loader Specification, "Automatic Boot Assessment" and the Version
// Format Specification):
//
//  1. entries with a boot counter and no tries left last;
//  2. entries with a sort-key before those without; between two with a
//     sort-key: sort-key, then machine-id (bytewise, ascending), then
//     version (VersionCompare, descending);
//  3. then by id, descending with VersionCompare. The id is the file
//     name without ".conf", lower-cased; the counter stays part of it;
//  4. two entries both with counters: more tries left first, then fewer
//     tries done.
//
// With no default configured (no loader.conf "default", no
// LoaderEntryDefault or LoaderEntryOneShot EFI variable; strata sets
// none), systemd-boot boots the first entry of this order.
func SortSystemdBoot(entries []LoaderEntry) {
	sort.SliceStable(entries, func(i, j int) bool { return compareSystemdBoot(entries[i], entries[j]) < 0 })
}

func compareSystemdBoot(a, b LoaderEntry) int {
	al, ad, ac := bootloader.Tries(a.Name)
	bl, bd, bc := bootloader.Tries(b.Name)
	if c := boolCmp(ac && al == 0, bc && bl == 0); c != 0 {
		return c
	}
	ask, aHas := value(a, "sort-key")
	bsk, bHas := value(b, "sort-key")
	if c := boolCmp(!aHas, !bHas); c != 0 {
		return c
	}
	if aHas && bHas {
		if c := strings.Compare(ask, bsk); c != 0 {
			return c
		}
		am, _ := value(a, "machine-id")
		bm, _ := value(b, "machine-id")
		if c := strings.Compare(am, bm); c != 0 {
			return c
		}
		av, _ := value(a, "version")
		bv, _ := value(b, "version")
		if c := VersionCompare(av, bv); c != 0 {
			return -c
		}
	}
	if c := VersionCompare(entryID(a.Name), entryID(b.Name)); c != 0 {
		return -c
	}
	if !ac || !bc {
		return 0
	}
	if c := cmpUint(al, bl); c != 0 {
		return -c
	}
	return cmpUint(ad, bd)
}

// entryID is systemd-boot's id of an entry file: the name without
// ".conf", lower-cased.
func entryID(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".conf"))
}

func value(e LoaderEntry, key string) (string, bool) {
	if e.Entry == nil {
		return "", false
	}
	return e.Entry.Get(key)
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// itoa is strconv.Itoa, kept short for name building.
func itoa(n int) string { return strconv.Itoa(n) }
