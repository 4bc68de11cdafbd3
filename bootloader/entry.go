package bootloader

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/ghash"
)

// Entry is a Boot Loader Specification type #1 entry as ostree's
// OstreeBootconfigParser holds it: one value per key, plus the overlay
// initrds (every "initrd" line after the first). Keys keep the order in
// which they were first parsed or set. The zero Entry is not usable; use
// NewEntry or ParseEntry.
type Entry struct {
	keys     []string
	vals     map[string]string
	overlays []string
	// hist is every insertion of a new key and every removal, in order:
	// what decides ostree's hash table order (see ghash.go).
	hist []histOp
}

type histOp struct {
	key    string
	remove bool
}

// formatOrder is the order in which ostree writes the keys it knows, that
// of the example in the Boot Loader Specification.
var formatOrder = []string{"title", "version", "options", "devicetree", "linux", "initrd"}

// NewEntry returns an empty entry.
func NewEntry() *Entry { return &Entry{vals: map[string]string{}} }

// ParseEntry parses an entry file as ostree does: the data is split at
// '\n'; a line counts only when it starts with an ASCII letter and has a
// space or tab after the key (the value is the rest of the line after the
// first one, possibly empty, '\r' included); other lines (comments, blank
// lines, a bare key) are ignored. A repeated key keeps its first position
// and takes the last value, except "initrd": the second and later ones
// are overlay initrds. Data that is not UTF-8 (or holds a NUL) is
// refused with errdefs.ErrInvalid, as ostree refuses it.
func ParseEntry(data []byte) (*Entry, error) {
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return nil, fmt.Errorf("boot entry: %w: not UTF-8 text", errdefs.ErrInvalid)
	}
	e := NewEntry()
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || !isASCIIAlpha(line[0]) {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			continue
		}
		k, v := line[:i], line[i+1:]
		if _, ok := e.vals[k]; ok && k == "initrd" {
			e.overlays = append(e.overlays, v)
			continue
		}
		e.Set(k, v)
	}
	return e, nil
}

func isASCIIAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// Get returns the value of key.
func (e *Entry) Get(key string) (string, bool) {
	v, ok := e.vals[key]
	return v, ok
}

// Value returns the value of key, or "" when it is not set.
func (e *Entry) Value(key string) string { return e.vals[key] }

// Set sets key to value; a new key goes after the existing ones.
func (e *Entry) Set(key, value string) {
	if _, ok := e.vals[key]; !ok {
		e.keys = append(e.keys, key)
		e.hist = append(e.hist, histOp{key: key})
	}
	e.vals[key] = value
}

// Delete removes key (and, for "initrd", the overlay initrds with it).
func (e *Entry) Delete(key string) {
	if _, ok := e.vals[key]; !ok {
		return
	}
	delete(e.vals, key)
	e.hist = append(e.hist, histOp{key: key, remove: true})
	for i, k := range e.keys {
		if k == key {
			e.keys = append(e.keys[:i:i], e.keys[i+1:]...)
			break
		}
	}
	if key == "initrd" {
		e.overlays = nil
	}
}

// Keys returns the keys in their order.
func (e *Entry) Keys() []string { return append([]string(nil), e.keys...) }

// OverlayInitrds returns the initrds after the first.
func (e *Entry) OverlayInitrds() []string { return append([]string(nil), e.overlays...) }

// SetOverlayInitrds replaces the overlay initrds. They are written only
// when the entry has an "initrd" (ostree requires one).
func (e *Entry) SetOverlayInitrds(paths []string) { e.overlays = append([]string(nil), paths...) }

// Clone returns a copy of e as ostree_bootconfig_parser_clone makes it:
// the keys are inserted in e's hash table order (so the copy's Keys order
// may differ from e's, and its Format is what ostree writes for a clone).
func (e *Entry) Clone() *Entry {
	c := NewEntry()
	for _, k := range e.hashOrder() {
		c.Set(k, e.vals[k])
	}
	c.overlays = append(c.overlays, e.overlays...)
	return c
}

// hashOrder returns the keys in the iteration order of ostree's hash
// table after e's history of insertions and removals.
func (e *Entry) hashOrder() []string {
	t := ghash.New()
	for _, h := range e.hist {
		if h.remove {
			t.Remove(h.key)
		} else {
			t.Insert(h.key)
		}
	}
	return t.Keys()
}

// Format returns the entry's file content, byte for byte as ostree's
// ostree_bootconfig_parser_write_at writes it: "key value\n" lines for
// title, version, options, devicetree, linux and initrd (those set), then
// one "initrd" line per overlay initrd, then the other keys in the
// iteration order of ostree's GLib hash table, which Format reproduces
// from the history of e's insertions and removals. To get ostree's bytes
// with several such keys, build the entry with the same sequence of Set
// calls as ostree (see docs/bootloader.md).
func (e *Entry) Format() []byte {
	var b bytes.Buffer
	written := map[string]bool{}
	for _, k := range formatOrder {
		if v, ok := e.vals[k]; ok {
			writeKey(&b, k, v)
			written[k] = true
		}
	}
	if written["initrd"] {
		for _, v := range e.overlays {
			writeKey(&b, "initrd", v)
		}
	}
	for _, k := range e.hashOrder() {
		if !written[k] {
			writeKey(&b, k, e.vals[k])
		}
	}
	return b.Bytes()
}

func writeKey(b *bytes.Buffer, k, v string) {
	b.WriteString(k)
	b.WriteByte(' ')
	b.WriteString(v)
	b.WriteByte('\n')
}

// Title returns the "title" ostree gives a deployment's entry: the
// os-release PRETTY_NAME (or ID), then the commit's version when it is
// non-empty and not already part of the name, then "(ostree", ":osname"
// when showOSName (several stateroots are deployed), ":index" and ")".
// For example "Debian GNU/Linux 12 (bookworm) 1.0 (ostree:0)".
func Title(prettyName, version, osname string, showOSName bool, index int) string {
	var b strings.Builder
	b.WriteString(prettyName)
	if version != "" && !strings.Contains(prettyName, version) {
		b.WriteByte(' ')
		b.WriteString(version)
	}
	b.WriteString(" (ostree")
	if showOSName {
		b.WriteByte(':')
		b.WriteString(osname)
	}
	fmt.Fprintf(&b, ":%d)", index)
	return b.String()
}

// EntryFileName returns the file name ostree gives the entry of the
// deployment at index among n deployments: "ostree-$((n-index))-$os.conf".
// Its number is also the entry's "version".
func EntryFileName(osname string, n, index int) string {
	return fmt.Sprintf("ostree-%d-%s.conf", n-index, osname)
}

// OstreeKarg returns the "ostree=" kernel argument of a deployment:
// ostree=/ostree/boot.$bootversion/$os/$bootcsum/$bootserial.
func OstreeKarg(bootversion int, osname, bootcsum string, bootserial int) string {
	return fmt.Sprintf("ostree=/ostree/boot.%d/%s/%s/%d", bootversion, osname, bootcsum, bootserial)
}
