// Package summary generates, parses and publishes a repository's summary
// file: the index of refs (with commit sizes, timestamps and versions) and
// repository metadata that clients fetch first, in OSTree's format
// (a(s(taya{sv}))a{sv}), and its detached signature file summary.sig (an
// a{sv} of signatures).
//
// Generate builds the same bytes as `ostree summary -u` (2022.7) for the
// same repository and clock, including the order of dictionary keys, which
// OSTree takes from a GLib hash table (see dictOrder).
package summary

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/ghash"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// Keys of the summary's metadata and of each ref's metadata, as OSTree names
// them.
const (
	KeyLastModified   = "ostree.summary.last-modified"
	KeyExpires        = "ostree.summary.expires"
	KeyMode           = "ostree.summary.mode"
	KeyTombstones     = "ostree.summary.tombstone-commits"
	KeyIndexedDeltas  = "ostree.summary.indexed-deltas"
	KeyStaticDeltas   = "ostree.static-deltas"
	KeyCollectionID   = "ostree.summary.collection-id"
	KeyCollectionMap  = "ostree.summary.collection-map"
	KeyCommitTime     = "ostree.commit.timestamp"
	KeyCommitVersion  = "ostree.commit.version"
	FileName          = "summary"
	SigFileName       = "summary.sig"
	MaxSize           = objects.MaxMetadataSize
	refsTypeString    = "a(s(taya{sv}))"
	summaryTypeString = "(" + refsTypeString + "a{sv})"
)

var (
	// GVType is the summary file's GVariant type.
	GVType      = gvariant.MustParseType(summaryTypeString)
	collMapType = gvariant.MustParseType("a{sa(s(taya{sv}))}")
	tType       = gvariant.MustParseType("t")
	sType       = gvariant.MustParseType("s")
	bType       = gvariant.MustParseType("b")
)

// Ref is one entry of the summary's ref map.
type Ref struct {
	Name       string
	CommitSize uint64 // size of the serialised commit object
	Checksum   objects.Checksum
	Metadata   objects.Metadata
}

// Timestamp returns the commit timestamp the summary records for the ref.
func (r Ref) Timestamp() (time.Time, bool) {
	v, ok := r.Metadata.Get(KeyCommitTime)
	if !ok || v.Type.String() != "t" {
		return time.Time{}, false
	}
	return time.Unix(int64(bits.ReverseBytes64(v.Value.(uint64))), 0).UTC(), true
}

// Version returns the commit's version as the summary records it.
func (r Ref) Version() (string, bool) { return r.Metadata.String(KeyCommitVersion) }

// Collection is the refs of one collection in the collection map.
type Collection struct {
	ID   string
	Refs []Ref
}

// Summary is a parsed summary file.
type Summary struct {
	Refs        []Ref // sorted by name
	Metadata    objects.Metadata
	Collections []Collection // ostree.summary.collection-map, sorted by ID
}

// Lookup finds a ref of the main ref map.
func (s *Summary) Lookup(name string) (Ref, bool) {
	i := sort.Search(len(s.Refs), func(i int) bool { return s.Refs[i].Name >= name })
	if i < len(s.Refs) && s.Refs[i].Name == name {
		return s.Refs[i], true
	}
	return Ref{}, false
}

// CollectionID returns ostree.summary.collection-id, or "".
func (s *Summary) CollectionID() string {
	v, _ := s.Metadata.String(KeyCollectionID)
	return v
}

// Mode returns the repo mode the summary advertises, or "".
func (s *Summary) Mode() string {
	v, _ := s.Metadata.String(KeyMode)
	return v
}

// Parse parses summary bytes (untrusted: every field is checked).
func Parse(data []byte) (*Summary, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: summary of %d bytes exceeds %d", repo.ErrCorrupt, len(data), MaxSize)
	}
	v, err := gvariant.Unmarshal(GVType, data)
	if err != nil {
		return nil, fmt.Errorf("%w: summary: %w", repo.ErrCorrupt, err)
	}
	t := v.([]any)
	s := &Summary{}
	if s.Refs, err = parseRefs(t[0]); err != nil {
		return nil, err
	}
	s.Metadata = metadataFrom(t[1])
	if cm, ok := s.Metadata.Get(KeyCollectionMap); ok {
		if cm.Type.String() != collMapType.String() {
			return nil, fmt.Errorf("%w: summary: %s has type %s", repo.ErrCorrupt, KeyCollectionMap, cm.Type)
		}
		for _, it := range cm.Value.([]any) {
			kv := it.([]any)
			refs, err := parseRefs(kv[1])
			if err != nil {
				return nil, err
			}
			s.Collections = append(s.Collections, Collection{ID: kv[0].(string), Refs: refs})
		}
	}
	return s, nil
}

func parseRefs(v any) ([]Ref, error) {
	var out []Ref
	for _, it := range v.([]any) {
		e := it.([]any)
		name := e[0].(string)
		body := e[1].([]any)
		c, err := objects.ChecksumFromBytes(body[1].([]byte))
		if err != nil {
			return nil, fmt.Errorf("%w: summary ref %q: %w", repo.ErrCorrupt, name, err)
		}
		if err := repo.ValidateRefName(name); err != nil {
			return nil, fmt.Errorf("%w: summary: %w", repo.ErrCorrupt, err)
		}
		if len(out) > 0 && name <= out[len(out)-1].Name {
			return nil, fmt.Errorf("%w: summary refs not sorted at %q", repo.ErrCorrupt, name)
		}
		out = append(out, Ref{Name: name, CommitSize: body[0].(uint64), Checksum: c, Metadata: metadataFrom(body[2])})
	}
	return out, nil
}

func metadataFrom(v any) objects.Metadata {
	items := v.([]any)
	m := make(objects.Metadata, len(items))
	for i, it := range items {
		kv := it.([]any)
		m[i] = objects.MetaEntry{Key: kv[0].(string), Value: kv[1].(gvariant.Variant)}
	}
	return m
}

func metadataGV(m objects.Metadata) []any {
	out := make([]any, len(m))
	for i, e := range m {
		out[i] = []any{e.Key, e.Value}
	}
	return out
}

// vardict is GVariantDict: values keyed by name, serialised in GLib's hash
// order.
type vardict struct {
	order *ghash.Table
	vals  map[string]gvariant.Variant
}

func newVardict(from objects.Metadata) *vardict {
	d := &vardict{order: ghash.New(), vals: map[string]gvariant.Variant{}}
	for _, e := range from {
		d.insert(e.Key, e.Value)
	}
	return d
}

func (d *vardict) insert(k string, v gvariant.Variant) {
	d.order.Insert(k)
	d.vals[k] = v
}

func (d *vardict) end() objects.Metadata {
	var m objects.Metadata
	for _, k := range d.order.Keys() {
		m = append(m, objects.MetaEntry{Key: k, Value: d.vals[k]})
	}
	return m
}

// Options tune Generate.
type Options struct {
	// Now is the last-modified time (default time.Now()).
	Now time.Time
	// Metadata is added to the summary's metadata first, as `ostree
	// summary -u --add-metadata` does (for example ostree.summary.expires).
	Metadata objects.Metadata
}

// Generate builds the summary of r: every ref under refs/heads (refs of
// remotes are left out), refs under refs/mirrors in the collection map, the
// repository mode and the last-modified time.
//
// Not implemented (strata writes none of these): static deltas in the
// summary, and the ostree-metadata commit that `ostree summary -u` writes
// for a repository with a collection ID.
func Generate(r *repo.Repo, o Options) ([]byte, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	refs, err := r.ListRefs()
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	mainColl := r.CollectionID()
	var mainRefs []any
	collections := map[string]map[string]objects.Checksum{}
	addColl := func(coll, name string, c objects.Checksum) {
		if collections[coll] == nil {
			collections[coll] = map[string]objects.Checksum{}
		}
		collections[coll][name] = c
	}
	cfg := r.Config()
	for _, ref := range refs {
		kind, rest, _ := strings.Cut(ref.Path, "/")
		switch kind {
		case "heads":
			if mainColl == "" {
				e, err := refEntry(r, rest, ref.Checksum)
				if err != nil {
					return nil, err
				}
				mainRefs = append(mainRefs, e)
			} else {
				addColl(mainColl, rest, ref.Checksum)
			}
		case "mirrors":
			coll, name, _ := strings.Cut(rest, "/")
			addColl(coll, name, ref.Checksum)
		case "remotes":
			remote, name, _ := strings.Cut(rest, "/")
			if coll, ok := cfg.Get(`remote "`+remote+`"`, "collection-id"); ok && coll != "" {
				addColl(coll, name, ref.Checksum)
			}
		}
	}
	d := newVardict(o.Metadata)
	d.insert(KeyLastModified, gvariant.Variant{Type: tType, Value: bits.ReverseBytes64(uint64(o.Now.Unix()))})
	d.insert(KeyMode, gvariant.Variant{Type: sType, Value: cfg.GetDefault("core", "mode", "bare")})
	tomb, err := cfg.GetBool("core", "tombstone-commits", false)
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	d.insert(KeyTombstones, gvariant.Variant{Type: bType, Value: tomb})
	d.insert(KeyIndexedDeltas, gvariant.Variant{Type: bType, Value: true})

	ids := make([]string, 0, len(collections))
	for id := range collections {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var collMap []any
	for _, id := range ids {
		names := make([]string, 0, len(collections[id]))
		for n := range collections[id] {
			names = append(names, n)
		}
		sort.Strings(names)
		var entries []any
		for _, n := range names {
			e, err := refEntry(r, n, collections[id][n])
			if err != nil {
				return nil, err
			}
			entries = append(entries, e)
		}
		if id == mainColl {
			mainRefs = append(mainRefs, entries...)
		} else {
			collMap = append(collMap, []any{id, entries})
		}
	}
	if mainColl != "" {
		d.insert(KeyCollectionID, gvariant.Variant{Type: sType, Value: mainColl})
	}
	if len(collMap) > 0 {
		d.insert(KeyCollectionMap, gvariant.Variant{Type: collMapType, Value: collMap})
	}
	if mainRefs == nil {
		mainRefs = []any{}
	}
	return gvariant.Marshal(GVType, []any{mainRefs, metadataGV(d.end())})
}

func refEntry(r *repo.Repo, name string, c objects.Checksum) (any, error) {
	data, err := r.ReadMetadata(objects.KindCommit, c)
	if err != nil {
		return nil, fmt.Errorf("summary: ref %s: %w", name, err)
	}
	cm, err := objects.ParseCommit(data)
	if err != nil {
		return nil, fmt.Errorf("summary: ref %s: commit %s: %w", name, c, err)
	}
	d := newVardict(nil)
	// GLib refuses dates past year 9999; ostree then leaves the key out.
	if cm.Timestamp <= 253402300799 {
		d.insert(KeyCommitTime, gvariant.Variant{Type: tType, Value: bits.ReverseBytes64(cm.Timestamp)})
	}
	if v, ok := cm.Metadata.String("version"); ok {
		d.insert(KeyCommitVersion, gvariant.Variant{Type: sType, Value: v})
	}
	return []any{name, []any{uint64(len(data)), c[:], metadataGV(d.end())}}, nil
}

// ParseSig parses a summary.sig file (an a{sv} of signatures by kind).
func ParseSig(data []byte) (objects.Metadata, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: summary.sig of %d bytes", repo.ErrCorrupt, len(data))
	}
	m, err := objects.ParseMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("summary.sig: %w", err)
	}
	return m, nil
}

// Read returns the repository's summary file and its signatures (nil when
// there is no summary.sig).
func Read(r *repo.Repo) (data []byte, sig objects.Metadata, err error) {
	data, err = os.ReadFile(filepath.Join(r.Path(), FileName))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: %s has no summary file", repo.ErrNotFound, r.Path())
		}
		return nil, nil, err
	}
	sd, err := os.ReadFile(filepath.Join(r.Path(), SigFileName))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return data, nil, nil
		}
		return nil, nil, err
	}
	sig, err = ParseSig(sd)
	return data, sig, err
}

// Publish durably replaces the summary file of r and its signature file.
// With sig nil, any old summary.sig is removed (it no longer matches). The
// old signature is removed before the new summary is written, so a client
// never sees an old signature beside a new summary.
func Publish(r *repo.Repo, data []byte, sig objects.Metadata) error {
	sigPath := filepath.Join(r.Path(), SigFileName)
	if err := os.Remove(sigPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", sigPath, err)
	}
	if err := fsutil.WriteFile(filepath.Join(r.Path(), FileName), data, 0o644); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	if sig == nil {
		return fsutil.SyncDir(r.Path())
	}
	sd, err := sig.Marshal()
	if err != nil {
		return err
	}
	if err := fsutil.WriteFile(sigPath, sd, 0o644); err != nil {
		return fmt.Errorf("write summary.sig: %w", err)
	}
	return nil
}
