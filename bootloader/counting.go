package bootloader

import (
	"sort"
	"strconv"
	"strings"
)

// Boot counting (systemd's "Automatic Boot Assessment"): an entry file
// named BASE+LEFT-DONE.conf (or BASE+LEFT.conf, DONE being 0) has LEFT
// tries left and DONE tries done. At each boot of it the loader renames it
// to BASE+(LEFT-1)-(DONE+1).conf while LEFT > 0; once the system is up,
// systemd-bless-boot renames it to BASE.conf ("blessed"). An entry with
// LEFT = 0 is "bad" and sorted after all others.

const entrySuffix = ".conf"

// parseCounter splits name (with or without ".conf") into its base and
// counter as systemd does: the counter is "+LEFT" or "+LEFT-DONE", decimal
// digits, after the last '+', right before the suffix. ok is false when
// there is no well-formed counter.
func parseCounter(name string) (base, suffix string, left, done uint64, ok bool) {
	stem, suffix := name, ""
	if s, found := strings.CutSuffix(name, entrySuffix); found {
		stem, suffix = s, entrySuffix
	}
	plus := strings.LastIndexByte(stem, '+')
	if plus < 0 {
		return stem, suffix, 0, 0, false
	}
	ls, ds, hasDone := strings.Cut(stem[plus+1:], "-")
	left, err := parseDigits(ls)
	if err != nil {
		return stem, suffix, 0, 0, false
	}
	if hasDone {
		if done, err = parseDigits(ds); err != nil {
			return stem, suffix, 0, 0, false
		}
	}
	return stem[:plus], suffix, left, done, true
}

func parseDigits(s string) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(s, 10, 64)
}

// Tries returns the tries left and done of an entry file name; ok is false
// when the name carries no boot counter.
func Tries(name string) (left, done uint64, ok bool) {
	_, _, left, done, ok = parseCounter(name)
	return left, done, ok
}

// WithTries returns name with a fresh counter of n tries left:
// "ostree-1-os.conf" -> "ostree-1-os+3.conf". An existing counter is
// replaced.
func WithTries(name string, n uint64) string {
	base, suffix, _, _, _ := parseCounter(name)
	return base + "+" + strconv.FormatUint(n, 10) + suffix
}

// Blessed returns name without its counter, as systemd-bless-boot names a
// successfully booted entry: "ostree-1-os+0-3.conf" -> "ostree-1-os.conf".
func Blessed(name string) string {
	base, suffix, _, _, _ := parseCounter(name)
	return base + suffix
}

// Decrement returns the name the boot loader gives an entry when it boots
// it: BASE+LEFT-DONE -> BASE+(LEFT-1)-(DONE+1). A name without a counter,
// or with no tries left, is returned unchanged (the loader boots a bad
// entry without renaming it).
func Decrement(name string) string {
	base, suffix, left, done, ok := parseCounter(name)
	if !ok || left == 0 {
		return name
	}
	if done < ^uint64(0) {
		done++
	}
	return base + "+" + strconv.FormatUint(left-1, 10) + "-" + strconv.FormatUint(done, 10) + suffix
}

// Bad reports whether name has a boot counter with no tries left.
func Bad(name string) bool {
	left, _, ok := Tries(name)
	return ok && left == 0
}

// LoaderEntry is an entry file of a loader/entries directory: its file
// name and its parsed content.
type LoaderEntry struct {
	Name  string
	Entry *Entry
}

// SortEntries sorts entries in the order in which systemd-boot lists
// them, the default first (with no default configured: no loader.conf
// "default", no LoaderEntryDefault or LoaderEntryOneShot EFI variable;
// neither strata nor ostree sets one, so the first entry boots). It is
// systemd-boot's boot_entry_compare (src/boot/efi/boot.c), the order the
// Boot Loader Specification describes:
//  1. entries with a boot counter and no tries left (bad) last;
//  2. entries with a "sort-key" before those without; between two with
//     one: sort-key, then "machine-id" (both bytewise, ascending), then
//     "version" (VersionCompare, descending, newest first). Without a
//     sort-key on both, "version" plays no part;
//  3. then by id, descending with VersionCompare: the file name without
//     its boot counter, lower-cased (see entryID);
//  4. two entries both with counters: more tries left first, then fewer
//     tries done first.
//
// ostree's entries have no sort-key and are named ostree-$N-$os.conf
// with "version $N", strata's ESP entries strata-$G-$N-$os-$key.conf: in
// both the newest deployment has the highest id and comes first. The
// ESP backend (package esp) and the demo loader (internal/demoos) both
// predict the booted entry with this one function.
func SortEntries(entries []LoaderEntry) {
	sort.SliceStable(entries, func(i, j int) bool { return compareEntries(entries[i], entries[j]) < 0 })
}

func compareEntries(a, b LoaderEntry) int {
	al, ad, ac := Tries(a.Name)
	bl, bd, bc := Tries(b.Name)
	if c := cmpBool(ac && al == 0, bc && bl == 0); c != 0 {
		return c
	}
	ask, aHas := entryValue(a, "sort-key")
	bsk, bHas := entryValue(b, "sort-key")
	if c := cmpBool(!aHas, !bHas); c != 0 {
		return c
	}
	if aHas && bHas {
		if c := strings.Compare(ask, bsk); c != 0 {
			return c
		}
		am, _ := entryValue(a, "machine-id")
		bm, _ := entryValue(b, "machine-id")
		if c := strings.Compare(am, bm); c != 0 {
			return c
		}
		av, _ := entryValue(a, "version")
		bv, _ := entryValue(b, "version")
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
	if al != bl {
		if al > bl {
			return -1
		}
		return 1
	}
	switch {
	case ad < bd:
		return -1
	case ad > bd:
		return 1
	}
	return 0
}

// entryID is the id systemd-boot compares: the entry's file name,
// lower-cased, here without its boot counter and ".conf". systemd-boot
// 252 (Debian 12) keeps both in the id, later versions drop the counter.
// What follows the base only decides between two bases one of which is a
// prefix of the other: two files of one base (the loader renames its one
// file, it never leaves two), or names strata and ostree do not write
// (two of ostree-$N-$os or strata-$G-$N-$os-$key always differ in $G or
// $N, before the end of either).
func entryID(name string) string {
	base, _, _, _, _ := parseCounter(name)
	return strings.ToLower(base)
}

func entryValue(e LoaderEntry, key string) (string, bool) {
	if e.Entry == nil {
		return "", false
	}
	return e.Entry.Get(key)
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// Strverscmp compares two strings as glibc's strverscmp(3) does: runs of
// digits compare as numbers, and a run with leading zeros as a fraction
// that sorts before the integers ("000" < "00" < "01" < "010" < "09" <
// "0" < "1" < "9" < "10"). It returns <0, 0 or >0.
func Strverscmp(a, b string) int {
	// glibc's state machine: S_N normal, S_I integer part, S_F fraction,
	// S_Z leading zeros.
	const (
		sN = 0
		sI = 3
		sF = 6
		sZ = 9
		// result types
		rCMP = 2
		rLEN = 3
	)
	nextState := [...]int{
		/* S_N */ sN, sI, sZ,
		/* S_I */ sN, sI, sI,
		/* S_F */ sN, sF, sF,
		/* S_Z */ sN, sF, sZ,
	}
	resultType := [...]int{
		/* S_N */ rCMP, rCMP, rCMP, rCMP, rLEN, rCMP, rCMP, rCMP, rCMP,
		/* S_I */ rCMP, -1, -1, +1, rLEN, rLEN, +1, rLEN, rLEN,
		/* S_F */ rCMP, rCMP, rCMP, rCMP, rCMP, rCMP, rCMP, rCMP, rCMP,
		/* S_Z */ rCMP, +1, +1, -1, rCMP, rCMP, -1, rCMP, rCMP,
	}
	at := func(s string, i int) int {
		if i < len(s) {
			return int(s[i])
		}
		return 0
	}
	class := func(c int) int {
		n := 0
		if c == '0' {
			n++
		}
		if c >= '0' && c <= '9' {
			n++
		}
		return n
	}
	if a == b {
		return 0
	}
	i := 0
	c1, c2 := at(a, i), at(b, i)
	i++
	state := sN + class(c1)
	diff := c1 - c2
	for diff == 0 {
		if c1 == 0 {
			return 0
		}
		state = nextState[state]
		c1, c2 = at(a, i), at(b, i)
		i++
		state += class(c1)
		diff = c1 - c2
	}
	switch r := resultType[state*3+class(c2)]; r {
	case rCMP:
		return diff
	case rLEN:
		isDigit := func(c int) bool { return c >= '0' && c <= '9' }
		for j := i; ; j++ {
			if !isDigit(at(a, j)) {
				if isDigit(at(b, j)) {
					return -1
				}
				return diff
			}
			if !isDigit(at(b, j)) {
				return 1
			}
		}
	default:
		return r
	}
}
