package bootloader

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
)

// ParseOSRelease parses os-release content as ostree does
// (parse_os_release): lines are split at '\n', lines starting with '#'
// are skipped, the key is everything before the first '=' (not trimmed),
// and the value is unquoted with GLib's g_shell_unquote; a line whose
// value does not unquote (an unterminated quote) is skipped. The last of
// a repeated key wins.
func ParseOSRelease(data string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(data, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if u, ok := ShellUnquote(v); ok {
			out[k] = u
		}
	}
	return out
}

// ShellUnquote is GLib's g_shell_unquote: outside quotes a backslash
// takes the next character literally (and a backslash-newline vanishes);
// '...' is literal; inside "..." a backslash escapes only " \ ` $ and
// newline and is kept before anything else. ok is false for an
// unterminated quote.
func ShellUnquote(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); {
		switch c := s[i]; c {
		case '\\':
			i++
			if i < len(s) {
				if s[i] != '\n' {
					b.WriteByte(s[i])
				}
				i++
			}
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", false
			}
			b.WriteString(s[i+1 : i+1+end])
			i += end + 2
		case '"':
			i++
			closed := false
			for i < len(s) && !closed {
				switch s[i] {
				case '"':
					closed = true
					i++
				case '\\':
					i++
					if i < len(s) && strings.IndexByte("\"\\`$\n", s[i]) >= 0 {
						b.WriteByte(s[i])
						i++
					} else {
						b.WriteByte('\\')
					}
				default:
					b.WriteByte(s[i])
					i++
				}
			}
			if !closed {
				return "", false
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), true
}

// MaxOSReleaseSize bounds the os-release file read from a tree.
const MaxOSReleaseSize = 1 << 20

// DeploymentName returns the name ostree puts first in a deployment's
// entry title: PRETTY_NAME, else ID, from root's usr/lib/os-release when
// it exists, else etc/os-release. A missing file, content that is not
// UTF-8 text, or neither key is an error naming the file. The file is
// looked up inside root only (symlinks resolve as if root were "/"), must
// be a regular file and at most MaxOSReleaseSize bytes.
func DeploymentName(root string) (string, error) {
	t, err := openTree(root)
	if err != nil {
		return "", fmt.Errorf("reading os-release: %w", err)
	}
	defer t.close()
	var f *os.File
	var p string
	for _, p = range []string{"usr/lib/os-release", "etc/os-release"} {
		var ok bool
		if f, ok, err = t.open(p); err != nil {
			return "", fmt.Errorf("reading os-release: %w", err)
		}
		if ok {
			break
		}
	}
	if f == nil {
		return "", fmt.Errorf("reading os-release: /%s: %w", p, os.ErrNotExist)
	}
	defer f.Close()
	data, err := fsutil.ReadAllLimit(f, MaxOSReleaseSize)
	if err != nil {
		return "", fmt.Errorf("reading os-release: %w", err)
	}
	p = filepath.Join(root, p)
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return "", fmt.Errorf("reading %s: %w: not UTF-8 text", p, errdefs.ErrInvalid)
	}
	vals := ParseOSRelease(string(data))
	if v, ok := vals["PRETTY_NAME"]; ok {
		return v, nil
	}
	if v, ok := vals["ID"]; ok {
		return v, nil
	}
	return "", fmt.Errorf("%s: %w: no PRETTY_NAME or ID", p, errdefs.ErrInvalid)
}
