package repo

import (
	"bufio"
	"fmt"
	"strings"
)

// KeyFile is a GLib-style key file ("[group]" and "key=value" lines), as
// OSTree uses for a repo's config and for remotes. Order and comments are
// kept so that rewriting a file changes only what was set.
type KeyFile struct {
	groups []*kfGroup
}

type kfGroup struct {
	name  string
	lines []kfLine
}

type kfLine struct {
	key, value string // key empty: raw line (comment or blank)
	raw        string // the line as read; empty once the key is set

}

// ParseKeyFile parses a key file.
func ParseKeyFile(data string) (*KeyFile, error) {
	kf := &KeyFile{}
	var cur *kfGroup
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		t := strings.TrimSpace(line)
		switch {
		case t == "" || strings.HasPrefix(t, "#"):
			if cur == nil {
				cur = &kfGroup{}
				kf.groups = append(kf.groups, cur)
			}
			cur.lines = append(cur.lines, kfLine{raw: line})
		case strings.HasPrefix(t, "["):
			if !strings.HasSuffix(t, "]") || len(t) < 3 {
				return nil, fmt.Errorf("line %d: bad group header %q", n, t)
			}
			cur = &kfGroup{name: t[1 : len(t)-1]}
			kf.groups = append(kf.groups, cur)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == nil || cur.name == "" {
				return nil, fmt.Errorf("line %d: expected key=value in a group: %q", n, t)
			}
			cur.lines = append(cur.lines, kfLine{key: strings.TrimSpace(k), value: strings.TrimLeft(v, " \t"), raw: line})
		}
	}
	return kf, sc.Err()
}

func (kf *KeyFile) group(name string) *kfGroup {
	for _, g := range kf.groups {
		if g.name == name {
			return g
		}
	}
	return nil
}

// Get returns the raw value of key in group.
func (kf *KeyFile) Get(group, key string) (string, bool) {
	g := kf.group(group)
	if g == nil {
		return "", false
	}
	for i := len(g.lines) - 1; i >= 0; i-- {
		if g.lines[i].key == key {
			return unescapeValue(g.lines[i].value), true
		}
	}
	return "", false
}

// GetDefault returns the value of key or def.
func (kf *KeyFile) GetDefault(group, key, def string) string {
	if v, ok := kf.Get(group, key); ok {
		return v
	}
	return def
}

// GetBool parses a boolean value ("true"/"false", "1"/"0").
func (kf *KeyFile) GetBool(group, key string, def bool) (bool, error) {
	v, ok := kf.Get(group, key)
	if !ok {
		return def, nil
	}
	switch strings.TrimSpace(v) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return def, fmt.Errorf("key %s.%s: invalid boolean %q", group, key, v)
}

// GetList splits a list value on ';' (GLib's list separator), dropping the
// trailing empty element.
func (kf *KeyFile) GetList(group, key string) []string {
	v, ok := kf.Get(group, key)
	if !ok || v == "" {
		return nil
	}
	parts := strings.Split(strings.TrimSuffix(v, ";"), ";")
	return parts
}

// Set sets key in group, creating the group at the end if needed.
func (kf *KeyFile) Set(group, key, value string) {
	g := kf.group(group)
	if g == nil {
		g = &kfGroup{name: group}
		kf.groups = append(kf.groups, g)
	}
	for i := range g.lines {
		if g.lines[i].key == key {
			g.lines[i].value = escapeValue(value)
			g.lines[i].raw = ""
			return
		}
	}
	// Insert after the last key so trailing blank lines stay at the end.
	at := len(g.lines)
	for at > 0 && g.lines[at-1].key == "" {
		at--
	}
	g.lines = append(g.lines, kfLine{})
	copy(g.lines[at+1:], g.lines[at:])
	g.lines[at] = kfLine{key: key, value: escapeValue(value)}
}

// Delete removes key from group.
func (kf *KeyFile) Delete(group, key string) {
	g := kf.group(group)
	if g == nil {
		return
	}
	out := g.lines[:0]
	for _, l := range g.lines {
		if l.key != key {
			out = append(out, l)
		}
	}
	g.lines = out
}

// DeleteGroup removes a whole group.
func (kf *KeyFile) DeleteGroup(group string) bool {
	for i, g := range kf.groups {
		if g.name == group {
			kf.groups = append(kf.groups[:i], kf.groups[i+1:]...)
			return true
		}
	}
	return false
}

// Groups lists group names in order.
func (kf *KeyFile) Groups() []string {
	var out []string
	for _, g := range kf.groups {
		if g.name != "" {
			out = append(out, g.name)
		}
	}
	return out
}

// Keys lists the keys of a group in order.
func (kf *KeyFile) Keys(group string) []string {
	g := kf.group(group)
	if g == nil {
		return nil
	}
	var out []string
	for _, l := range g.lines {
		if l.key != "" {
			out = append(out, l.key)
		}
	}
	return out
}

// HasGroup reports whether group exists.
func (kf *KeyFile) HasGroup(group string) bool { return kf.group(group) != nil }

// String serialises the key file.
func (kf *KeyFile) String() string {
	var b strings.Builder
	for _, g := range kf.groups {
		if g.name != "" {
			fmt.Fprintf(&b, "[%s]\n", g.name)
		}
		for _, l := range g.lines {
			if l.key == "" || l.raw != "" { // unchanged lines keep their spelling
				writeLine(&b, l.raw)
			} else {
				writeLine(&b, l.key+"="+l.value)
			}
		}
	}
	return b.String()
}

// writeLine writes one line. A line that ends in '\r' gets another: the
// parser, as GLib's, drops one '\r' before the '\n' (CRLF files), so the
// line would otherwise lose its own (found by FuzzParseKeyFile).
func writeLine(b *strings.Builder, line string) {
	b.WriteString(line)
	if strings.HasSuffix(line, "\r") {
		b.WriteByte('\r')
	}
	b.WriteByte('\n')
}

func escapeValue(v string) string {
	r := strings.NewReplacer("\\", `\\`, "\n", `\n`, "\t", `\t`, "\r", `\r`)
	v = r.Replace(v)
	if strings.HasPrefix(v, " ") {
		v = `\s` + v[1:]
	}
	return v
}

func unescapeValue(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' || i+1 == len(v) {
			b.WriteByte(v[i])
			continue
		}
		i++
		switch v[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		default:
			b.WriteByte(v[i])
		}
	}
	return b.String()
}
