package repo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/klauspost/compress/flate"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
)

// openObject opens an object's file for reading. Tests replace it to
// inject read failures (EIO, EACCES), which must never pass for corruption.
// Only regular files are opened (a FIFO planted in a repository would
// block the open forever; fsutil.OpenRegular refuses it at once).
var openObject = func(p string) (io.ReadCloser, error) {
	f, err := fsutil.OpenRegular(p)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// srcReader records the first error, other than io.EOF, of the file under
// a parser or a decompressor, so that a read that failed (EIO, EACCES) is
// told apart from bytes that are wrong: only the latter are ErrCorrupt.
type srcReader struct {
	r   io.Reader
	err error
}

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// corruptOr classifies err, met while reading object name through src: the
// file's own read error as it is (it says nothing about the object's
// bytes), otherwise ErrCorrupt (short input, bad deflate data), the cause
// kept in the chain.
func corruptOr(src *srcReader, name string, err error) error {
	switch {
	case src != nil && src.err != nil:
		return fmt.Errorf("object %s: read: %w", name, src.err)
	case errors.Is(err, ErrCorrupt):
		return err
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: object %s: %w", ErrCorrupt, name, err)
}

// ReadMetadata reads a metadata object and verifies its checksum: a caller
// never sees bytes that do not hash to c.
func (r *Repo) ReadMetadata(kind objects.Kind, c objects.Checksum) ([]byte, error) {
	p := r.ObjectPath(kind, c)
	f, err := openObject(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: object %s", ErrNotFound, ObjectName(kind, c))
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, objects.MaxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ObjectName(kind, c), err)
	}
	if len(data) > objects.MaxMetadataSize {
		return nil, fmt.Errorf("%w: object %s larger than %d bytes", ErrCorrupt, ObjectName(kind, c), objects.MaxMetadataSize)
	}
	if kind != objects.KindCommitMeta {
		if got := objects.Sum(data); got != c {
			return nil, fmt.Errorf("%w: object %s has checksum %s", ErrCorrupt, ObjectName(kind, c), got)
		}
	}
	return data, nil
}

// ReadCommit reads and parses a commit object.
func (r *Repo) ReadCommit(c objects.Checksum) (*objects.Commit, error) {
	data, err := r.ReadMetadata(objects.KindCommit, c)
	if err != nil {
		return nil, err
	}
	cm, err := objects.ParseCommit(data)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", c, err)
	}
	return cm, nil
}

// ReadDirTree reads and parses a dirtree object.
func (r *Repo) ReadDirTree(c objects.Checksum) (*objects.DirTree, error) {
	data, err := r.ReadMetadata(objects.KindDirTree, c)
	if err != nil {
		return nil, err
	}
	d, err := objects.ParseDirTree(data)
	if err != nil {
		return nil, fmt.Errorf("dirtree %s: %w", c, err)
	}
	return d, nil
}

// ReadDirMeta reads and parses a dirmeta object.
func (r *Repo) ReadDirMeta(c objects.Checksum) (*objects.DirMeta, error) {
	data, err := r.ReadMetadata(objects.KindDirMeta, c)
	if err != nil {
		return nil, err
	}
	d, err := objects.ParseDirMeta(data)
	if err != nil {
		return nil, fmt.Errorf("dirmeta %s: %w", c, err)
	}
	return d, nil
}

// ReadCommitMeta reads a commit's detached metadata (signatures); a commit
// without any returns nil, nil.
func (r *Repo) ReadCommitMeta(c objects.Checksum) (objects.Metadata, error) {
	data, err := r.ReadMetadata(objects.KindCommitMeta, c)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	md, err := objects.ParseMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("commitmeta %s: %w", c, err)
	}
	return md, nil
}

// ReadFileHeader returns a file object's header (with Size set) without
// reading its content.
func (r *Repo) ReadFileHeader(c objects.Checksum) (*objects.FileHeader, error) {
	h, rc, err := r.OpenFile(c)
	if err != nil {
		return nil, err
	}
	rc.Close()
	return h, nil
}

// OpenFile opens a file object: its header and a reader of its content
// (empty for symlinks). The content is NOT verified against c; use
// OpenFileVerified where the bytes are used or published.
func (r *Repo) OpenFile(c objects.Checksum) (*objects.FileHeader, io.ReadCloser, error) {
	p := r.ObjectPath(objects.KindFile, c)
	name := ObjectName(objects.KindFile, c)
	notFound := func(err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: object %s", ErrNotFound, name)
		}
		return fmt.Errorf("object %s: %w", name, err)
	}
	if r.mode == ModeArchive {
		f, err := openObject(p)
		if err != nil {
			return nil, nil, notFound(err)
		}
		src := &srcReader{r: f}
		br := bufio.NewReader(src)
		h, err := objects.ReadArchiveHeader(br)
		if err != nil {
			f.Close()
			return nil, nil, corruptOr(src, name, err)
		}
		fr := flate.NewReader(br)
		return h, &archiveReader{Reader: io.LimitReader(fr, int64(h.Size)), fr: fr, f: f, src: src, size: h.Size, name: name}, nil
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, nil, notFound(err)
	}
	h := &objects.FileHeader{UID: st.Uid, GID: st.Gid, Mode: st.Mode}
	switch r.mode {
	case ModeBareUser:
		meta, err := fsutil.Lgetxattr(p, "user.ostreemeta")
		if errors.Is(err, syscall.ENODATA) {
			return nil, nil, fmt.Errorf("%w: object %s: no user.ostreemeta: %w", ErrCorrupt, name, err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("object %s: %w", name, err)
		}
		mh, err := objects.ParseBareUserMeta(meta)
		if err != nil {
			return nil, nil, fmt.Errorf("object %s: %w", name, err)
		}
		h = mh
		if h.IsSymlink() {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, nil, notFound(err)
			}
			h.Target = strings.TrimSuffix(string(data), "\x00")
			return h, io.NopCloser(bytes.NewReader(nil)), nil
		}
	case ModeBareUserOnly:
		h.UID, h.GID = 0, 0
	case ModeBare:
		xs, err := ReadXattrs(p)
		if err != nil {
			return nil, nil, err
		}
		h.Xattrs = xs
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		t, err := os.Readlink(p)
		if err != nil {
			return nil, nil, notFound(err)
		}
		h.Target = t
		return h, io.NopCloser(bytes.NewReader(nil)), nil
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, nil, fmt.Errorf("%w: object %s is not a regular file or symlink", ErrCorrupt, name)
	}
	if r.mode == ModeBareUser {
		if !h.IsRegular() {
			return nil, nil, fmt.Errorf("%w: object %s: user.ostreemeta mode %#o", ErrCorrupt, name, h.Mode)
		}
	}
	h.Size = uint64(st.Size)
	f, err := openObject(p)
	if err != nil {
		return nil, nil, notFound(err)
	}
	return h, f, nil
}

type archiveReader struct {
	io.Reader
	fr   io.ReadCloser
	f    io.Closer
	src  *srcReader
	size uint64
	n    uint64
	name string
}

func (a *archiveReader) Read(p []byte) (int, error) {
	n, err := a.Reader.Read(p)
	a.n += uint64(n)
	if err == io.EOF && a.n != a.size {
		return n, fmt.Errorf("%w: object %s: content ends after %d of %d bytes", ErrCorrupt, a.name, a.n, a.size)
	}
	if err != nil && err != io.EOF {
		return n, corruptOr(a.src, a.name, err)
	}
	return n, err
}

func (a *archiveReader) Close() error {
	a.fr.Close()
	return a.f.Close()
}

// VerifyingReader hashes what is read through it and, at EOF, fails with
// ErrCorrupt unless the total hashes to the expected checksum. Bytes are
// handed out as they stream, so a consumer MUST treat data as unverified
// until it has read io.EOF without error.
type VerifyingReader struct {
	r    io.Reader
	h    hash.Hash
	want objects.Checksum
	name string
	done bool
}

// NewVerifyingReader wraps r; h already holds any prefix (a file header).
func NewVerifyingReader(r io.Reader, h hash.Hash, want objects.Checksum, name string) *VerifyingReader {
	return &VerifyingReader{r: r, h: h, want: want, name: name}
}

func (v *VerifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF && !v.done {
		v.done = true
		var got objects.Checksum
		v.h.Sum(got[:0])
		if got != v.want {
			return n, fmt.Errorf("%w: object %s: content has checksum %s", ErrCorrupt, v.name, got)
		}
	}
	return n, err
}

// OpenFileVerified is OpenFile whose content reader fails at EOF unless
// header and content hash to c. A symlink has no content: its header (the
// target) is verified here, before it is returned, so a caller that uses
// h.Target without reading the (empty) reader never sees an unverified
// target.
func (r *Repo) OpenFileVerified(c objects.Checksum) (*objects.FileHeader, io.ReadCloser, error) {
	h, rc, err := r.OpenFile(c)
	if err != nil {
		return nil, nil, err
	}
	vr := NewVerifyingReader(rc, objects.NewFileHasher(h), c, ObjectName(objects.KindFile, c))
	if h.IsSymlink() {
		if _, err := io.Copy(io.Discard, vr); err != nil {
			rc.Close()
			return nil, nil, err
		}
	}
	return h, struct {
		io.Reader
		io.Closer
	}{vr, rc}, nil
}

// ObjectRef names one stored object.
type ObjectRef struct {
	Kind     objects.Kind
	Checksum objects.Checksum
}

// ListObjects calls fn for every object stored in the repository, in
// directory order. Stray files are reported through bad (may be nil).
func (r *Repo) ListObjects(fn func(ObjectRef) error, bad func(path string)) error {
	root := filepath.Join(r.path, "objects")
	dirs, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 {
			if bad != nil {
				bad(filepath.Join(root, d.Name()))
			}
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return err
		}
		for _, e := range ents {
			ref, ok := r.parseObjectName(d.Name(), e)
			if !ok {
				if bad != nil && !strings.HasPrefix(e.Name(), ".") {
					bad(filepath.Join(root, d.Name(), e.Name()))
				}
				continue
			}
			if err := fn(ref); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Repo) parseObjectName(prefix string, e fs.DirEntry) (ObjectRef, bool) {
	base, ext, ok := strings.Cut(e.Name(), ".")
	if !ok {
		return ObjectRef{}, false
	}
	c, err := objects.ParseChecksum(prefix + base)
	if err != nil {
		return ObjectRef{}, false
	}
	var kind objects.Kind
	switch ext {
	case "filez":
		if r.mode != ModeArchive {
			return ObjectRef{}, false
		}
		kind = objects.KindFile
	case "file":
		if r.mode == ModeArchive {
			return ObjectRef{}, false
		}
		kind = objects.KindFile
	default:
		k, err := objects.ParseKind(ext)
		if err != nil {
			return ObjectRef{}, false
		}
		kind = k
	}
	return ObjectRef{Kind: kind, Checksum: c}, true
}

// ReadXattrs returns the extended attributes of the file at path (not
// following a final symlink) as an object's sorted set: what a commit of
// the file records, what a bare repository's object carries, what diff
// compares.
func ReadXattrs(path string) (objects.Xattrs, error) {
	vals, names, err := fsutil.ListXattrs(path)
	if err != nil {
		return nil, err
	}
	var xs objects.Xattrs
	for _, n := range names {
		xs = append(xs, objects.Xattr{Name: n, Value: vals[n]})
	}
	xs.Sort()
	return xs, nil
}
