package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/pelletier/go-toml/v2"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
)

// DefaultRegistriesConf is containers-registries.conf(5)'s system file;
// its drop-ins are the *.conf files of the directory of the same name plus
// ".d".
const DefaultRegistriesConf = "/etc/containers/registries.conf"

// maxRegistriesConfSize caps a registries.conf file.
const maxRegistriesConfSize = 1 << 20

// ErrBlocked is returned for an image of a registry registries.conf
// blocks.
var ErrBlocked = errors.New("blocked by registries.conf")

// RegistryEntry is one [[registry]] table of registries.conf.
type RegistryEntry struct {
	// Prefix selects the images the entry applies to (default: Location);
	// "*.example.com" matches every subdomain.
	Prefix   string
	Location string
	// Insecure allows HTTPS without certificate verification and falls
	// back to plain HTTP.
	Insecure bool
	// Blocked refuses every pull from and push to the registry.
	Blocked bool
	// File is where the entry was read.
	File string
}

// Registries is what strata uses of registries.conf: the [[registry]]
// entries' insecure and blocked flags (version 2, or version 1's
// [registries.insecure] and [registries.block] lists). Mirrors, remapping
// a prefix to another location, short-name aliases and
// unqualified-search-registries are not used (docker:// references are
// fully qualified, as for skopeo).
type Registries struct {
	Entries []RegistryEntry
	// UnqualifiedSearch is unqualified-search-registries, read but unused.
	UnqualifiedSearch []string
}

type registriesFile struct {
	UnqualifiedSearch *[]string `toml:"unqualified-search-registries"`
	Registry          []struct {
		Prefix   string `toml:"prefix"`
		Location string `toml:"location"`
		Insecure bool   `toml:"insecure"`
		Blocked  bool   `toml:"blocked"`
	} `toml:"registry"`
	V1 *struct {
		Search   struct{ Registries []string } `toml:"search"`
		Insecure struct{ Registries []string } `toml:"insecure"`
		Block    struct{ Registries []string } `toml:"block"`
	} `toml:"registries"`
}

// LoadRegistries reads registries.conf at path and then the *.conf
// drop-ins of path+".d" in lexical order, as containers/image merges
// them: a drop-in's [[registry]] replaces an earlier one with the same
// prefix, and its unqualified-search-registries, when set, replaces the
// earlier list. A missing file or directory counts as empty unless
// required (a path the user named). Any file that does not parse fails
// the whole, naming the file.
func LoadRegistries(path string, required bool) (*Registries, error) {
	files := []string{path}
	dropins, err := filepath.Glob(filepath.Join(path+".d", "*.conf"))
	if err != nil {
		return nil, err
	}
	sort.Strings(dropins)
	files = append(files, dropins...)
	rs := &Registries{}
	for i, f := range files {
		data, err := fsutil.ReadFileLimit(f, maxRegistriesConfSize)
		if errors.Is(err, os.ErrNotExist) && !(i == 0 && required) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registries.conf: %w", err)
		}
		if err := rs.merge(f, data); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

func (rs *Registries) merge(f string, data []byte) error {
	var doc registriesFile
	if err := toml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%w: registries.conf %s: %w", errdefs.ErrInvalid, f, err)
	}
	var entries []RegistryEntry
	if doc.V1 != nil {
		if len(doc.Registry) > 0 || doc.UnqualifiedSearch != nil {
			return fmt.Errorf("%w: registries.conf %s mixes version 1 ([registries.*]) and version 2 ([[registry]]) tables", errdefs.ErrInvalid, f)
		}
		for _, h := range doc.V1.Insecure.Registries {
			entries = append(entries, RegistryEntry{Prefix: h, Location: h, Insecure: true, File: f})
		}
		for _, h := range doc.V1.Block.Registries {
			entries = append(entries, RegistryEntry{Prefix: h, Location: h, Blocked: true, File: f})
		}
		if doc.V1.Search.Registries != nil {
			rs.UnqualifiedSearch = doc.V1.Search.Registries
		}
	}
	for _, r := range doc.Registry {
		e := RegistryEntry{Prefix: r.Prefix, Location: r.Location, Insecure: r.Insecure, Blocked: r.Blocked, File: f}
		if e.Prefix == "" {
			e.Prefix = e.Location
		}
		if e.Prefix == "" {
			return fmt.Errorf("%w: registries.conf %s: a [[registry]] has neither location nor prefix", errdefs.ErrInvalid, f)
		}
		if strings.Contains(e.Location, "://") || strings.Contains(e.Prefix, "://") {
			return fmt.Errorf("%w: registries.conf %s: registry %q: location and prefix take no scheme", errdefs.ErrInvalid, f, e.Prefix)
		}
		entries = append(entries, e)
	}
	for _, e := range entries {
		replaced := false
		for i := range rs.Entries {
			if rs.Entries[i].Prefix == e.Prefix {
				rs.Entries[i], replaced = e, true
			}
		}
		if !replaced {
			rs.Entries = append(rs.Entries, e)
		}
	}
	if doc.UnqualifiedSearch != nil {
		rs.UnqualifiedSearch = *doc.UnqualifiedSearch
	}
	return nil
}

// qualifiedName is a reference as registries.conf prefixes match it:
// HOST/REPOSITORY[:TAG|@DIGEST], with Docker Hub as docker.io.
func qualifiedName(r name.Reference) string {
	c := r.Context()
	host := c.RegistryStr()
	if host == name.DefaultRegistry {
		host = "docker.io"
	}
	s := host + "/" + c.RepositoryStr()
	switch t := r.(type) {
	case name.Tag:
		s += ":" + t.TagStr()
	case name.Digest:
		s += "@" + t.DigestStr()
	}
	return s
}

// prefixMatch returns how long a match prefix is for ref (-1: none), as
// containers/image: the prefix followed in ref by nothing, ':', '/' or
// '@'; "*.example.com" matches the hosts ending in ".example.com".
func prefixMatch(ref, prefix string) int {
	if sub, ok := strings.CutPrefix(prefix, "*"); ok {
		i := strings.Index(ref, sub)
		if i < 0 || strings.Contains(ref[:i], "/") {
			return -1
		}
		i += len(sub)
		if i == len(ref) || strings.ContainsRune(":/@", rune(ref[i])) {
			return i
		}
		return -1
	}
	if !strings.HasPrefix(ref, prefix) {
		return -1
	}
	if len(ref) == len(prefix) || strings.ContainsRune(":/@", rune(ref[len(prefix)])) {
		return len(prefix)
	}
	return -1
}

// Find returns the entry with the longest prefix matching r, or nil.
func (rs *Registries) Find(r name.Reference) *RegistryEntry {
	if rs == nil {
		return nil
	}
	q := qualifiedName(r)
	var best *RegistryEntry
	bestLen := -1
	for i := range rs.Entries {
		if n := prefixMatch(q, rs.Entries[i].Prefix); n > bestLen {
			best, bestLen = &rs.Entries[i], n
		}
	}
	return best
}

// reference parses an image's name with what registries.conf says of it:
// an error for a blocked registry or a prefix that remaps to another
// location; insecure when listed so.
func (rs *Registries) reference(ref ImageRef) (name.Reference, bool, error) {
	r, err := name.ParseReference(ref.Name)
	if err != nil {
		return nil, false, fmt.Errorf("%w: image %s: %w", errdefs.ErrInvalid, ref, err)
	}
	e := rs.Find(r)
	if e == nil {
		return r, false, nil
	}
	if e.Blocked {
		return nil, false, fmt.Errorf("image %s: registry %s is %w (%s)", ref, e.Prefix, ErrBlocked, e.File)
	}
	if e.Location != "" && e.Location != e.Prefix {
		return nil, false, fmt.Errorf("%w: image %s: %s remaps %s to %s, which strata does not support", errdefs.ErrInvalid, ref, e.File, e.Prefix, e.Location)
	}
	if e.Insecure {
		if r, err = name.ParseReference(ref.Name, name.Insecure); err != nil {
			return nil, false, fmt.Errorf("%w: image %s: %w", errdefs.ErrInvalid, ref, err)
		}
	}
	return r, e.Insecure, nil
}
