package container

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/ocilayer"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
)

// Chunked layers (docs/oci.md, "Chunked layers"). An encapsulated image
// exported with zstd compression keeps every content object of a chunk
// layer in zstd frames of its own, and the commit layer carries, in a
// zstd skippable frame after its tar (invisible to every decompressor, so
// the layer's diff_id is that of the tar alone), a table of contents: for
// each chunk layer, the length of its head frame (repository skeleton and
// xattrs objects) and, in order, each content object's checksum and the
// length of its frame. The frames follow each other, so offsets are sums.
// A client that has the commit layer (always fetched whole: it changes
// with every commit) fetches from each changed chunk layer only the head
// and the frames of the objects it lacks, with Range requests, and checks
// each object against its checksum as it imports it.

// AnnotationTOC, on the commit layer's descriptor, is "OFFSET:LENGTH" of
// the table of contents (the skippable frame's payload) in the blob.
const AnnotationTOC = "io.github.strata-os.chunked.toc"

// Limits on a table of contents.
const (
	maxTOCCompressed = 16 << 20
	maxTOCSize       = 64 << 20
	tocVersion       = 1
	// skippableMagic is the first zstd skippable frame magic number.
	skippableMagic = 0x184D2A50
	// maxRangesPerRequest bounds one request's Range header (about 25
	// bytes a range): proxies refuse header lines over 8 KiB.
	maxRangesPerRequest = 200
	// mergeGap: two wanted ranges closer than this are fetched as one
	// (a multipart part costs about 100 bytes of headers).
	mergeGap = 256
)

// tocLayer is one chunk layer in a table of contents.
type tocLayer struct {
	Digest string `json:"digest"`
	// Chunk is the layer's chunk index in the export's plan
	// (ocilayer.Chunk.Index), for an export that reuses this layout.
	Chunk *int `json:"chunk,omitempty"`
	// Head is the length of the first frame.
	Head int64 `json:"head"`
	// Objects are the content objects' checksums and Lengths their
	// frames' lengths, in stream order after the head.
	Objects []string `json:"objects"`
	Lengths []int64  `json:"lengths"`
}

type toc struct {
	Version int        `json:"version"`
	Layers  []tocLayer `json:"layers"`
}

// frameWriter compresses a layer as a sequence of zstd frames, cutting a
// frame at each cut call and counting the compressed bytes.
type frameWriter struct {
	out   *countWriter
	enc   *zstd.Encoder
	start int64
}

func newFrameWriter(out *countWriter) (*frameWriter, error) {
	enc, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
		zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
	if err != nil {
		return nil, err
	}
	return &frameWriter{out: out, enc: enc}, nil
}

func (f *frameWriter) Write(p []byte) (int, error) { return f.enc.Write(p) }

// cut ends the current frame and returns its length.
func (f *frameWriter) cut() (int64, error) {
	if err := f.enc.Close(); err != nil {
		return 0, err
	}
	n := f.out.n - f.start
	f.start = f.out.n
	f.enc.Reset(f.out)
	return n, nil
}

// finish ends the last frame.
func (f *frameWriter) finish() error {
	_, err := f.cut()
	f.enc.Reset(nil)
	return err
}

// writeTOC appends t as a skippable frame and returns the annotation
// naming where its payload lies.
func writeTOC(out *countWriter, t *toc) (string, error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return "", err
	}
	payload := enc.EncodeAll(raw, nil)
	enc.Close()
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[:4], skippableMagic)
	binary.LittleEndian.PutUint32(hdr[4:], uint32(len(payload)))
	if _, err := out.Write(hdr[:]); err != nil {
		return "", err
	}
	off := out.n
	if _, err := out.Write(payload); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d", off, len(payload)), nil
}

// readTOC reads and checks the table of contents of the commit layer d
// from f (its verified blob) against the image's ostree layers.
func readTOC(f io.ReaderAt, d Descriptor, layers []Descriptor) (*toc, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: table of contents: %s", errdefs.ErrInvalid, fmt.Sprintf(format, a...))
	}
	offS, lenS, ok := strings.Cut(d.Annotations[AnnotationTOC], ":")
	off, err1 := strconv.ParseInt(offS, 10, 64)
	n, err2 := strconv.ParseInt(lenS, 10, 64)
	if !ok || err1 != nil || err2 != nil || off < 8 || n <= 0 || n > maxTOCCompressed || off+n > d.Size {
		return nil, bad("annotation %s=%q does not name a part of the %d-byte layer", AnnotationTOC, d.Annotations[AnnotationTOC], d.Size)
	}
	buf := make([]byte, n+8)
	if _, err := f.ReadAt(buf, off-8); err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint32(buf[:4]) != skippableMagic || int64(binary.LittleEndian.Uint32(buf[4:8])) != n {
		return nil, bad("no skippable frame of %d bytes at offset %d", n, off-8)
	}
	dec, err := zstd.NewReader(bytes.NewReader(buf[8:]), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxTOCSize))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	raw, err := io.ReadAll(io.LimitReader(dec, maxTOCSize+1))
	if err != nil {
		return nil, bad("%v", err)
	}
	if len(raw) > maxTOCSize {
		return nil, bad("over %d bytes", maxTOCSize)
	}
	var t toc
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, bad("%v", err)
	}
	if t.Version != tocVersion {
		return nil, bad("version %d (this strata reads %d)", t.Version, tocVersion)
	}
	sizes := map[string]int64{}
	for _, l := range layers {
		sizes[l.Digest] = l.Size
	}
	seen := map[string]bool{}
	for _, l := range t.Layers {
		size, ok := sizes[l.Digest]
		if !ok || seen[l.Digest] {
			return nil, bad("layer %s is not one of the image's chunk layers, or listed twice", l.Digest)
		}
		seen[l.Digest] = true
		if len(l.Objects) != len(l.Lengths) || l.Head <= 0 {
			return nil, bad("layer %s: %d objects, %d lengths, head %d", l.Digest, len(l.Objects), len(l.Lengths), l.Head)
		}
		end := l.Head
		for i, o := range l.Objects {
			if _, err := objects.ParseChecksum(o); err != nil {
				return nil, bad("layer %s: object %q", l.Digest, o)
			}
			if l.Lengths[i] <= 0 || l.Lengths[i] > size {
				return nil, bad("layer %s: object %s: frame of %d bytes", l.Digest, o, l.Lengths[i])
			}
			end += l.Lengths[i]
		}
		if end > size {
			return nil, bad("layer %s: frames end at %d, past the layer's %d bytes", l.Digest, end, size)
		}
	}
	return &t, nil
}

// byteRange is a part of a blob.
type byteRange struct{ off, n int64 }

// errRangesIgnored: the source answered a Range request with the whole
// blob; the layer is fetched whole instead.
var errRangesIgnored = errors.New("the registry ignored a Range request")

// errFetchWhole: the repository lacks most of a layer; it is fetched
// whole.
var errFetchWhole = errors.New("most of the layer is missing")

var errImportEnded = errors.New("the import stopped reading")

// rangeSource is a source that reads parts of a blob.
type rangeSource interface {
	// readRanges calls fn with each of rs, in order, and a reader of
	// exactly its bytes (unverified).
	// A broken transfer is resumed at the byte, retries times at most.
	readRanges(ctx context.Context, d Descriptor, rs []byteRange, retries int, fn func(i int, r io.Reader) error) error
}

func (s *layoutSource) readRanges(ctx context.Context, d Descriptor, rs []byteRange, _ int, fn func(int, io.Reader) error) error {
	rc, err := s.fetch(ctx, d, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	f := rc.(*os.File)
	for i, r := range rs {
		if err := fn(i, io.NewSectionReader(f, r.off, r.n)); err != nil {
			return err
		}
	}
	return nil
}

func (s *registrySource) readRanges(ctx context.Context, d Descriptor, rs []byteRange, retries int, fn func(int, io.Reader) error) error {
	for start := 0; start < len(rs); {
		batch := rs[start:min(len(rs), start+maxRangesPerRequest)]
		done, err := s.rangeRequest(ctx, d, batch, &retries, func(i int, r io.Reader) error { return fn(start+i, r) })
		start += done
		if err != nil && !errors.Is(err, errResumeRest) {
			return err
		}
	}
	return nil
}

// errResumeRest: a range was resumed on a request of its own, so the
// rest of its batch is asked for again.
var errResumeRest = errors.New("the rest of the ranges are asked for again")

// resumingRange reads one range of a Range answer and, when the transfer
// breaks, goes on from the byte it reached with a request for the rest
// of that range alone (retries, shared by the whole fetch, bound how
// often).
type resumingRange struct {
	ctx     context.Context
	s       *registrySource
	d       Descriptor
	r       byteRange
	cur     io.Reader
	got     int64
	retries *int
	resumed io.Closer // the body of the last resume request
}

func (rr *resumingRange) Read(p []byte) (int, error) {
	for {
		n, err := rr.cur.Read(p)
		rr.got += int64(n)
		if err == io.EOF && rr.got < rr.r.n {
			err = io.ErrUnexpectedEOF
		}
		if rr.got >= rr.r.n && err != nil {
			// All of the range came; a break after it is the next
			// range's business.
			return n, io.EOF
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		if *rr.retries <= 0 || rr.ctx.Err() != nil {
			return n, err
		}
		*rr.retries--
		if rerr := rr.resume(); rerr != nil {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resume asks for the rest of the range.
func (rr *resumingRange) resume() error {
	if rr.resumed != nil {
		rr.resumed.Close()
		rr.resumed = nil
	}
	if err := sleepCtx(rr.ctx, retryDelay); err != nil {
		return err
	}
	rest := byteRange{rr.r.off + rr.got, rr.r.n - rr.got}
	req, err := http.NewRequestWithContext(rr.ctx, http.MethodGet, rr.s.url("blobs", rr.d.Digest), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", rest.off, rest.off+rest.n-1))
	resp, err := rr.s.client.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != contentRange(rest, rr.d.Size) {
		resp.Body.Close()
		return fmt.Errorf("blob %s: resuming a range: HTTP %s, Content-Range %q", rr.d.Digest, resp.Status, resp.Header.Get("Content-Range"))
	}
	rr.cur, rr.resumed = io.LimitReader(resp.Body, rest.n), resp.Body
	return nil
}

func (rr *resumingRange) close() {
	if rr.resumed != nil {
		rr.resumed.Close()
	}
}

// exactly checks that fn read all n bytes of r and that r has no more.
func exactly(r io.Reader, n int64, fn func(io.Reader) error) error {
	lr := &io.LimitedReader{R: r, N: n}
	if err := fn(lr); err != nil {
		return err
	}
	if lr.N > 0 {
		if _, err := io.Copy(io.Discard, lr); err != nil {
			return err
		}
		if lr.N > 0 {
			return io.ErrUnexpectedEOF
		}
	}
	if k, _ := io.Copy(io.Discard, io.LimitReader(r, 1)); k > 0 {
		return fmt.Errorf("%w: a range is longer than asked for", errdefs.ErrCorrupt)
	}
	return nil
}

// rangeRequest asks for rs in one request and calls fn with each; it
// returns how many ranges were delivered whole. A range whose transfer
// broke is finished by resumingRange; the rest of the batch then ends
// with errResumeRest, to be asked for again.
func (s *registrySource) rangeRequest(ctx context.Context, d Descriptor, rs []byteRange, retries *int, fn func(int, io.Reader) error) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url("blobs", d.Digest), nil)
	if err != nil {
		return 0, err
	}
	spec := make([]string, len(rs))
	for i, r := range rs {
		spec[i] = fmt.Sprintf("%d-%d", r.off, r.off+r.n-1)
	}
	req.Header.Set("Range", "bytes="+strings.Join(spec, ","))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		return 0, errRangesIgnored
	case http.StatusNotFound:
		return 0, fmt.Errorf("%w: blob %s", errdefs.ErrNotFound, d.Digest)
	case http.StatusUnauthorized, http.StatusForbidden:
		return 0, s.authErr(resp.StatusCode, nil)
	default:
		return 0, fmt.Errorf("blob %s: Range request: HTTP %s", d.Digest, resp.Status)
	}
	deliver := func(i int, body io.Reader) (bool, error) {
		rr := &resumingRange{ctx: ctx, s: s, d: d, r: rs[i], cur: body, retries: retries}
		defer rr.close()
		err := exactly(rr, rs[i].n, func(r io.Reader) error { return fn(i, r) })
		return rr.resumed != nil, err
	}
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "multipart/byteranges" {
		if len(rs) != 1 || resp.Header.Get("Content-Range") != contentRange(rs[0], d.Size) {
			return 0, fmt.Errorf("%w: blob %s: asked for %d ranges, got Content-Range %q", errdefs.ErrCorrupt, d.Digest, len(rs), resp.Header.Get("Content-Range"))
		}
		if _, err := deliver(0, resp.Body); err != nil {
			return 0, err
		}
		return 1, nil
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for i, r := range rs {
		part, err := mr.NextPart()
		if err != nil {
			if i > 0 && *retries > 0 && ctx.Err() == nil {
				// Broken between two parts: ask for the rest again.
				*retries--
				return i, errResumeRest
			}
			return i, fmt.Errorf("blob %s: part %d of %d of the Range answer: %w", d.Digest, i+1, len(rs), err)
		}
		if got := part.Header.Get("Content-Range"); got != contentRange(r, d.Size) {
			return i, fmt.Errorf("%w: blob %s: part %d is %q, asked for %q", errdefs.ErrCorrupt, d.Digest, i+1, got, contentRange(r, d.Size))
		}
		resumed, err := deliver(i, part)
		if err != nil {
			return i, err
		}
		if resumed && i+1 < len(rs) {
			return i + 1, errResumeRest
		}
	}
	return len(rs), nil
}

func contentRange(r byteRange, size int64) string {
	return fmt.Sprintf("bytes %d-%d/%d", r.off, r.off+r.n-1, size)
}

// partialPlan is what a chunk layer needs fetched: the ranges (the head
// first) and the objects it lacks.
type partialPlan struct {
	layer  *tocLayer
	ranges []byteRange
	need   []objects.Checksum
	all    []objects.Checksum
	// bytes is what the ranges hold (0 when nothing is needed: no
	// request is made).
	bytes int64
}

// whole reports whether a layer of size bytes is better fetched whole:
// the plan needs most of it (a whole fetch checks the blob's digest and
// resumes a broken transfer at the byte).
func (p *partialPlan) whole(size int64) bool { return p.bytes*10 >= size*9 }

// planPartial finds the objects of l that r lacks and the ranges that
// hold them, neighbours merged.
func planPartial(r *repo.Repo, l *tocLayer) (*partialPlan, error) {
	p := &partialPlan{layer: l, ranges: []byteRange{{0, l.Head}}}
	off := l.Head
	for i, s := range l.Objects {
		c, _ := objects.ParseChecksum(s)
		p.all = append(p.all, c)
		has, err := r.HasObject(objects.KindFile, c)
		if err != nil {
			return nil, err
		}
		if !has {
			p.need = append(p.need, c)
			last := &p.ranges[len(p.ranges)-1]
			if off-(last.off+last.n) <= mergeGap {
				last.n = off + l.Lengths[i] - last.off
			} else {
				p.ranges = append(p.ranges, byteRange{off, l.Lengths[i]})
			}
		}
		off += l.Lengths[i]
	}
	if len(p.need) > 0 {
		for _, rg := range p.ranges {
			p.bytes += rg.n
		}
	}
	return p, nil
}

// importPartial fetches plan's ranges of layer i, imports the objects
// they carry (each verified against its name) and records the layer's
// object set under ref, in one transaction published only when every
// object of the layer is in the repository.
func importPartial(ctx context.Context, r *repo.Repo, src rangeSource, d Descriptor, p *partialPlan, ref string, retries int, rep progress.Reporter) (objects.Checksum, int64, error) {
	var fetched int64
	t, err := r.Begin(ctx)
	if err != nil {
		return objects.Checksum{}, 0, err
	}
	defer t.Abort()
	if len(p.need) > 0 {
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20))
			if err != nil {
				pw.CloseWithError(err)
				done <- err
				return
			}
			defer dec.Close()
			err = src.readRanges(ctx, d, p.ranges, retries, func(_ int, rd io.Reader) error {
				cr := &countReader{r: rd, count: func(n int64) { fetched += n; rep.Add(n) }}
				if err := dec.Reset(cr); err != nil {
					return err
				}
				if _, err := io.Copy(pw, dec); err != nil {
					if cr.err != nil {
						return cr.err // the transfer broke
					}
					return fmt.Errorf("%w: frames at a Range: %w", errdefs.ErrCorrupt, err)
				}
				return nil
			})
			if err == nil {
				// The archive's end, which the ranges do not carry.
				_, err = pw.Write(make([]byte, 1024))
			}
			pw.CloseWithError(err)
			done <- err
		}()
		or, err := ocilayer.ImportObjects(ctx, t, pr, false, nil)
		pr.CloseWithError(errImportEnded)
		// The fetch's error is the cause, unless it only saw the
		// import give up.
		if ferr := <-done; ferr != nil && !errors.Is(ferr, errImportEnded) {
			if !errors.Is(ferr, errdefs.ErrCorrupt) && !errors.Is(ferr, errRangesIgnored) {
				// The transfer broke: keep the objects verified so far
				// (unreferenced until the layer is done), so that the
				// next try fetches only the others.
				if cerr := t.Commit(); cerr != nil {
					return objects.Checksum{}, fetched, cerr
				}
			}
			return objects.Checksum{}, fetched, ferr
		}
		if err != nil {
			return objects.Checksum{}, fetched, err
		}
		got := map[objects.Checksum]bool{}
		for _, f := range or.Files {
			got[f] = true
		}
		for _, c := range p.need {
			if !got[c] {
				return objects.Checksum{}, fetched, fmt.Errorf("%w: object %s is not where the table of contents puts it", errdefs.ErrCorrupt, c)
			}
		}
	}
	for _, c := range p.all {
		if has, err := t.Has(objects.KindFile, c); err != nil || !has {
			return objects.Checksum{}, fetched, fmt.Errorf("%w: object %s of the table of contents is missing after the import", errdefs.ErrCorrupt, c)
		}
	}
	c, err := ocilayer.ObjectSetCommit(ctx, t, p.all)
	if err != nil {
		return c, fetched, err
	}
	if err := t.SetRef("heads/"+ref, &c); err != nil {
		return c, fetched, err
	}
	return c, fetched, t.Commit()
}

type countReader struct {
	r     io.Reader
	count func(int64)
	err   error // the source's last error but EOF
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.count(int64(n))
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// fetchPartial imports chunk layer d by plan p (planPartial's), and when
// the transfer breaks for good plans again (the objects a failed try
// verified are kept) and tries the rest.
func fetchPartial(ctx context.Context, r *repo.Repo, src rangeSource, d Descriptor, p *partialPlan, ref string, retries int, rep progress.Reporter) (objects.Checksum, int64, error) {
	if p.whole(d.Size) {
		return objects.Checksum{}, 0, errFetchWhole
	}
	var total int64
	for {
		c, n, err := importPartial(ctx, r, src, d, p, ref, retries, rep)
		total += n
		if err == nil || retries <= 0 || ctx.Err() != nil || errors.Is(err, errRangesIgnored) || errors.Is(err, errFetchWhole) ||
			errors.Is(err, errdefs.ErrCorrupt) || errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, errdefs.ErrInvalid) {
			return c, total, err
		}
		retries--
		if err := sleepCtx(ctx, retryDelay); err != nil {
			return c, total, err
		}
		if p, err = planPartial(r, p.layer); err != nil {
			return objects.Checksum{}, total, err
		}
	}
}

// spooledBlob is a blob fetched (and verified) into a temporary file of
// the repository; as a source it serves that blob.
type spooledBlob struct {
	f *os.File
	d Descriptor
}

func spoolBlob(ctx context.Context, dir string, im *image, d Descriptor, retries int, rep progress.Reporter) (*spooledBlob, int64, error) {
	want, _ := d.hex()
	f, err := os.CreateTemp(dir, "strata-layer-")
	if err != nil {
		return nil, 0, err
	}
	os.Remove(f.Name())
	var fetched int64
	br := &blobReader{ctx: ctx, src: im.src, d: d, want: want, h: sha256.New(), retries: retries,
		count: func(n int64) { fetched += n; rep.Add(n) }}
	defer br.Close()
	if _, err := io.Copy(f, br); err != nil {
		f.Close()
		return nil, fetched, err
	}
	return &spooledBlob{f: f, d: d}, fetched, nil
}

func (s *spooledBlob) top(context.Context) (Descriptor, error) { return s.d, nil }

func (s *spooledBlob) fetch(_ context.Context, d Descriptor, off int64) (io.ReadCloser, error) {
	if d.Digest != s.d.Digest {
		return nil, fmt.Errorf("%w: blob %s", errdefs.ErrNotFound, d.Digest)
	}
	return io.NopCloser(io.NewSectionReader(s.f, off, s.d.Size-off)), nil
}

func (s *spooledBlob) close() { s.f.Close() }

// previousLayout reads the layout of a previous export, ref: which chunk
// each content object is in, from its table of contents.
func previousLayout(ctx context.Context, ref ImageRef, a Access) (map[objects.Checksum]int, error) {
	im, err := resolve(ctx, ref, a)
	if err != nil {
		return nil, err
	}
	defer im.src.close()
	layers := im.manifest.Layers
	if len(layers) == 0 || layers[0].Annotations[AnnotationTOC] == "" {
		return nil, im.errorf("", fmt.Errorf("%w: no table of contents (an image strata exported with zstd layers has one): its layout cannot be reused", errdefs.ErrInvalid))
	}
	spool, _, err := spoolBlob(ctx, "", im, layers[0], 5, progress.Nop{})
	if err != nil {
		return nil, im.errorf(layers[0].Digest, err)
	}
	defer spool.close()
	t, err := readTOC(spool.f, layers[0], layers[1:])
	if err != nil {
		return nil, im.errorf(layers[0].Digest, err)
	}
	out := map[objects.Checksum]int{}
	for _, l := range t.Layers {
		if l.Chunk == nil {
			return nil, im.errorf(l.Digest, fmt.Errorf("%w: the table of contents gives no chunk index", errdefs.ErrInvalid))
		}
		for _, o := range l.Objects {
			c, _ := objects.ParseChecksum(o)
			out[c] = *l.Chunk
		}
	}
	return out, nil
}
