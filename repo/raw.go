package repo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/flate"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
)

// ReadStagedMetadata reads a metadata object written in this transaction
// (or already in the repository), verifying its checksum. It lets a caller
// sign a commit before the transaction publishes it.
func (t *Txn) ReadStagedMetadata(kind objects.Kind, c objects.Checksum) ([]byte, error) {
	ref := ObjectRef{kind, c}
	t.mu.Lock()
	staged := t.staged[ref]
	t.mu.Unlock()
	if !staged {
		return t.r.ReadMetadata(kind, c)
	}
	f, err := os.Open(t.stagedPath(ref))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return t.r.ReadMetadata(kind, c)
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, objects.MaxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("read staged %s: %w", ObjectName(kind, c), err)
	}
	if len(data) > objects.MaxMetadataSize || (kind != objects.KindCommitMeta && objects.Sum(data) != c) {
		return nil, fmt.Errorf("%w: staged object %s", ErrCorrupt, ObjectName(kind, c))
	}
	return data, nil
}

// CheckFreeSpace fails when writing extra more bytes would leave less free
// space than core.min-free-space-percent reserves.
func (r *Repo) CheckFreeSpace(extra uint64) error { return r.checkFreeSpace(extra) }

// Commit-partial markers: state/CHECKSUM.commitpartial, as OSTree writes
// them, say that a commit's tree may be incomplete in this repository (a
// pull was interrupted or fetched only part of it).

func (r *Repo) partialPath(c objects.Checksum) string {
	return filepath.Join(r.path, "state", c.String()+".commitpartial")
}

// MarkCommitPartial durably records that commit c may be incomplete. It is
// written before any object of c, so a crash leaves the marker.
func (r *Repo) MarkCommitPartial(c objects.Checksum) error {
	if err := fsutil.MkdirAllSync(filepath.Join(r.path, "state"), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFile(r.partialPath(c), nil, 0o644)
}

// ClearCommitPartial removes c's marker once its tree is complete.
func (r *Repo) ClearCommitPartial(c objects.Checksum) error {
	err := os.Remove(r.partialPath(c))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return fsutil.SyncDir(filepath.Join(r.path, "state"))
}

// IsCommitPartial reports whether c carries a partial marker.
func (r *Repo) IsCommitPartial(c objects.Checksum) (bool, error) {
	_, err := os.Stat(r.partialPath(c))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// PartialCommits lists the commits that carry a partial marker.
func (r *Repo) PartialCommits() ([]objects.Checksum, error) {
	ents, err := os.ReadDir(filepath.Join(r.path, "state"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []objects.Checksum
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".commitpartial")
		if !ok {
			continue
		}
		if c, err := objects.ParseChecksum(base); err == nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// WriteArchiveFileVerified stores a file object given in archive form (the
// bytes of a .filez: header, then raw deflate), as an archive-mode pull
// receives it. The stream is decompressed and hashed as it is read; unless
// header and content hash to want, the deflate stream ends exactly where
// the input does, and the header is in canonical form, nothing is stored
// and the error wraps ErrCorrupt. In an archive repository the verified
// bytes are stored as they came (no recompression); in other modes the
// content is written as WriteFileVerified does.
//
// Input beyond what any valid encoding of the declared size can need (see
// maxDeflateSize) is refused with ErrCorrupt, so an endless stream ends in
// an error. An error of r itself (a network failure) is returned wrapped
// as it is, not as ErrCorrupt, so that a caller can tell a retryable
// transport failure from bad bytes; a reader that keeps returning no data
// and no error fails with io.ErrNoProgress.
func (t *Txn) WriteArchiveFileVerified(r io.Reader, want objects.Checksum) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	name := ObjectName(objects.KindFile, want)
	src := &capReader{r: r, left: 8 + objects.MaxFileHeaderSize, name: name}
	var pre [8]byte
	if _, err := io.ReadFull(src, pre[:]); err != nil {
		return src.wrap("header", err)
	}
	hlen := binary.BigEndian.Uint32(pre[:4])
	if hlen > objects.MaxFileHeaderSize {
		return fmt.Errorf("%w: object %s: header of %d bytes", ErrCorrupt, name, hlen)
	}
	// The header grows with the bytes that arrive, not with the length
	// it declares: 8 bytes claiming a 16 MiB header allocated 16 MiB
	// (found by FuzzWriteArchiveFile).
	hb := bytes.NewBuffer(make([]byte, 0, 8+min(int(hlen), 4096)))
	hb.Write(pre[:])
	if _, err := io.CopyN(hb, src, int64(hlen)); err != nil {
		return src.wrap("header", err)
	}
	hdr := hb.Bytes()
	h, err := objects.ReadArchiveHeader(bytes.NewReader(hdr))
	if err != nil {
		return fmt.Errorf("object %s: %w", name, err)
	}
	src.left = maxDeflateSize(h.Size)
	raw := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(raw)
	raw.Reset()
	var rec io.Writer = raw
	var tmp *os.File
	var tmpBuf *bufio.Writer
	asIs := t.r.mode == ModeArchive && bytes.Equal(hdr, h.MarshalArchive())
	if asIs && h.Size > smallFile {
		tmp, err = os.CreateTemp(t.staging, ".large-")
		if err != nil {
			return fmt.Errorf("stage %s: %w", name, err)
		}
		defer func() {
			if tmp != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		tmpBuf = bufio.NewWriterSize(tmp, 256<<10)
		if _, err := tmpBuf.Write(hdr); err != nil {
			return fmt.Errorf("stage %s: %w", name, err)
		}
		rec = tmpBuf
	} else if asIs {
		raw.Write(hdr)
	} else {
		rec = io.Discard
	}
	// The read buffer and the decompressor come from fsck's pool: a pull
	// stages thousands of objects, and allocating a 64 KiB buffer and a
	// 32 KiB window for each made most of its garbage.
	inf := inflaterPool.Get().(*inflater)
	defer func() {
		inf.br.Reset(nil)
		if inf.fr != nil {
			inf.fr.(flate.Resetter).Reset(noInput, nil)
		}
		inflaterPool.Put(inf)
	}()
	br := inf.br
	br.Reset(io.TeeReader(src, rec))
	// OSTree writes no compressed stream at all for a symlink: its header
	// is the whole object. An object without content may end there.
	noStream := false
	if h.Size == 0 {
		if _, err := br.Peek(1); err == io.EOF {
			noStream = true
		} else if err != nil {
			return src.wrap("content", err)
		}
	}
	var content io.Reader = bytes.NewReader(nil)
	var zr io.ReadCloser
	if !noStream {
		if inf.fr == nil {
			inf.fr = flate.NewReader(br)
		} else if err := inf.fr.(flate.Resetter).Reset(br, nil); err != nil {
			return err
		}
		zr = inf.fr
		content = &inflateReader{r: io.LimitReader(zr, int64(h.Size)), src: src}
	}
	end := func() error {
		if noStream {
			return nil
		}
		return checkDeflateEnd(zr, br, src)
	}
	if !asIs {
		// Re-encode: WriteFileVerified checks the checksum and stores
		// nothing otherwise; the end of the deflate stream is checked
		// after (a valid object followed by junk is still a valid object).
		if err := t.WriteFileVerified(h, content, want); err != nil {
			return err
		}
		return end()
	}
	hs := objects.NewFileHasher(h)
	bp := fsckBufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(hs, content, *bp)
	fsckBufPool.Put(bp)
	if err != nil {
		return err
	}
	if uint64(n) != h.Size {
		return fmt.Errorf("%w: object %s: content ends after %d of %d bytes", ErrCorrupt, name, n, h.Size)
	}
	var got objects.Checksum
	hs.Sum(got[:0])
	if got != want {
		return fmt.Errorf("%w: object %s has checksum %s", ErrCorrupt, name, got)
	}
	if err := end(); err != nil {
		return err
	}
	return t.stage(ObjectRef{objects.KindFile, want}, func(dst string) (err error) {
		defer func() {
			if err == nil {
				t.ObjectsWritten.Add(1)
				t.BytesWritten.Add(int64(h.Size))
			}
		}()
		if tmp == nil {
			return writeNew(dst, raw.Bytes(), false)
		}
		err = tmpBuf.Flush()
		if err == nil {
			err = tmp.Chmod(0o644)
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), dst)
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
		tmp = nil
		return err
	})
}

// noInput is what a pooled inflater reads from while in the pool, so that
// it keeps no reference to a finished stream.
var noInput = bytes.NewReader(nil)

// maxDeflateSize bounds the raw deflate encoding of size bytes of content.
// Deflate's worst case is stored blocks, five bytes per 64 KiB; the bound
// allows a quarter more than the content plus 64 KiB, for a pathological
// encoder, and no more: anything longer is refused as corrupt.
func maxDeflateSize(size uint64) int64 {
	return int64(size) + int64(size/4) + 1<<16
}

// capReader reads at most left bytes of an untrusted stream. Reading past
// the cap fails with ErrCorrupt (a stream that simply ends there is fine).
// It remembers the stream's own error, so that a transport failure is
// reported as such, and turns a run of empty reads into io.ErrNoProgress.
type capReader struct {
	r     io.Reader
	left  int64
	n     int64 // bytes read
	empty int
	err   error // the first error of r other than io.EOF
	name  string
}

func (c *capReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.left <= 0 {
		// At the cap: only the end of the stream is acceptable.
		var one [1]byte
		n, err := c.read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("%w: object %s: input longer than any valid encoding of its content", ErrCorrupt, c.name)
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.read(p)
	c.left -= int64(n)
	return n, err
}

func (c *capReader) read(p []byte) (int, error) {
	for {
		n, err := c.r.Read(p)
		c.n += int64(n)
		if err != nil && err != io.EOF && c.err == nil {
			c.err = err
		}
		if n != 0 || err != nil {
			c.empty = 0
			return n, err
		}
		if c.empty++; c.empty >= 100 {
			c.err = io.ErrNoProgress
			return 0, io.ErrNoProgress
		}
	}
}

// wrap turns an error met while reading the object into the error to
// return: the stream's own failure as it is, ErrCorrupt for anything else
// (short input, bad deflate data, input over the cap).
func (c *capReader) wrap(what string, err error) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	if c.err != nil {
		return fmt.Errorf("object %s: reading %s: %w", c.name, what, c.err)
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: object %s: %s: %w", ErrCorrupt, c.name, what, err)
}

// inflateReader reads decompressed content, classifying errors with
// capReader.wrap.
type inflateReader struct {
	r   io.Reader
	src *capReader
}

func (i *inflateReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if err != nil && err != io.EOF {
		err = i.src.wrap("content", err)
	}
	return n, err
}

// checkDeflateEnd makes sure the deflate stream ended right at the end of
// the declared content and that no input follows it.
func checkDeflateEnd(zr io.Reader, br *bufio.Reader, src *capReader) error {
	var one [1]byte
	if n, err := zr.Read(one[:]); n != 0 || err != io.EOF {
		if err != nil && err != io.EOF {
			return src.wrap("content", err)
		}
		return fmt.Errorf("%w: object %s: content longer than its header says", ErrCorrupt, src.name)
	}
	if br.Buffered() != 0 {
		return fmt.Errorf("%w: object %s: data after the end of the compressed content", ErrCorrupt, src.name)
	}
	if n, err := src.Read(one[:]); n != 0 || err != io.EOF {
		if err != nil && err != io.EOF {
			return src.wrap("content", err)
		}
		return fmt.Errorf("%w: object %s: data after the end of the compressed content", ErrCorrupt, src.name)
	}
	return nil
}
