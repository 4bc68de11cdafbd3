package bootloader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ReadEntries reads ostree's entries of a loader.N/entries directory as
// _ostree_sysroot_read_boot_loader_configs does: every name starting with
// "ostree-" and ending in ".conf" that is a regular file (symlinks
// followed; one that cannot be stat'ed is an error), parsed with
// ParseEntry, sorted by "version" with strverscmp, highest first, entries
// without a version last. A missing directory has no entries.
func ReadEntries(dir string) ([]LoaderEntry, error) {
	ents, err := readdirNames(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read boot entries: %w", err)
	}
	var out []LoaderEntry
	for _, de := range ents {
		p := filepath.Join(dir, de.Name())
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read boot entries: %w", err)
		}
		if !strings.HasPrefix(de.Name(), "ostree-") || !strings.HasSuffix(de.Name(), ".conf") || !st.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read boot entries: %w", err)
		}
		e, err := ParseEntry(data)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", p, err)
		}
		out = append(out, LoaderEntry{Name: de.Name(), Entry: e})
	}
	SortByVersion(out)
	return out, nil
}

// SortByVersion sorts entries as ostree sorts its boot configs: by
// "version" compared with strverscmp, highest first; entries without a
// version after those with one.
func SortByVersion(entries []LoaderEntry) {
	sort.SliceStable(entries, func(i, j int) bool {
		a, aok := entryValue(entries[i], "version")
		b, bok := entryValue(entries[j], "version")
		switch {
		case aok && bok:
			return Strverscmp(a, b) > 0
		case aok != bok:
			return aok
		}
		return false
	})
}
