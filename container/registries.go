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

// Values of a mirror's pull-from-mirror.
const (
	MirrorAll        = "all"
	MirrorDigestOnly = "digest-only"
	MirrorTagOnly    = "tag-only"
)

// RegistryEntry is one [[registry]] table of registries.conf.
type RegistryEntry struct {
	// Prefix selects the images the entry applies to (default: Location);
	// "*.example.com" matches every subdomain.
	Prefix string
	// Location replaces Prefix in the references pulled (empty: the
	// reference as written).
	Location string
	// Insecure allows HTTPS without certificate verification and falls
	// back to plain HTTP.
	Insecure bool
	// Blocked refuses every pull from and push to the registry.
	Blocked bool
	// Mirrors are tried in order before Location for a pull.
	Mirrors []Mirror
	// MirrorByDigestOnly uses the mirrors only for pulls by digest.
	MirrorByDigestOnly bool
	// File is where the entry was read.
	File string
}

// Mirror is one [[registry.mirror]] table.
type Mirror struct {
	// Location replaces the entry's prefix in the reference pulled.
	Location string
	Insecure bool
	// PullFromMirror is "" or MirrorAll, MirrorDigestOnly or MirrorTagOnly.
	PullFromMirror string
}

// Registries is what strata uses of registries.conf: the [[registry]]
// entries (version 2, or version 1's [registries.insecure] and
// [registries.block] lists) with their prefix, location, insecure and
// blocked flags and mirrors. Short-name aliases and
// unqualified-search-registries are not used (docker:// references are
// fully qualified, as for skopeo).
type Registries struct {
	Entries []RegistryEntry
	// UnqualifiedSearch is unqualified-search-registries, read but unused.
	UnqualifiedSearch []string
}

type endpointTOML struct {
	Location       string `toml:"location"`
	Insecure       bool   `toml:"insecure"`
	PullFromMirror string `toml:"pull-from-mirror"`
}

type registriesFile struct {
	UnqualifiedSearch *[]string `toml:"unqualified-search-registries"`
	Registry          []struct {
		endpointTOML
		Prefix             string         `toml:"prefix"`
		Blocked            bool           `toml:"blocked"`
		Mirror             []endpointTOML `toml:"mirror"`
		MirrorByDigestOnly bool           `toml:"mirror-by-digest-only"`
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
		e, err := registryEntry(f, r.Prefix, r.endpointTOML, r.Blocked, r.MirrorByDigestOnly, r.Mirror)
		if err != nil {
			return err
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

// registryEntry checks a [[registry]] table as containers/image does,
// except that a prefix without a location is taken as its own location.
func registryEntry(f, prefix string, ep endpointTOML, blocked, byDigest bool, mirrors []endpointTOML) (RegistryEntry, error) {
	bad := func(format string, a ...any) (RegistryEntry, error) {
		return RegistryEntry{}, fmt.Errorf("%w: registries.conf %s: %s", errdefs.ErrInvalid, f, fmt.Sprintf(format, a...))
	}
	e := RegistryEntry{Prefix: strings.TrimRight(prefix, "/"), Location: strings.TrimRight(ep.Location, "/"),
		Insecure: ep.Insecure, Blocked: blocked, MirrorByDigestOnly: byDigest, File: f}
	if e.Prefix == "" {
		e.Prefix = e.Location
	}
	if e.Prefix == "" {
		return bad("a [[registry]] has neither location nor prefix")
	}
	if strings.Contains(e.Location, "://") || strings.Contains(e.Prefix, "://") {
		return bad("registry %q: location and prefix take no scheme", e.Prefix)
	}
	if ep.PullFromMirror != "" {
		return bad("registry %q: pull-from-mirror belongs in a [[registry.mirror]], not the registry", e.Prefix)
	}
	if e.Location == "" && !strings.HasPrefix(e.Prefix, "*.") {
		e.Location = e.Prefix
	}
	for i, m := range mirrors {
		loc := strings.TrimRight(m.Location, "/")
		switch {
		case loc == "":
			return bad("registry %q: mirror %d has no location", e.Prefix, i+1)
		case strings.Contains(loc, "://"):
			return bad("registry %q: mirror %q: a location takes no scheme", e.Prefix, loc)
		case m.PullFromMirror != "" && m.PullFromMirror != MirrorAll && m.PullFromMirror != MirrorDigestOnly && m.PullFromMirror != MirrorTagOnly:
			return bad("registry %q: mirror %q: pull-from-mirror %q is not all, digest-only or tag-only", e.Prefix, loc, m.PullFromMirror)
		case m.PullFromMirror != "" && byDigest:
			return bad("registry %q: mirror %q: pull-from-mirror and the registry's mirror-by-digest-only exclude each other", e.Prefix, loc)
		}
		e.Mirrors = append(e.Mirrors, Mirror{Location: loc, Insecure: m.Insecure, PullFromMirror: m.PullFromMirror})
	}
	return e, nil
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

// endpoint is one place an image is read from or written to: the
// reference as written, or rewritten to a location or a mirror's.
type endpoint struct {
	ref      name.Reference
	insecure bool
	mirror   bool
	// rewritten is set when ref is not the reference as written (a
	// mirror's or a remapped location's).
	rewritten bool
	// blocked is set when registries.conf blocks the rewritten reference's
	// own registry: the endpoint is skipped without a connection.
	blocked error
}

// parse parses ref.Name, for HTTPS without verification when insecure.
func parse(ref ImageRef, s string, insecure bool) (name.Reference, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(s, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: image %s: %w", errdefs.ErrInvalid, ref, err)
	}
	return r, nil
}

// reference parses an image's name for a push, with what registries.conf
// says of it: an error for a blocked registry; insecure when listed so.
// A push goes to the reference as written, never to a mirror or a
// remapped location (as containers/image).
func (rs *Registries) reference(ref ImageRef) (name.Reference, bool, error) {
	r, err := parse(ref, ref.Name, false)
	if err != nil {
		return nil, false, err
	}
	e := rs.Find(r)
	if e == nil {
		return r, false, nil
	}
	if e.Blocked {
		return nil, false, fmt.Errorf("image %s: registry %s is %w (%s)", ref, e.Prefix, ErrBlocked, e.File)
	}
	if e.Insecure {
		if r, err = parse(ref, ref.Name, true); err != nil {
			return nil, false, err
		}
	}
	return r, e.Insecure, nil
}

// pullEndpoints returns where an image is pulled from, in the order to
// try them, as containers/image: the mirrors that apply to the reference
// (by digest or by tag), then the registry's location, each with the
// matching prefix of the reference replaced by its location. A blocked
// registry is an error.
func (rs *Registries) pullEndpoints(ref ImageRef) ([]endpoint, error) {
	r, err := parse(ref, ref.Name, false)
	if err != nil {
		return nil, err
	}
	e := rs.Find(r)
	if e == nil {
		return []endpoint{{ref: r}}, nil
	}
	if e.Blocked {
		return nil, fmt.Errorf("image %s: registry %s is %w (%s)", ref, e.Prefix, ErrBlocked, e.File)
	}
	_, byDigest := r.(name.Digest)
	q := qualifiedName(r)
	rest := q[prefixMatch(q, e.Prefix):]
	var eps []endpoint
	add := func(location string, insecure, mirror bool) error {
		s := q
		if location != "" {
			s = location + rest
		}
		pr, err := parse(ref, s, insecure)
		if err != nil {
			return fmt.Errorf("%w (%s rewrites it to %s)", err, e.File, s)
		}
		ep := endpoint{ref: pr, insecure: insecure, mirror: mirror, rewritten: s != q}
		if o := rs.Find(pr); o != nil && o != e && o.Blocked {
			ep.blocked = fmt.Errorf("registry %s is %w (%s)", o.Prefix, ErrBlocked, o.File)
		}
		eps = append(eps, ep)
		return nil
	}
	for _, m := range e.Mirrors {
		switch {
		case e.MirrorByDigestOnly && !byDigest:
			continue
		case m.PullFromMirror == MirrorDigestOnly && !byDigest:
			continue
		case m.PullFromMirror == MirrorTagOnly && byDigest:
			continue
		}
		if err := add(m.Location, m.Insecure, true); err != nil {
			return nil, err
		}
	}
	if err := add(e.Location, e.Insecure, false); err != nil {
		return nil, err
	}
	return eps, nil
}
