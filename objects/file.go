package objects

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/strata-os/strata/gvariant"
)

// File type bits of a mode, as in <sys/stat.h>.
const (
	ModeTypeMask = 0o170000
	ModeRegular  = 0o100000
	ModeDir      = 0o040000
	ModeSymlink  = 0o120000
)

// FileHeader is the metadata of a file object: everything but the content.
type FileHeader struct {
	UID, GID, Mode, Rdev uint32
	Target               string // symlink target; empty for regular files
	Xattrs               Xattrs
	Size                 uint64 // content length; serialised only in archive headers
}

// IsSymlink reports whether the header describes a symbolic link.
func (h *FileHeader) IsSymlink() bool { return h.Mode&ModeTypeMask == ModeSymlink }

// IsRegular reports whether the header describes a regular file.
func (h *FileHeader) IsRegular() bool { return h.Mode&ModeTypeMask == ModeRegular }

// Validate checks what OSTree checks of a file object's header: a regular
// file or a symlink with a non-empty target, rdev zero, valid xattr names.
func (h *FileHeader) Validate() error {
	switch {
	case h.IsRegular():
		if h.Target != "" {
			return fmt.Errorf("%w: regular file with a symlink target", ErrCorrupt)
		}
	case h.IsSymlink():
		if h.Target == "" {
			return fmt.Errorf("%w: symlink with an empty target", ErrCorrupt)
		}
		if h.Size != 0 {
			return fmt.Errorf("%w: symlink with content", ErrCorrupt)
		}
	default:
		return fmt.Errorf("%w: unsupported file mode %#o", ErrCorrupt, h.Mode)
	}
	if h.Rdev != 0 {
		return fmt.Errorf("%w: file header with rdev %d", ErrCorrupt, h.Rdev)
	}
	if strings.IndexByte(h.Target, 0) >= 0 {
		return fmt.Errorf("%w: symlink target contains NUL", ErrCorrupt)
	}
	return nil
}

func lenPrefixed(v []byte) []byte {
	out := make([]byte, 8, 8+len(v))
	binary.BigEndian.PutUint32(out, uint32(len(v)))
	return append(out, v...)
}

// Marshal returns the header as OSTree hashes it: a big-endian 32-bit length,
// four zero bytes, then the (uuuusa(ayay)) variant.
func (h *FileHeader) Marshal() []byte {
	return lenPrefixed(gvariant.MustMarshal(fileHeaderType, []any{
		be32(h.UID), be32(h.GID), be32(h.Mode), be32(h.Rdev), h.Target, h.Xattrs.gv(),
	}))
}

// MarshalArchive returns the header of an archive-mode ".filez" object: the
// same framing around a (tuuuusa(ayay)) variant that leads with the size.
func (h *FileHeader) MarshalArchive() []byte {
	return lenPrefixed(gvariant.MustMarshal(zFileHeaderType, []any{
		be64(h.Size), be32(h.UID), be32(h.GID), be32(h.Mode), be32(h.Rdev), h.Target, h.Xattrs.gv(),
	}))
}

// NewFileHasher returns a SHA-256 state with h's header already written:
// write the content to it to get the file object's checksum.
func NewFileHasher(h *FileHeader) hash.Hash {
	s := sha256.New()
	s.Write(h.Marshal())
	return s
}

// FileChecksum computes a file object's checksum from its header and content.
func FileChecksum(h *FileHeader, content io.Reader) (Checksum, error) {
	s := NewFileHasher(h)
	var c Checksum
	if content != nil {
		if _, err := io.Copy(s, content); err != nil {
			return c, err
		}
	}
	s.Sum(c[:0])
	return c, nil
}

// ReadArchiveHeader reads the length-prefixed header at the start of a
// ".filez" object, leaving r at the start of the compressed content.
func ReadArchiveHeader(r io.Reader) (*FileHeader, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("%w: archive file header: %w", ErrCorrupt, err)
	}
	n := binary.BigEndian.Uint32(pre[:4])
	if n > MaxFileHeaderSize {
		return nil, fmt.Errorf("%w: archive file header of %d bytes", ErrCorrupt, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("%w: archive file header: %w", ErrCorrupt, err)
	}
	v, err := gvariant.Unmarshal(zFileHeaderType, buf)
	if err != nil {
		return nil, fmt.Errorf("%w: archive file header: %w", ErrCorrupt, err)
	}
	t := v.([]any)
	xs, err := xattrsFromGV(t[6])
	if err != nil {
		return nil, err
	}
	h := &FileHeader{
		Size: be64(t[0].(uint64)), UID: be32(t[1].(uint32)), GID: be32(t[2].(uint32)),
		Mode: be32(t[3].(uint32)), Rdev: be32(t[4].(uint32)), Target: t[5].(string), Xattrs: xs,
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return h, nil
}

// BareUserMeta serialises the user.ostreemeta xattr of a bare-user object.
func BareUserMeta(h *FileHeader) []byte {
	d := DirMeta{UID: h.UID, GID: h.GID, Mode: h.Mode, Xattrs: h.Xattrs}
	return d.Marshal()
}

// ParseBareUserMeta parses a user.ostreemeta xattr.
func ParseBareUserMeta(b []byte) (*FileHeader, error) {
	d, err := parseDirMetaVariant(b)
	if err != nil {
		return nil, fmt.Errorf("%w: user.ostreemeta: %v", ErrCorrupt, err)
	}
	return &FileHeader{UID: d.UID, GID: d.GID, Mode: d.Mode, Xattrs: d.Xattrs}, nil
}
