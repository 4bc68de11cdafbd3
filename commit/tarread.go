package commit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/strata-os/strata/objects"
)

// This file is a tar reader written for untrusted input. archive/tar would
// do for most of it, but it keeps PAX records in a map, and OSTree's
// checksums depend on the order of the xattr records (libarchive hands them
// over in reverse record order). Every size it reads from the archive is
// bounded before anything is allocated.

// Limits on the metadata an archive may declare. They bound memory: file
// content is streamed and is not limited.
const (
	// maxPAXSize caps a PAX extended header (x, g, X), like archive/tar.
	maxPAXSize = 1 << 20
	// maxLongName caps GNU long name and long link bodies (L, K).
	maxLongName = 64 << 10
	// maxXattrName and maxXattrValue are Linux's XATTR_NAME_MAX and
	// XATTR_SIZE_MAX: what cannot be set on a file cannot be committed.
	maxXattrName  = 255
	maxXattrValue = 64 << 10
	// maxPathLen is PATH_MAX, which OSTree enforces on entry names.
	maxPathLen = 4096
)

const blockSize = 512

// tarEntry is one archive member after its PAX and GNU extension headers
// have been applied.
type tarEntry struct {
	name     string // raw bytes, as stored
	linkname string
	typ      byte
	mode     int64
	uid, gid int64
	size     int64 // bytes of data that follow the header
	xattrs   objects.Xattrs
	offset   int64 // of the entry's first header block
	hasPAX   bool
}

// tarError is an archive that cannot be read. Its message names the entry
// (by name when known, else by offset), on one line.
type tarError struct {
	name   string // empty when not known yet
	offset int64  // -1: the archive as a whole
	msg    string
	err    error
	local  bool // the failure is not the archive's (writing the repo, say)
}

func (e *tarError) Error() string {
	where := fmt.Sprintf("tar entry at byte %d", e.offset)
	if e.offset < 0 {
		where = "tar archive"
	} else if e.name != "" {
		where = fmt.Sprintf("tar entry %q (at byte %d)", e.name, e.offset)
	}
	if e.err != nil {
		return where + ": " + e.msg + ": " + e.err.Error()
	}
	return where + ": " + e.msg
}

func (e *tarError) Unwrap() error { return e.err }

// Is makes a tarError that blames the archive match ErrInvalidTar.
func (e *tarError) Is(target error) bool { return target == ErrInvalidTar && !e.local }

// ErrInvalidTar is matched (errors.Is) by every error AddTar returns for an
// archive it refuses: damaged, truncated, hostile or unsupported.
var ErrInvalidTar = errors.New("invalid tar archive")

type tarReader struct {
	r      io.Reader
	off    int64 // bytes consumed from r
	remain int64 // data bytes left in the current entry
	pad    int64 // padding after them
	err    error // sticky
	blk    [blockSize]byte
	cur    *tarEntry
	index  int
}

func newTarReader(r io.Reader) *tarReader { return &tarReader{r: r} }

// ioFail reports a failed read: a short one as truncation, another (a
// decompression error, say) as itself.
func (tr *tarReader) ioFail(name string, off int64, what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return tr.fail(name, off, "truncated archive: it ends inside %s", what)
	}
	tr.err = &tarError{name: name, offset: off, msg: "reading " + what, err: err}
	return tr.err
}

func (tr *tarReader) fail(name string, off int64, format string, a ...any) error {
	tr.err = &tarError{name: name, offset: off, msg: fmt.Sprintf(format, a...)}
	return tr.err
}

// readFull reads exactly len(p) bytes: io.EOF if there were none left,
// io.ErrUnexpectedEOF if only some.
func (tr *tarReader) readFull(p []byte) error {
	n, err := io.ReadFull(tr.r, p)
	tr.off += int64(n)
	return err
}

func (tr *tarReader) skip(n int64) error {
	if n <= 0 {
		return nil
	}
	m, err := io.CopyN(io.Discard, tr.r, n)
	tr.off += m
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func padding(size int64) int64 { return -size & (blockSize - 1) }

// Next returns the next entry, or io.EOF at the end-of-archive marker. An
// archive that ends without that marker is refused as truncated (libarchive
// accepts one that ends cleanly at an entry boundary; we cannot tell that
// from a cut-off stream).
func (tr *tarReader) Next() (*tarEntry, error) {
	if tr.err != nil {
		return nil, tr.err
	}
	// Finish the previous entry.
	if tr.cur != nil {
		if err := tr.skip(tr.remain + tr.pad); err != nil {
			return nil, tr.dataErr(err)
		}
		tr.remain, tr.pad, tr.cur = 0, 0, nil
	}
	var (
		pax      []paxRecord
		hasPAX   bool
		longName []byte
		longLink []byte
		first    = tr.off
		firstSet bool
	)
	for {
		start := tr.off
		if !firstSet {
			first, firstSet = start, true
		}
		err := tr.readFull(tr.blk[:])
		if err == io.EOF {
			if start == first && !hasPAX && longName == nil && longLink == nil {
				return nil, tr.fail("", start, "truncated archive: it ends without the end-of-archive marker")
			}
			return nil, tr.fail("", start, "truncated archive: extension header without its entry")
		}
		if err != nil {
			return nil, tr.ioFail("", start, "a header block", err)
		}
		if isZero(tr.blk[:]) {
			if start != first {
				return nil, tr.fail("", start, "extension header without its entry")
			}
			tr.err = io.EOF
			return nil, io.EOF
		}
		h := tr.blk[:]
		if !checksumOK(h) {
			return nil, tr.fail("", start, "damaged tar archive: header checksum mismatch")
		}
		rawName := cstr(h[0:100])
		typ := h[156]
		magic := string(h[257:263])
		if magic == "ustar\x00" { // POSIX ustar: name may continue in prefix
			if prefix := cstr(h[345:500]); prefix != "" {
				rawName = prefix + "/" + rawName
			}
		}
		size, ok := parseNumeric(h[124:136])
		if !ok || size < 0 {
			return nil, tr.fail(rawName, start, "invalid size field %q", h[124:136])
		}
		switch typ {
		case 'x', 'X', 'g':
			if size > maxPAXSize {
				return nil, tr.fail(rawName, start, "PAX extended header is %d bytes, over the %d-byte limit", size, maxPAXSize)
			}
			buf := make([]byte, size)
			if err := tr.readFull(buf); err != nil {
				return nil, tr.ioFail(rawName, start, "a PAX header", err)
			}
			if err := tr.skip(padding(size)); err != nil {
				return nil, tr.ioFail(rawName, start, "a PAX header", err)
			}
			recs, err := parsePAX(buf)
			if err != nil {
				return nil, tr.fail(rawName, start, "%v", err)
			}
			if typ != 'g' { // libarchive does not apply global headers
				pax = append(pax, recs...)
				hasPAX = true
			}
			continue
		case 'L', 'K':
			if size > maxLongName {
				return nil, tr.fail(rawName, start, "GNU long name of %d bytes, over the %d-byte limit", size, maxLongName)
			}
			buf := make([]byte, size)
			if err := tr.readFull(buf); err != nil {
				return nil, tr.ioFail(rawName, start, "a GNU long name", err)
			}
			if err := tr.skip(padding(size)); err != nil {
				return nil, tr.ioFail(rawName, start, "a GNU long name", err)
			}
			if i := bytes.IndexByte(buf, 0); i >= 0 {
				buf = buf[:i]
			}
			if typ == 'L' {
				longName = buf
			} else {
				longLink = buf
			}
			continue
		case 'V': // volume label: libarchive skips it
			if err := tr.skip(size + padding(size)); err != nil {
				return nil, tr.ioFail(rawName, start, "a volume label", err)
			}
			pax, hasPAX, longName, longLink, firstSet = nil, false, nil, nil, false
			continue
		}
		e := &tarEntry{
			name:     rawName,
			linkname: cstr(h[157:257]),
			typ:      typ,
			size:     size,
			offset:   first,
			hasPAX:   hasPAX,
		}
		if longName != nil {
			e.name = string(longName)
		}
		if longLink != nil {
			e.linkname = string(longLink)
		}
		var okm, oku, okg bool
		e.mode, okm = parseNumeric(h[100:108])
		e.uid, oku = parseNumeric(h[108:116])
		e.gid, okg = parseNumeric(h[116:124])
		if !okm || e.mode < 0 || e.mode > math.MaxUint32 {
			return nil, tr.fail(e.name, first, "invalid mode field %q", h[100:108])
		}
		if !oku || !okg {
			return nil, tr.fail(e.name, first, "invalid uid or gid field")
		}
		if err := applyPAX(e, pax); err != nil {
			return nil, tr.fail(e.name, first, "%v", err)
		}
		if e.uid < 0 || e.gid < 0 {
			return nil, tr.fail(e.name, first, "negative uid or gid")
		}
		// Which entries carry data: libarchive ignores the size of
		// symlinks, devices, fifos and directories, and of hard links
		// outside PAX archives.
		switch e.typ {
		case '2', '3', '4', '5', '6':
			e.size = 0
		case '1':
			if !e.hasPAX {
				e.size = 0
			}
		}
		tr.remain, tr.pad = e.size, padding(e.size)
		tr.cur = e
		tr.index++
		return e, nil
	}
}

func (tr *tarReader) dataErr(err error) error {
	name := ""
	var off int64
	if tr.cur != nil {
		name, off = tr.cur.name, tr.cur.offset
	}
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		tr.err = &tarError{name: name, offset: off, msg: "truncated archive: the entry's data ends early"}
	} else {
		tr.err = &tarError{name: name, offset: off, msg: "reading data", err: err}
	}
	return tr.err
}

// Read reads the current entry's data. It returns io.EOF after exactly
// size bytes, and an error naming the entry if the archive ends first.
func (tr *tarReader) Read(p []byte) (int, error) {
	if tr.err != nil {
		return 0, tr.err
	}
	if tr.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > tr.remain {
		p = p[:tr.remain]
	}
	n, err := tr.r.Read(p)
	tr.off += int64(n)
	tr.remain -= int64(n)
	if err == io.EOF {
		if tr.remain > 0 {
			return n, tr.dataErr(io.ErrUnexpectedEOF)
		}
		err = nil
	} else if err != nil {
		return n, tr.dataErr(err)
	}
	return n, err
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// checksumOK accepts the unsigned and the (historical) signed header sums.
func checksumOK(h []byte) bool {
	want, ok := parseOctal(h[148:156])
	if !ok {
		return false
	}
	var u, s int64
	for i, c := range h {
		if i >= 148 && i < 156 {
			c = ' '
		}
		u += int64(c)
		s += int64(int8(c))
	}
	return want == u || want == s
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// parseNumeric reads an octal field, or a GNU base-256 one (high bit of the
// first byte set). Negative base-256 values are refused.
func parseNumeric(b []byte) (int64, bool) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		if b[0]&0x40 != 0 {
			return 0, false
		}
		var x uint64
		for i, c := range b {
			if i == 0 {
				c &= 0x7f
			}
			if x>>55 != 0 {
				return 0, false
			}
			x = x<<8 | uint64(c)
		}
		return int64(x), true
	}
	return parseOctal(b)
}

// parseOctal reads an octal number with optional leading spaces and a NUL
// or space terminator; an empty field is zero.
func parseOctal(b []byte) (int64, bool) {
	s := strings.TrimLeft(string(b), " ")
	if i := strings.IndexAny(s, " \x00"); i >= 0 {
		if strings.Trim(s[i:], " \x00") != "" {
			return 0, false
		}
		s = s[:i]
	}
	if s == "" {
		return 0, true
	}
	v, err := strconv.ParseInt(s, 8, 64)
	return v, err == nil
}

type paxRecord struct{ key, value string }

// parsePAX splits "LEN KEY=VALUE\n" records, strictly.
func parsePAX(b []byte) ([]paxRecord, error) {
	var recs []paxRecord
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 || sp > 20 {
			return nil, errors.New("malformed PAX record")
		}
		n, err := strconv.Atoi(string(b[:sp]))
		if err != nil || n <= sp+1 || n > len(b) {
			return nil, errors.New("malformed PAX record length")
		}
		rec := b[sp+1 : n]
		if rec[len(rec)-1] != '\n' {
			return nil, errors.New("PAX record does not end in a newline")
		}
		rec = rec[:len(rec)-1]
		eq := bytes.IndexByte(rec, '=')
		if eq <= 0 {
			return nil, errors.New("malformed PAX record: no key")
		}
		recs = append(recs, paxRecord{string(rec[:eq]), string(rec[eq+1:])})
		b = b[n:]
	}
	return recs, nil
}

// applyPAX applies the records libarchive honours for what OSTree records:
// path, linkpath, size, uid, gid and extended attributes (SCHILY.xattr.*,
// LIBARCHIVE.xattr.*, RHT.security.selinux). Sparse files are refused.
func applyPAX(e *tarEntry, recs []paxRecord) error {
	var xs objects.Xattrs
	for _, r := range recs {
		switch {
		case r.key == "path":
			if strings.IndexByte(r.value, 0) >= 0 {
				return errors.New("PAX path contains a NUL byte")
			}
			e.name = r.value
		case r.key == "linkpath":
			if strings.IndexByte(r.value, 0) >= 0 {
				return errors.New("PAX linkpath contains a NUL byte")
			}
			e.linkname = r.value
		case r.key == "size", r.key == "uid", r.key == "gid":
			v, err := strconv.ParseInt(r.value, 10, 64)
			if err != nil || v < 0 {
				return fmt.Errorf("invalid PAX %s %q", r.key, r.value)
			}
			switch r.key {
			case "size":
				e.size = v
			case "uid":
				e.uid = v
			case "gid":
				e.gid = v
			}
		case strings.HasPrefix(r.key, "GNU.sparse."):
			return errors.New("sparse files are not supported")
		case strings.HasPrefix(r.key, "SCHILY.xattr."):
			xs = append(xs, objects.Xattr{Name: r.key[len("SCHILY.xattr."):], Value: []byte(r.value)})
		case strings.HasPrefix(r.key, "LIBARCHIVE.xattr."):
			name, err := urlUnescape(r.key[len("LIBARCHIVE.xattr."):])
			if err != nil {
				return fmt.Errorf("invalid PAX record %q: %v", r.key, err)
			}
			val, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(r.value, "="))
			if err != nil {
				return fmt.Errorf("invalid base64 in PAX record %q", r.key)
			}
			xs = append(xs, objects.Xattr{Name: name, Value: val})
		case r.key == "RHT.security.selinux":
			xs = append(xs, objects.Xattr{Name: "security.selinux", Value: []byte(r.value)})
		}
	}
	for _, x := range xs {
		if x.Name == "" || len(x.Name) > maxXattrName || strings.IndexByte(x.Name, 0) >= 0 {
			return fmt.Errorf("invalid xattr name %q", x.Name)
		}
		if len(x.Value) > maxXattrValue {
			return fmt.Errorf("xattr %s value is %d bytes, over the %d-byte limit", x.Name, len(x.Value), maxXattrValue)
		}
	}
	// libarchive prepends each xattr it reads, so OSTree records them in
	// reverse record order. A name repeated with the same value (bsdtar
	// writes both SCHILY and LIBARCHIVE records) is kept once; OSTree
	// would keep both, which a bare repository cannot store.
	out := make(objects.Xattrs, 0, len(xs))
	for i := len(xs) - 1; i >= 0; i-- {
		dup := false
		for _, y := range out {
			if y.Name == xs[i].Name {
				if !bytes.Equal(y.Value, xs[i].Value) {
					return fmt.Errorf("xattr %s given twice with different values", y.Name)
				}
				dup = true
			}
		}
		if !dup {
			out = append(out, xs[i])
		}
	}
	if len(out) > 0 {
		e.xattrs = out
	}
	return nil
}

func urlUnescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("truncated %-escape")
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", errors.New("bad %-escape")
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// TarReader reads an untrusted tar stream with the hardened reader AddTar
// uses: bounded metadata, PAX xattrs in record order, truncation refused.
// Its errors match ErrInvalidTar and name the entry.
type TarReader struct{ tr *tarReader }

// TarHeader is one entry of a TarReader, PAX and GNU extensions applied.
type TarHeader struct {
	Name, Linkname string
	Typeflag       byte
	Mode           int64
	UID, GID       int64
	Size           int64
	Xattrs         objects.Xattrs
	Offset         int64 // of the entry's first header block
}

// NewTarReader reads an uncompressed tar stream from r.
func NewTarReader(r io.Reader) *TarReader { return &TarReader{tr: newTarReader(r)} }

// Next advances to the next entry (skipping the rest of the current one);
// io.EOF after the end-of-archive marker.
func (t *TarReader) Next() (*TarHeader, error) {
	e, err := t.tr.Next()
	if err != nil {
		return nil, err
	}
	return &TarHeader{Name: e.name, Linkname: e.linkname, Typeflag: e.typ, Mode: e.mode,
		UID: e.uid, GID: e.gid, Size: e.size, Xattrs: e.xattrs, Offset: e.offset}, nil
}

// Read reads the current entry's data, io.EOF after exactly Size bytes.
func (t *TarReader) Read(p []byte) (int, error) { return t.tr.Read(p) }

// EntryError is an error that blames entry h of the archive (it matches
// ErrInvalidTar).
func EntryError(h *TarHeader, format string, a ...any) error {
	return &tarError{name: h.Name, offset: h.Offset, msg: fmt.Sprintf(format, a...)}
}
