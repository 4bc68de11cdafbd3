// Package grubcfg writes the grub.cfg of one boot version for GRUB as
// Debian ships it (no blscfg, no increment module) and reads and writes
// grubenv, GRUB's 1024-byte environment block, where the boot counter of
// a new deployment lives (docs/install.md, "GRUB").
//
// The counter: when a deployment becomes the default, the sysroot writes
// strata_pending=KEY and strata_left=N into grubenv before the switch.
// The grub.cfg of a boot version whose default is KEY decrements
// strata_left at each boot with a chain of string tests (GRUB's script
// has no arithmetic), saves it with save_env, and boots the second entry
// (the previous deployment) once it reaches 0. `strata admin
// boot-complete` (the health check's success) clears strata_pending;
// MarkBad sets strata_left=0.
package grubcfg

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
)

// Env keys strata keeps in grubenv.
const (
	PendingKey = "strata_pending"
	LeftKey    = "strata_left"
)

// MaxTries bounds the counter the generated script can count down from.
const MaxTries = 9

// Entry is one menu entry, default first.
type Entry struct {
	// Key names the deployment ("$csum.$serial").
	Key   string
	Entry *bootloader.Entry
}

// Config returns grub.cfg for entries (default first). bootPrefix is the
// path of the boot directory on the filesystem GRUB reads ("/boot" when
// /boot is a directory of the root filesystem, "" when it is its own).
func Config(entries []Entry, bootPrefix string) ([]byte, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: grub.cfg: no entries", errdefs.ErrInvalid)
	}
	var b bytes.Buffer
	b.WriteString("# Written by strata for this boot version; do not edit.\n")
	b.WriteString("set default=0\nset timeout=1\n")
	b.WriteString("serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n")
	fmt.Fprintf(&b, "set strata_default=%s\n", quote(entries[0].Key))
	b.WriteString("if [ -s $prefix/grubenv ]; then\n  load_env " + PendingKey + " " + LeftKey + "\nfi\n")
	fmt.Fprintf(&b, "if [ \"${%s}\" = \"${strata_default}\" ]; then\n", PendingKey)
	fmt.Fprintf(&b, "  if [ \"${%s}\" = \"0\" ]; then\n", LeftKey)
	if len(entries) > 1 {
		b.WriteString("    set default=1\n")
	} else {
		b.WriteString("    true\n") // nothing to fall back to
	}
	for n := MaxTries; n >= 1; n-- {
		fmt.Fprintf(&b, "  elif [ \"${%s}\" = \"%d\" ]; then\n    set %s=%d\n    save_env %s\n", LeftKey, n, LeftKey, n-1, LeftKey)
	}
	b.WriteString("  fi\nfi\n")
	for i, e := range entries {
		title := e.Entry.Value("title")
		if title == "" {
			title = "deployment " + strconv.Itoa(i)
		}
		fmt.Fprintf(&b, "menuentry %s --id %s {\n", quote(title), quote("strata-"+strconv.Itoa(i)))
		linux, _ := e.Entry.Get("linux")
		if linux == "" {
			return nil, fmt.Errorf("%w: grub.cfg: entry %q has no linux", errdefs.ErrInvalid, title)
		}
		options, err := words(e.Entry.Value("options"))
		if err != nil {
			return nil, fmt.Errorf("grub.cfg: entry %q: options: %w", title, err)
		}
		fmt.Fprintf(&b, "  linux %s %s\n", word(bootPrefix+linux), options)
		var initrds []string
		if v, ok := e.Entry.Get("initrd"); ok && v != "" {
			initrds = append(initrds, word(bootPrefix+v))
			for _, o := range e.Entry.OverlayInitrds() {
				initrds = append(initrds, word(bootPrefix+o))
			}
		}
		if len(initrds) > 0 {
			fmt.Fprintf(&b, "  initrd %s\n", strings.Join(initrds, " "))
		}
		b.WriteString("}\n")
	}
	return b.Bytes(), nil
}

// quote single-quotes s for GRUB's script (a quote inside becomes '\”).
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// word escapes s as one word of GRUB's script: a backslash before every
// byte but letters, digits and "-_=./:,+@%^~", so that a file name
// holding ';', '$', quotes, braces or '#' stays one literal argument.
func word(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_=./:,+@%^~", c) >= 0
}

// words escapes a kernel command line for GRUB's linux command so that
// GRUB hands the kernel the arguments the line holds, as GRUB's own
// grub-mkconfig lines do for ordinary ones: spaces still separate
// arguments and double quotes still group them (GRUB removes them and
// quotes an argument holding a space again), and every other byte GRUB's
// script would interpret (';', '|', '&', '<', '>', '$', the single
// quote, the backslash, braces, parentheses, '#') is escaped with a
// backslash, inside double quotes '$' and the backslash. Without it a
// kernel argument from an image's kargs.d or --karg ("x;reboot", "$root",
// "it's") ran commands, expanded variables or swallowed the rest of
// grub.cfg. A line with an unclosed double quote is refused.
func words(line string) (string, error) {
	var b strings.Builder
	inDQ := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			inDQ = !inDQ
		case inDQ && (c == '$' || c == '\\'):
			b.WriteByte('\\')
		case !inDQ && c != ' ' && !plain(c):
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	if inDQ {
		return "", fmt.Errorf("%w: unclosed double quote in %q", errdefs.ErrInvalid, line)
	}
	return b.String(), nil
}

// envHeader starts every grubenv file.
const envHeader = "# GRUB Environment Block\n"

// EnvSize is the size of a grubenv file.
const EnvSize = 1024

// ReadEnv parses a grubenv file. A missing file is an empty environment.
// Anything but a regular file of at most EnvSize bytes (GRUB's tools
// write exactly that, and GRUB's save_env rewrites it in place) is
// refused, before a byte is read: a FIFO would block boot-complete, a
// huge file would be read whole.
func ReadEnv(path string) (map[string]string, error) {
	data, err := fsutil.ReadFileLimit(path, EnvSize)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("grubenv: %w", err)
	}
	return ParseEnv(data)
}

// ParseEnv parses grubenv bytes: the header, KEY=VALUE lines, '#' padding.
func ParseEnv(data []byte) (map[string]string, error) {
	if !bytes.HasPrefix(data, []byte(envHeader)) {
		return nil, fmt.Errorf("%w: grubenv: no %q header", errdefs.ErrCorrupt, strings.TrimSpace(envHeader))
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data[len(envHeader):]), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		env[k] = unescape(v)
	}
	return env, nil
}

func unescape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
			if v[i] == 'n' {
				b.WriteByte('\n')
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// FormatEnv serialises env as grub-editenv does: header, KEY=VALUE lines
// (sorted here, for reproducible bytes; '\' and newlines escaped), '#'
// up to 1024 bytes.
func FormatEnv(env map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(env))
	for k := range env {
		if k == "" || strings.ContainsAny(k, "=\n#") {
			return nil, fmt.Errorf("%w: grubenv: bad key %q", errdefs.ErrInvalid, k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString(envHeader)
	for _, k := range keys {
		v := strings.ReplaceAll(env[k], `\`, `\\`)
		v = strings.ReplaceAll(v, "\n", `\n`)
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	if b.Len() > EnvSize {
		return nil, fmt.Errorf("%w: grubenv: %d bytes do not fit in %d", errdefs.ErrInvalid, b.Len(), EnvSize)
	}
	b.Write(bytes.Repeat([]byte("#"), EnvSize-b.Len()))
	return b.Bytes(), nil
}

// UpdateEnv durably rewrites the grubenv at path with set applied
// (an empty value deletes the key); other keys are kept.
func UpdateEnv(path string, set map[string]string) error {
	env, err := ReadEnv(path)
	if err != nil {
		return err
	}
	for k, v := range set {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	data, err := FormatEnv(env)
	if err != nil {
		return err
	}
	if err := fsutil.CheckFailpoint("grubenv:" + path); err != nil {
		return err
	}
	return fsutil.WriteFile(path, data, 0o644)
}
