package compose

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-os/strata/errdefs"
)

// AptSource is one "deb" source of apt's configuration.
type AptSource struct {
	URI        string
	Suites     []string
	Components []string
	SignedBy   string
	From       string // the file it was read from
}

// AptSources reads the "deb" sources of apt's configuration under root
// ("/" for the build machine): etc/apt/sources.list, then
// etc/apt/sources.list.d/*.list and *.sources in name order, as apt reads
// them. Disabled deb822 stanzas (Enabled: no) are skipped.
func AptSources(root string) ([]AptSource, error) {
	var out []AptSource
	main := filepath.Join(root, "etc/apt/sources.list")
	if b, err := os.ReadFile(main); err == nil {
		out = append(out, parseOneLine(b, main)...)
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	dir := filepath.Join(root, "etc/apt/sources.list.d")
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(dir, n)
		switch {
		case strings.HasSuffix(n, ".list"):
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			out = append(out, parseOneLine(b, p)...)
		case strings.HasSuffix(n, ".sources"):
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			out = append(out, parseDeb822(b, p)...)
		}
	}
	return out, nil
}

func parseOneLine(b []byte, from string) []AptSource {
	var out []AptSource
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		src := AptSource{From: from}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			var opts []string
			for len(f) > 0 {
				opts = append(opts, f[0])
				done := strings.HasSuffix(f[0], "]")
				f = f[1:]
				if done {
					break
				}
			}
			for _, o := range strings.Fields(strings.Trim(strings.Join(opts, " "), "[]")) {
				if v, ok := strings.CutPrefix(o, "signed-by="); ok {
					src.SignedBy = v
				}
			}
		}
		if len(f) < 2 {
			continue
		}
		src.URI, src.Suites, src.Components = f[0], []string{f[1]}, f[2:]
		out = append(out, src)
	}
	return out
}

func parseDeb822(b []byte, from string) []AptSource {
	var out []AptSource
	for _, stanza := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n") {
		fields := map[string]string{}
		key := ""
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			if (line[0] == ' ' || line[0] == '\t') && key != "" {
				fields[key] += "\n" + strings.TrimSpace(line)
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			key = strings.ToLower(strings.TrimSpace(k))
			fields[key] = strings.TrimSpace(v)
		}
		if !containsWord(fields["types"], "deb") || strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		for _, uri := range strings.Fields(fields["uris"]) {
			out = append(out, AptSource{
				URI:        uri,
				Suites:     strings.Fields(fields["suites"]),
				Components: strings.Fields(fields["components"]),
				SignedBy:   strings.TrimSpace(fields["signed-by"]),
				From:       from,
			})
		}
	}
	return out
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// FindMirror returns the first source of apt's configuration under root
// that carries suite.
func FindMirror(root, suite string) (AptSource, error) {
	srcs, err := AptSources(root)
	if err != nil {
		return AptSource{}, fmt.Errorf("reading apt's sources: %w", err)
	}
	for _, s := range srcs {
		for _, su := range s.Suites {
			if su == suite {
				return s, nil
			}
		}
	}
	return AptSource{}, fmt.Errorf("no deb source for suite %q in %s/etc/apt/sources.list or sources.list.d (set [base] mirror): %w",
		suite, strings.TrimSuffix(root, "/"), errdefs.ErrNotFound)
}
