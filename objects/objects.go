// Package objects defines OSTree's object kinds and their serialised forms:
// commits, commit metadata, dirtrees, dirmetas and file headers, with the
// checksums OSTree computes for them. It does no I/O beyond reading a file
// object's header from a stream.
//
// All integers that OSTree stores big-endian inside its GVariants (uid, gid,
// mode, rdev, timestamp, sizes) are converted here; callers see host values.
package objects

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strings"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/gvariant"
)

// ErrCorrupt is wrapped by errors about malformed objects.
var ErrCorrupt = errdefs.ErrCorrupt

// MaxMetadataSize bounds any metadata object (commit, dirtree, dirmeta,
// commitmeta), as OSTree's OSTREE_MAX_METADATA_SIZE does.
const MaxMetadataSize = 128 << 20

// MaxFileHeaderSize bounds a serialised file header (mostly xattrs).
const MaxFileHeaderSize = 16 << 20

// Kind is an object kind.
type Kind int

// Object kinds, numbered as OSTree numbers them.
const (
	KindFile       Kind = 1
	KindDirTree    Kind = 2
	KindDirMeta    Kind = 3
	KindCommit     Kind = 4
	KindTombstone  Kind = 5
	KindCommitMeta Kind = 6
)

// String returns the kind's name as used in file extensions ("dirtree").
func (t Kind) String() string {
	switch t {
	case KindFile:
		return "file"
	case KindDirTree:
		return "dirtree"
	case KindDirMeta:
		return "dirmeta"
	case KindCommit:
		return "commit"
	case KindTombstone:
		return "tombstone-commit"
	case KindCommitMeta:
		return "commitmeta"
	}
	return fmt.Sprintf("type%d", int(t))
}

// IsMeta reports whether the kind is a metadata object (stored as its
// GVariant serialisation in every repo mode).
func (t Kind) IsMeta() bool { return t != KindFile }

// ParseKind parses an object kind name such as "commit".
func ParseKind(s string) (Kind, error) {
	for t := KindFile; t <= KindCommitMeta; t++ {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown object type %q", s)
}

// Checksum is a SHA-256 object checksum.
type Checksum [32]byte

// String is the lowercase hex form.
func (c Checksum) String() string { return hex.EncodeToString(c[:]) }

// IsZero reports whether c is all zero bytes (no checksum).
func (c Checksum) IsZero() bool { return c == Checksum{} }

// ParseChecksum parses 64 lowercase or uppercase hex digits.
func ParseChecksum(s string) (Checksum, error) {
	var c Checksum
	if len(s) != 64 {
		return c, fmt.Errorf("invalid checksum %q", s)
	}
	if _, err := hex.Decode(c[:], []byte(s)); err != nil {
		return c, fmt.Errorf("invalid checksum %q", s)
	}
	return c, nil
}

// ChecksumFromBytes converts a 32-byte slice, as stored in GVariants.
func ChecksumFromBytes(b []byte) (Checksum, error) {
	var c Checksum
	if len(b) != 32 {
		return c, fmt.Errorf("%w: checksum of %d bytes", ErrCorrupt, len(b))
	}
	copy(c[:], b)
	return c, nil
}

// Sum returns the SHA-256 of b, the checksum of a metadata object.
func Sum(b []byte) Checksum { return sha256.Sum256(b) }

// Xattr is one extended attribute. Name has no trailing NUL.
type Xattr struct {
	Name  string
	Value []byte
}

// Xattrs is a set of extended attributes sorted by name (bytewise), the
// order OSTree checksums them in.
type Xattrs []Xattr

// Sort orders xs by name as OSTree does.
func (xs Xattrs) Sort() {
	sort.Slice(xs, func(i, j int) bool { return xs[i].Name < xs[j].Name })
}

// Get returns the value of the named attribute.
func (xs Xattrs) Get(name string) ([]byte, bool) {
	for _, x := range xs {
		if x.Name == name {
			return x.Value, true
		}
	}
	return nil, false
}

func (xs Xattrs) gv() []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		name := make([]byte, len(x.Name)+1)
		copy(name, x.Name)
		out[i] = []any{name, x.Value}
	}
	return out
}

func xattrsFromGV(v any) (Xattrs, error) {
	items := v.([]any)
	if len(items) == 0 {
		return nil, nil
	}
	xs := make(Xattrs, len(items))
	for i, it := range items {
		kv := it.([]any)
		name := kv[0].([]byte)
		if len(name) < 2 || name[len(name)-1] != 0 || strings.IndexByte(string(name[:len(name)-1]), 0) >= 0 {
			return nil, fmt.Errorf("%w: bad xattr name %q", ErrCorrupt, name)
		}
		val := kv[1].([]byte)
		xs[i] = Xattr{Name: string(name[:len(name)-1]), Value: append([]byte(nil), val...)}
	}
	return xs, nil
}

func be32(x uint32) uint32 { return bits.ReverseBytes32(x) }
func be64(x uint64) uint64 { return bits.ReverseBytes64(x) }

// Types of the serialised objects.
var (
	DirMetaGVType    = gvariant.MustParseType("(uuua(ayay))")
	DirTreeGVType    = gvariant.MustParseType("(a(say)a(sayay))")
	CommitGVType     = gvariant.MustParseType("(a{sv}aya(say)sstayay)")
	CommitMetaGVType = gvariant.MustParseType("a{sv}")
	fileHeaderType   = gvariant.MustParseType("(uuuusa(ayay))")
	zFileHeaderType  = gvariant.MustParseType("(tuuuusa(ayay))")
)

// GVType returns the GVariant type of a metadata object kind.
func GVType(t Kind) *gvariant.Type {
	switch t {
	case KindDirTree:
		return DirTreeGVType
	case KindDirMeta:
		return DirMetaGVType
	case KindCommit:
		return CommitGVType
	case KindCommitMeta:
		return CommitMetaGVType
	}
	return nil
}

// DirMeta is a directory's ownership, mode and xattrs.
type DirMeta struct {
	UID, GID, Mode uint32
	Xattrs         Xattrs
}

// Marshal serialises the dirmeta object.
func (d *DirMeta) Marshal() []byte {
	return gvariant.MustMarshal(DirMetaGVType, []any{be32(d.UID), be32(d.GID), be32(d.Mode), d.Xattrs.gv()})
}

// ParseDirMeta parses a dirmeta object. Its mode MUST be a directory's:
// anything else is ErrCorrupt, as ostree's pull and fsck refuse it.
func ParseDirMeta(b []byte) (*DirMeta, error) {
	d, err := parseDirMetaVariant(b)
	if err != nil {
		return nil, err
	}
	if d.Mode&ModeTypeMask != ModeDir {
		return nil, fmt.Errorf("%w: dirmeta: mode %#o is not a directory's", ErrCorrupt, d.Mode)
	}
	return d, nil
}

// parseDirMetaVariant parses the (uuua(ayay)) variant of a dirmeta object
// and of bare-user's user.ostreemeta xattr, whatever the mode.
func parseDirMetaVariant(b []byte) (*DirMeta, error) {
	v, err := gvariant.Unmarshal(DirMetaGVType, b)
	if err != nil {
		return nil, fmt.Errorf("%w: dirmeta: %v", ErrCorrupt, err)
	}
	t := v.([]any)
	xs, err := xattrsFromGV(t[3])
	if err != nil {
		return nil, err
	}
	return &DirMeta{UID: be32(t[0].(uint32)), GID: be32(t[1].(uint32)), Mode: be32(t[2].(uint32)), Xattrs: xs}, nil
}

// TreeFile is a file entry of a dirtree.
type TreeFile struct {
	Name     string
	Checksum Checksum
}

// TreeDir is a subdirectory entry of a dirtree.
type TreeDir struct {
	Name string
	Tree Checksum
	Meta Checksum
}

// DirTree lists a directory's files and subdirectories, each sorted by name.
type DirTree struct {
	Files []TreeFile
	Dirs  []TreeDir
}

// Sort orders entries by name, as OSTree requires.
func (d *DirTree) Sort() {
	sort.Slice(d.Files, func(i, j int) bool { return d.Files[i].Name < d.Files[j].Name })
	sort.Slice(d.Dirs, func(i, j int) bool { return d.Dirs[i].Name < d.Dirs[j].Name })
}

// Marshal serialises the dirtree object. Entries must be sorted.
func (d *DirTree) Marshal() []byte {
	files := make([]any, len(d.Files))
	for i, f := range d.Files {
		files[i] = []any{f.Name, f.Checksum[:]}
	}
	dirs := make([]any, len(d.Dirs))
	for i, e := range d.Dirs {
		dirs[i] = []any{e.Name, e.Tree[:], e.Meta[:]}
	}
	return gvariant.MustMarshal(DirTreeGVType, []any{files, dirs})
}

// ValidateFilename checks a dirtree entry name: not empty, not "." or "..",
// no "/" and no NUL.
func ValidateFilename(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: invalid file name %q", ErrCorrupt, name)
	}
	return nil
}

// ParseDirTree parses and validates a dirtree: names valid, strictly sorted,
// no name both a file and a directory.
func ParseDirTree(b []byte) (*DirTree, error) {
	v, err := gvariant.Unmarshal(DirTreeGVType, b)
	if err != nil {
		return nil, fmt.Errorf("%w: dirtree: %v", ErrCorrupt, err)
	}
	t := v.([]any)
	d := &DirTree{}
	files, dirs := t[0].([]any), t[1].([]any)
	names := make(map[string]bool, len(files)+len(dirs))
	for i, it := range files {
		e := it.([]any)
		name := e[0].(string)
		if err := ValidateFilename(name); err != nil {
			return nil, err
		}
		if i > 0 && name <= d.Files[i-1].Name {
			return nil, fmt.Errorf("%w: dirtree files not sorted at %q", ErrCorrupt, name)
		}
		c, err := ChecksumFromBytes(e[1].([]byte))
		if err != nil {
			return nil, err
		}
		names[name] = true
		d.Files = append(d.Files, TreeFile{Name: name, Checksum: c})
	}
	for i, it := range dirs {
		e := it.([]any)
		name := e[0].(string)
		if err := ValidateFilename(name); err != nil {
			return nil, err
		}
		if i > 0 && name <= d.Dirs[i-1].Name {
			return nil, fmt.Errorf("%w: dirtree dirs not sorted at %q", ErrCorrupt, name)
		}
		if names[name] {
			return nil, fmt.Errorf("%w: %q is both a file and a directory", ErrCorrupt, name)
		}
		tc, err := ChecksumFromBytes(e[1].([]byte))
		if err != nil {
			return nil, err
		}
		mc, err := ChecksumFromBytes(e[2].([]byte))
		if err != nil {
			return nil, err
		}
		d.Dirs = append(d.Dirs, TreeDir{Name: name, Tree: tc, Meta: mc})
	}
	return d, nil
}

// MetaEntry is one key of a commit's (or commitmeta's) a{sv} metadata.
type MetaEntry struct {
	Key   string
	Value gvariant.Variant
}

// Metadata is an a{sv} dictionary in serialisation order.
type Metadata []MetaEntry

// Get returns the value for key.
func (m Metadata) Get(key string) (gvariant.Variant, bool) {
	for _, e := range m {
		if e.Key == key {
			return e.Value, true
		}
	}
	return gvariant.Variant{}, false
}

// String returns the value of a string-typed key.
func (m Metadata) String(key string) (string, bool) {
	v, ok := m.Get(key)
	if !ok || v.Type.String() != "s" {
		return "", false
	}
	return v.Value.(string), true
}

// Set replaces key's value or appends it.
func (m *Metadata) Set(key string, v gvariant.Variant) {
	for i, e := range *m {
		if e.Key == key {
			(*m)[i].Value = v
			return
		}
	}
	*m = append(*m, MetaEntry{Key: key, Value: v})
}

// Delete removes key.
func (m *Metadata) Delete(key string) {
	out := (*m)[:0]
	for _, e := range *m {
		if e.Key != key {
			out = append(out, e)
		}
	}
	*m = out
}

func (m Metadata) gv() []any {
	out := make([]any, len(m))
	for i, e := range m {
		out[i] = []any{e.Key, e.Value}
	}
	return out
}

// Marshal serialises m as a commitmeta object (a{sv}).
func (m Metadata) Marshal() ([]byte, error) {
	return gvariant.Marshal(CommitMetaGVType, m.gv())
}

func metadataFromGV(v any) Metadata {
	items := v.([]any)
	m := make(Metadata, len(items))
	for i, it := range items {
		kv := it.([]any)
		m[i] = MetaEntry{Key: kv[0].(string), Value: kv[1].(gvariant.Variant)}
	}
	return m
}

// ParseMetadata parses an a{sv} (a commitmeta object or summary metadata).
func ParseMetadata(b []byte) (Metadata, error) {
	v, err := gvariant.Unmarshal(CommitMetaGVType, b)
	if err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrCorrupt, err)
	}
	return metadataFromGV(v), nil
}

// Related is an entry of a commit's related-objects list.
type Related struct {
	Name     string
	Checksum Checksum
}

// Commit is a commit object.
type Commit struct {
	Metadata  Metadata
	Parent    Checksum // zero when there is none
	Related   []Related
	Subject   string
	Body      string
	Timestamp uint64 // seconds since the epoch, UTC
	RootTree  Checksum
	RootMeta  Checksum
}

// Marshal serialises the commit object.
func (c *Commit) Marshal() ([]byte, error) {
	var parent []byte
	if !c.Parent.IsZero() {
		parent = c.Parent[:]
	}
	rel := make([]any, len(c.Related))
	for i, r := range c.Related {
		rel[i] = []any{r.Name, r.Checksum[:]}
	}
	return gvariant.Marshal(CommitGVType, []any{
		c.Metadata.gv(), parent, rel, c.Subject, c.Body, be64(c.Timestamp), c.RootTree[:], c.RootMeta[:],
	})
}

// ParseCommit parses a commit object.
func ParseCommit(b []byte) (*Commit, error) {
	v, err := gvariant.Unmarshal(CommitGVType, b)
	if err != nil {
		return nil, fmt.Errorf("%w: commit: %v", ErrCorrupt, err)
	}
	t := v.([]any)
	c := &Commit{
		Metadata:  metadataFromGV(t[0]),
		Subject:   t[3].(string),
		Body:      t[4].(string),
		Timestamp: be64(t[5].(uint64)),
	}
	if p := t[1].([]byte); len(p) != 0 {
		if c.Parent, err = ChecksumFromBytes(p); err != nil {
			return nil, err
		}
	}
	for _, it := range t[2].([]any) {
		e := it.([]any)
		cs, err := ChecksumFromBytes(e[1].([]byte))
		if err != nil {
			return nil, err
		}
		c.Related = append(c.Related, Related{Name: e[0].(string), Checksum: cs})
	}
	if c.RootTree, err = ChecksumFromBytes(t[6].([]byte)); err != nil {
		return nil, err
	}
	if c.RootMeta, err = ChecksumFromBytes(t[7].([]byte)); err != nil {
		return nil, err
	}
	return c, nil
}

// Byteswap returns v with every multi-byte number byte-swapped, as
// g_variant_byteswap does. `ostree show` prints commit metadata this way on
// little-endian hosts (the stored bytes are native order).
func Byteswap(v gvariant.Variant) gvariant.Variant {
	return gvariant.Variant{Type: v.Type, Value: byteswapValue(v.Type, v.Value)}
}

func byteswapValue(t *gvariant.Type, v any) any {
	switch x := v.(type) {
	case int16:
		return int16(bits.ReverseBytes16(uint16(x)))
	case uint16:
		return bits.ReverseBytes16(x)
	case int32:
		return int32(bits.ReverseBytes32(uint32(x)))
	case uint32:
		return bits.ReverseBytes32(x)
	case int64:
		return int64(bits.ReverseBytes64(uint64(x)))
	case uint64:
		return bits.ReverseBytes64(x)
	case float64:
		return math.Float64frombits(bits.ReverseBytes64(math.Float64bits(x)))
	case gvariant.Variant:
		return Byteswap(x)
	case gvariant.Maybe:
		if x.Valid {
			x.Value = byteswapValue(t.Elem(), x.Value)
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, it := range x {
			if t.Code() == 'a' {
				out[i] = byteswapValue(t.Elem(), it)
			} else {
				out[i] = byteswapValue(t.Members()[i], it)
			}
		}
		return out
	}
	return v
}

// XattrsGVType is the GVariant type of a serialised xattr list.
var XattrsGVType = gvariant.MustParseType("a(ayay)")

// MarshalXattrs serialises xs as an a(ayay) GVariant (names with their
// trailing NUL), the form ostree-ext's tar streams carry in .file-xattrs
// objects.
func MarshalXattrs(xs Xattrs) []byte {
	return gvariant.MustMarshal(XattrsGVType, xs.gv())
}

// ParseXattrs parses an a(ayay) GVariant (untrusted bytes).
func ParseXattrs(b []byte) (Xattrs, error) {
	v, err := gvariant.Unmarshal(XattrsGVType, b)
	if err != nil {
		return nil, fmt.Errorf("%w: xattrs: %w", ErrCorrupt, err)
	}
	return xattrsFromGV(v)
}
