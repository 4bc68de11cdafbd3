package sysroot

// Temporary shims for what the bootloader package will provide (BLS entry
// parse/format, kernel-argument editing, boot-counting names). They cover
// exactly what this package needs and are to be replaced by calls into
// bootloader when it lands; keep them small.

import (
	"fmt"
	"regexp"
	"strings"
)

// bootEntry is a BLS entry: "key value" lines. A second "initrd" line is
// an overlay initrd.
type bootEntry struct {
	keys    []string // insertion order, for the keys ostree writes last
	vals    map[string]string
	overlay []string
}

func newBootEntry() *bootEntry { return &bootEntry{vals: map[string]string{}} }

// parseBootEntry parses an entry as ostree does: lines starting with a
// letter, key and value split at the first space or tab.
func parseBootEntry(data string) *bootEntry {
	e := newBootEntry()
	for _, line := range strings.Split(data, "\n") {
		if line == "" || !isAlpha(line[0]) {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i <= 0 {
			continue
		}
		k, v := line[:i], line[i+1:]
		if _, ok := e.vals[k]; ok && k == "initrd" {
			e.overlay = append(e.overlay, v)
			continue
		}
		e.Set(k, v)
	}
	return e
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func (e *bootEntry) Get(k string) string { return e.vals[k] }

func (e *bootEntry) Set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

func (e *bootEntry) clone() *bootEntry {
	c := newBootEntry()
	for _, k := range e.keys {
		c.Set(k, e.vals[k])
	}
	c.overlay = append(c.overlay, e.overlay...)
	return c
}

// Format writes the entry in ostree's key order: title, version, options,
// devicetree, linux, initrd, the overlay initrds, then the other keys.
func (e *bootEntry) Format() []byte {
	var b strings.Builder
	written := map[string]bool{}
	for _, k := range []string{"title", "version", "options", "devicetree", "linux", "initrd"} {
		if v, ok := e.vals[k]; ok {
			fmt.Fprintf(&b, "%s %s\n", k, v)
			written[k] = true
		}
	}
	if written["initrd"] {
		for _, v := range e.overlay {
			fmt.Fprintf(&b, "initrd %s\n", v)
		}
	}
	for _, k := range e.keys {
		if !written[k] {
			fmt.Fprintf(&b, "%s %s\n", k, e.vals[k])
		}
	}
	return []byte(b.String())
}

// kargs is an ordered kernel command line with ostree's editing rules.
type kargs struct{ items []karg }

type karg struct {
	key, val string
	hasVal   bool
}

func splitKarg(a string) karg {
	k, v, ok := strings.Cut(a, "=")
	return karg{key: k, val: v, hasVal: ok}
}

func (k karg) String() string {
	if k.hasVal {
		return k.key + "=" + k.val
	}
	return k.key
}

// parseKargs splits options on single spaces, as ostree does.
func parseKargs(s string) *kargs {
	ka := &kargs{}
	if s == "" {
		return ka
	}
	for _, a := range strings.Split(s, " ") {
		ka.append(a)
	}
	return ka
}

func (ka *kargs) append(a string) { ka.items = append(ka.items, splitKarg(a)) }

// replace sets key=value: every existing argument with that key is
// removed and the new one takes the place of the first, or is appended.
func (ka *kargs) replace(a string) {
	n := splitKarg(a)
	out := ka.items[:0:0]
	placed := false
	for _, it := range ka.items {
		if it.key != n.key {
			out = append(out, it)
		} else if !placed {
			out = append(out, n)
			placed = true
		}
	}
	if !placed {
		out = append(out, n)
	}
	ka.items = out
}

// remove deletes key or key=value with ostree's rules: a key alone names
// its only value; with several values the exact one must be given.
func (ka *kargs) remove(a string) error {
	n := splitKarg(a)
	var idx []int
	for i, it := range ka.items {
		if it.key == n.key {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return fmt.Errorf("%w: no key '%s' found", ErrNotFound, n.key)
	}
	del := -1
	if len(idx) == 1 {
		it := ka.items[idx[0]]
		if n.hasVal && (!it.hasVal || it.val != n.val) {
			return fmt.Errorf("%w: no karg '%s' found", ErrNotFound, a)
		}
		del = idx[0]
	} else {
		for _, i := range idx {
			it := ka.items[i]
			if it.hasVal == n.hasVal && it.val == n.val {
				del = i
				break
			}
		}
		if del < 0 {
			if !n.hasVal {
				return fmt.Errorf("%w: multiple values for key '%s' found", ErrInvalid, a)
			}
			return fmt.Errorf("%w: no karg '%s' found", ErrNotFound, a)
		}
	}
	ka.items = append(ka.items[:del], ka.items[del+1:]...)
	return nil
}

func (ka *kargs) strv() []string {
	out := make([]string, len(ka.items))
	for i, it := range ka.items {
		out[i] = it.String()
	}
	return out
}

func (ka *kargs) String() string { return strings.Join(ka.strv(), " ") }

// kargValue returns the value of the first key=... argument.
func kargValue(options, key string) (string, bool) {
	for _, a := range strings.Split(options, " ") {
		if v, ok := strings.CutPrefix(a, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// strverscmp compares version strings as glibc's strverscmp does: runs of
// digits compare numerically, except that runs with leading zeros compare
// as fractional parts.
func strverscmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ca, cb := a[i], b[j]
		if isDigit(ca) && isDigit(cb) {
			si, sj := i, j
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			if c := compareDigitRuns(a[si:i], b[sj:j]); c != 0 {
				return c
			}
			continue
		}
		if ca != cb {
			return int(ca) - int(cb)
		}
		i++
		j++
	}
	return (len(a) - i) - (len(b) - j)
}

// compareDigitRuns compares two runs of digits: a run of two or more
// digits starting with 0 is a fraction and sorts before any integer; among
// fractions more leading zeros sort first, then the digits compare as
// text; integers compare numerically.
func compareDigitRuns(na, nb string) int {
	fa, fb := len(na) > 1 && na[0] == '0', len(nb) > 1 && nb[0] == '0'
	switch {
	case fa && !fb:
		return -1
	case fb && !fa:
		return 1
	case fa && fb:
		za, zb := len(na)-len(strings.TrimLeft(na, "0")), len(nb)-len(strings.TrimLeft(nb, "0"))
		if za != zb {
			return zb - za
		}
		return strings.Compare(na, nb)
	}
	if len(na) != len(nb) {
		return len(na) - len(nb)
	}
	return strings.Compare(na, nb)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// entryNameRe splits a systemd-boot boot-counting entry name:
// BASE[+LEFT[-DONE]].conf.
var entryNameRe = regexp.MustCompile(`^(.*?)(\+[0-9]+(-[0-9]+)?)?\.conf$`)

// splitEntryName returns an entry file name's base and its boot-counting
// suffix ("+3", "+1-2", or "").
func splitEntryName(name string) (base, counter string) {
	m := entryNameRe.FindStringSubmatch(name)
	if m == nil {
		return strings.TrimSuffix(name, ".conf"), ""
	}
	return m[1], m[2]
}
