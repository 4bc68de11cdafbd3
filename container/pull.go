package container

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/imgpolicy"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/ocilayer"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
)

// Labels and commit metadata keys ostree-ext uses.
const (
	LabelCommit     = "ostree.commit"
	LabelFinalDiff  = "ostree.final-diffid"
	LabelBootc      = "containers.bootc"
	LabelBootable   = "ostree.bootable"
	LabelVersion    = "org.opencontainers.image.version"
	MetaManifestDig = "ostree.manifest-digest"
	MetaManifest    = "ostree.manifest"
	MetaConfig      = "ostree.container.image-config"
)

// Manifest is an image manifest.
type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Config is the part of an image configuration strata reads.
type Config struct {
	Created string `json:"created,omitempty"`
	Config  struct {
		Labels map[string]string `json:"Labels,omitempty"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// PullOptions tune Pull; the zero value works.
type PullOptions struct {
	// Jobs is how many layers are fetched at once (default 4).
	Jobs int
	// Policy, when set, must accept the image before anything is
	// written; signatures it asks for are fetched (sigstore: the
	// sha256-<hex>.sig tag; GPG: the lookaside of RegistriesD).
	Policy *imgpolicy.Policy
	// RegistriesD is the registries.d directory (default
	// /etc/containers/registries.d).
	RegistriesD string
	// Reporter receives one step per layer and the bytes fetched.
	Reporter progress.Reporter
	// Retries is how many times a broken layer download resumes with a
	// Range request before the pull fails (default 5).
	Retries int
	// Access gives registry credentials and registries.conf.
	Access Access
}

// PullResult reports what Pull did.
type PullResult struct {
	// MergeCommit is the commit to deploy, under ImageRefName.
	MergeCommit objects.Checksum
	// BaseCommit is the encapsulated commit (zero for a plain image).
	BaseCommit     objects.Checksum
	ManifestDigest string
	ImageRefName   string
	Version        string
	Created        string
	// LayersFetched and LayersReused count layers; BytesFetched counts
	// the (compressed) bytes read from the source.
	LayersFetched, LayersReused int
	// LayersPartial counts the fetched layers of which only the objects
	// the repository lacked were fetched (chunked layers, docs/oci.md).
	LayersPartial int
	BytesFetched  int64
	// Verified is set when the policy required signatures and they held.
	Verified bool
}

// image is a resolved image: its manifest and configuration, verified.
type image struct {
	ref         ImageRef
	src         source
	manifestRaw []byte
	digest      string
	manifest    Manifest
	configRaw   []byte
	config      Config
}

func (im *image) errorf(layer string, err error) error {
	if layer == "" {
		return fmt.Errorf("image %s: %w", im.ref, err)
	}
	return fmt.Errorf("image %s: layer %s: %w", im.ref, layer, err)
}

// readSmall fetches a manifest or config blob of at most limit bytes and
// checks its digest.
func readSmall(ctx context.Context, src source, d Descriptor, limit int64, what string) ([]byte, error) {
	h, err := d.hex()
	if err != nil {
		return nil, err
	}
	if d.Size > limit {
		return nil, fmt.Errorf("%w: %s %s is %d bytes, over the %d-byte limit", errdefs.ErrInvalid, what, d.Digest, d.Size, limit)
	}
	rc, err := src.fetch(ctx, d, 0)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, d.Digest, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, d.Digest, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s %s is over the %d-byte limit", errdefs.ErrInvalid, what, d.Digest, limit)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != h {
		return nil, fmt.Errorf("%w: %s hashes to sha256:%x, not %s", errdefs.ErrCorrupt, what, sum, d.Digest)
	}
	if d.Size >= 0 && int64(len(data)) != d.Size && d.Size != 0 {
		return nil, fmt.Errorf("%w: %s %s is %d bytes, its descriptor says %d", errdefs.ErrCorrupt, what, d.Digest, len(data), d.Size)
	}
	return data, nil
}

// resolve reads and verifies the manifest (choosing linux/GOARCH from an
// index) and the configuration.
func resolve(ctx context.Context, ref ImageRef, a Access) (*image, error) {
	src, err := openSource(ctx, ref, a)
	if err != nil {
		return nil, err
	}
	im := &image{ref: ref, src: src}
	fail := func(err error) (*image, error) { src.close(); return nil, im.errorf("", err) }
	top, err := src.top(ctx)
	if err != nil {
		return fail(err)
	}
	for range 2 {
		if top.MediaType != "" && !isManifestType(top.MediaType) {
			return fail(fmt.Errorf("%w: unknown manifest media type %q", errdefs.ErrInvalid, top.MediaType))
		}
		raw, err := readSmall(ctx, src, top, MaxManifestSize, "manifest")
		if err != nil {
			return fail(err)
		}
		var probe struct {
			MediaType string       `json:"mediaType"`
			Manifests []Descriptor `json:"manifests"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			return fail(fmt.Errorf("%w: manifest: %w", errdefs.ErrInvalid, err))
		}
		if probe.MediaType == "" {
			probe.MediaType = top.MediaType
		}
		if probe.MediaType == mtOCIIndex || probe.MediaType == mtDockerList || (probe.MediaType == "" && probe.Manifests != nil) {
			var pick *Descriptor
			for i := range probe.Manifests {
				if platformMatches(probe.Manifests[i]) {
					pick = &probe.Manifests[i]
					break
				}
			}
			if pick == nil {
				return fail(fmt.Errorf("%w: the index has no linux image for this architecture", errdefs.ErrNotFound))
			}
			top = *pick
			continue
		}
		if !isManifestType(probe.MediaType) {
			return fail(fmt.Errorf("%w: unknown manifest media type %q", errdefs.ErrInvalid, probe.MediaType))
		}
		im.manifestRaw, im.digest = raw, top.Digest
		if err := json.Unmarshal(raw, &im.manifest); err != nil {
			return fail(fmt.Errorf("%w: manifest: %w", errdefs.ErrInvalid, err))
		}
		break
	}
	if im.manifestRaw == nil {
		return fail(fmt.Errorf("%w: an index inside an index", errdefs.ErrInvalid))
	}
	switch im.manifest.Config.MediaType {
	case mtOCIConfig, mtDockerConfig:
	default:
		return fail(fmt.Errorf("%w: unknown config media type %q", errdefs.ErrInvalid, im.manifest.Config.MediaType))
	}
	for _, l := range im.manifest.Layers {
		if _, err := l.hex(); err != nil {
			return nil, im.errorf(l.Digest, err)
		}
		if _, err := decompressorFor(l.MediaType); err != nil {
			src.close()
			return nil, im.errorf(l.Digest, err)
		}
		if l.Size < 0 {
			src.close()
			return nil, im.errorf(l.Digest, fmt.Errorf("%w: negative size", errdefs.ErrInvalid))
		}
	}
	if im.configRaw, err = readSmall(ctx, src, im.manifest.Config, MaxConfigSize, "config"); err != nil {
		return fail(err)
	}
	if err := json.Unmarshal(im.configRaw, &im.config); err != nil {
		return fail(fmt.Errorf("%w: config: %w", errdefs.ErrInvalid, err))
	}
	if len(im.config.RootFS.DiffIDs) != len(im.manifest.Layers) {
		return fail(fmt.Errorf("%w: %d layers but %d diff_ids", errdefs.ErrInvalid, len(im.manifest.Layers), len(im.config.RootFS.DiffIDs)))
	}
	return im, nil
}

// decompressorFor returns how to decompress a layer of media type mt.
func decompressorFor(mt string) (func(io.Reader) (io.ReadCloser, error), error) {
	switch mt {
	case MediaTypeLayerTar, mtDockerLayerTar:
		return func(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(r), nil }, nil
	case MediaTypeLayerGzip, mtDockerLayerGzip:
		return func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) }, nil
	case MediaTypeLayerZstd:
		return func(r io.Reader) (io.ReadCloser, error) {
			d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20))
			if err != nil {
				return nil, err
			}
			return d.IOReadCloser(), nil
		}, nil
	}
	return nil, fmt.Errorf("%w: unknown layer media type %q", errdefs.ErrInvalid, mt)
}

// blobReader streams a blob, resuming with a Range request when the
// connection breaks, and fails at EOF unless exactly Size bytes hashing
// to Digest were read. Its bytes are unverified until EOF is seen.
type blobReader struct {
	ctx     context.Context
	src     source
	d       Descriptor
	want    string
	h       hash.Hash
	rc      io.ReadCloser
	off     int64
	retries int
	count   func(int64)
	done    bool
	err     error // the first failure, returned by every later Read
}

// Read fails for good once it failed: a reader above that dropped the
// error and read again would otherwise get (0, nil) forever past the
// declared size, or io.EOF after a digest mismatch.
func (b *blobReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *blobReader) read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	for {
		if b.rc == nil {
			rc, err := b.src.fetch(b.ctx, b.d, b.off)
			if err != nil {
				// A missing blob is final; a server error or a refused
				// connection is tried again, resuming at b.off.
				if errors.Is(err, errdefs.ErrNotFound) || b.retries <= 0 || b.ctx.Err() != nil {
					return 0, err
				}
				b.retries--
				if err := sleepCtx(b.ctx, retryDelay); err != nil {
					return 0, err
				}
				continue
			}
			b.rc = rc
		}
		if left := b.d.Size - b.off; int64(len(p)) > left+1 {
			p = p[:left+1]
		}
		n, err := b.rc.Read(p)
		if n > 0 {
			b.h.Write(p[:n])
			b.off += int64(n)
			if b.count != nil {
				b.count(int64(n))
			}
			if b.off > b.d.Size {
				return 0, fmt.Errorf("%w: blob is larger than its descriptor's %d bytes", errdefs.ErrCorrupt, b.d.Size)
			}
		}
		if err == io.EOF {
			if b.off < b.d.Size {
				err = io.ErrUnexpectedEOF
			} else {
				b.rc.Close()
				b.rc = nil
				b.done = true
				if got := hex.EncodeToString(b.h.Sum(nil)); got != b.want {
					return n, fmt.Errorf("%w: blob hashes to sha256:%s, not %s", errdefs.ErrCorrupt, got, b.d.Digest)
				}
				return n, io.EOF
			}
		}
		if err != nil {
			b.rc.Close()
			b.rc = nil
			if b.retries <= 0 || b.ctx.Err() != nil {
				return n, err
			}
			b.retries--
			if n > 0 {
				return n, nil
			}
			continue // resume from b.off
		}
		return n, nil
	}
}

// retryDelay is the pause before a blob request is tried again.
var retryDelay = 500 * time.Millisecond

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (b *blobReader) Close() error {
	if b.rc != nil {
		return b.rc.Close()
	}
	return nil
}

// FreeSpace reports the bytes available to unprivileged writers on the
// file system holding path.
func FreeSpace(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// ErrNoSpace is returned, before any byte is fetched, when the layers to
// fetch would not fit in the repository's file system.
var ErrNoSpace = errors.New("not enough free space")

// Pull imports ref into r: it resolves and verifies the manifest and
// config, asks Policy, checks free space against the layers it lacks,
// fetches those (Jobs at once), each in its own transaction that
// publishes the layer's ref only after the whole layer was read and its
// digest matched, and last writes the merge commit and the image's ref.
// An encapsulated image's commit layer is imported after its other
// layers, so its ref never names a commit with missing objects.
func Pull(ctx context.Context, r *repo.Repo, ref ImageRef, o PullOptions) (*PullResult, error) {
	im, err := resolve(ctx, ref, o.Access)
	if err != nil {
		return nil, err
	}
	defer im.src.close()
	verified, err := checkPolicy(ctx, im, o)
	if err != nil {
		return nil, im.errorf("", err)
	}
	rep := progress.OrNop(o.Reporter)
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	retries := o.Retries
	if retries == 0 {
		retries = 5
	}
	layers := im.manifest.Layers
	labels := im.config.Config.Labels
	nOstree := 0
	if labels[LabelCommit] != "" {
		nOstree = 1
		if fd := labels[LabelFinalDiff]; fd != "" {
			for i, d := range im.config.RootFS.DiffIDs {
				if d == fd {
					nOstree = i + 1
				}
			}
		}
	}
	res := &PullResult{ManifestDigest: im.digest, Created: im.config.Created, Version: labels[LabelVersion], Verified: verified}
	if res.Version == "" {
		res.Version = labels["version"]
	}
	commits := make([]objects.Checksum, len(layers))
	refs := make([]string, len(layers))
	var missing []int
	var need uint64
	for i, l := range layers {
		if refs[i], err = ocilayer.EscapeRef(ocilayer.LayerRefPrefix, l.Digest); err != nil {
			return nil, im.errorf(l.Digest, err)
		}
		c, err := r.ReadRef("heads/" + refs[i])
		if err == nil {
			if ok, _ := r.HasObject(objects.KindCommit, c); ok {
				commits[i] = c
				res.LayersReused++
				continue
			}
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return nil, err
		}
		missing = append(missing, i)
		need += uint64(l.Size)
	}
	free, err := FreeSpace(r.Path())
	if err != nil {
		return nil, err
	}
	if need > free {
		return nil, im.errorf("", fmt.Errorf("%w: the %d missing layers are %d bytes compressed, the repository's file system has %d bytes free", ErrNoSpace, len(missing), need, free))
	}
	rep = &lockedReporter{r: rep}
	var partial atomic.Int32
	sizes := make([]int64, len(layers))
	// A chunked image's commit layer is fetched first, to a file: its
	// table of contents lets the chunk layers be fetched in part.
	commitSrc := im.src
	var tc map[string]*tocLayer
	plans := map[int]*partialPlan{}
	rs, canRange := im.src.(rangeSource)
	if nOstree > 0 && len(missing) > 0 && missing[0] == 0 && canRange && layers[0].MediaType == MediaTypeLayerZstd && layers[0].Annotations[AnnotationTOC] != "" {
		rep.Phase("fetch the commit layer", "bytes", layers[0].Size)
		spool, n, err := spoolBlob(ctx, filepath.Join(r.Path(), "tmp"), im, layers[0], retries, rep)
		sizes[0] = n
		if err != nil {
			return nil, im.errorf(layers[0].Digest, err)
		}
		defer spool.close()
		t, err := readTOC(spool.f, layers[0], layers[1:nOstree])
		if err != nil {
			return nil, im.errorf(layers[0].Digest, err)
		}
		tc = map[string]*tocLayer{}
		for i := range t.Layers {
			tc[t.Layers[i].Digest] = &t.Layers[i]
		}
		commitSrc = spool
		// Each chunk layer is planned once: the bytes left are what the
		// plans need fetched, or all of a layer fetched whole.
		need = 0
		for _, i := range missing[1:] {
			l := layers[i]
			if tl := tc[l.Digest]; tl != nil && i < nOstree {
				p, err := planPartial(r, tl)
				if err != nil {
					return nil, im.errorf(l.Digest, err)
				}
				plans[i] = p
				if !p.whole(l.Size) {
					need += uint64(p.bytes)
					continue
				}
			}
			need += uint64(l.Size)
		}
	}
	rep.Phase("fetch layers", "bytes", int64(need))
	fetch := func(gctx context.Context, i int) error {
		l := layers[i]
		src := im.src
		if i == 0 {
			src = commitSrc
		}
		var c objects.Checksum
		var n int64
		var err error
		if p := plans[i]; p != nil {
			c, n, err = fetchPartial(gctx, r, rs, l, p, refs[i], retries, rep)
			if errors.Is(err, errRangesIgnored) || errors.Is(err, errFetchWhole) {
				c, n, err = importLayer(gctx, r, im, src, i, true, false, refs[i], retries, rep)
			} else if err == nil {
				partial.Add(1)
			}
		} else if src != im.src {
			// The spooled commit layer: its bytes were counted.
			c, _, err = importLayer(gctx, r, im, src, i, true, true, refs[i], retries, progress.OrNop(nil))
		} else {
			c, n, err = importLayer(gctx, r, im, src, i, i < nOstree, i == 0 && nOstree > 0, refs[i], retries, rep)
		}
		sizes[i] += n
		if err != nil {
			return im.errorf(l.Digest, err)
		}
		commits[i] = c
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	commitLayer := -1
	for _, i := range missing {
		if i == 0 && nOstree > 0 {
			commitLayer = i
			continue
		}
		g.Go(func() error { return fetch(gctx, i) })
	}
	err = g.Wait()
	if err == nil && commitLayer >= 0 {
		err = fetch(ctx, commitLayer)
	}
	for _, n := range sizes {
		res.BytesFetched += n
	}
	res.LayersFetched = len(missing)
	res.LayersPartial = int(partial.Load())
	rep.Done()
	if err != nil {
		return nil, err
	}
	if nOstree > 0 {
		res.BaseCommit = commits[0]
		if labels[LabelCommit] != res.BaseCommit.String() {
			return nil, im.errorf(layers[0].Digest, fmt.Errorf("%w: the layer carries commit %s, the label %s says %s", errdefs.ErrCorrupt, res.BaseCommit, LabelCommit, labels[LabelCommit]))
		}
	}
	if err := writeMerge(ctx, r, im, res, commits[nOstree:]); err != nil {
		return nil, im.errorf("", err)
	}
	return res, nil
}

// lockedReporter serialises the reports of concurrent layer fetches.
type lockedReporter struct {
	mu sync.Mutex
	r  progress.Reporter
}

func (l *lockedReporter) Phase(name, unit string, total int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.r.Phase(name, unit, total)
}

func (l *lockedReporter) Add(n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.r.Add(n)
}

func (l *lockedReporter) Done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.r.Done()
}

// importLayer fetches layer i and imports it in its own transaction.
func importLayer(ctx context.Context, r *repo.Repo, im *image, src source, i int, encapsulated, withCommit bool, ref string, retries int, rep progress.Reporter) (objects.Checksum, int64, error) {
	l := im.manifest.Layers[i]
	want, _ := l.hex()
	var fetched int64
	br := &blobReader{ctx: ctx, src: src, d: l, want: want, h: sha256.New(), retries: retries,
		count: func(n int64) { fetched += n; rep.Add(n) }}
	defer br.Close()
	dec, _ := decompressorFor(l.MediaType)
	zr, err := dec(bufio.NewReaderSize(br, 256<<10))
	if err != nil {
		return objects.Checksum{}, fetched, err
	}
	defer zr.Close()
	diff := sha256.New()
	tr := io.TeeReader(zr, diff)
	t, err := r.Begin(ctx)
	if err != nil {
		return objects.Checksum{}, fetched, err
	}
	defer t.Abort()
	var c objects.Checksum
	if encapsulated {
		or, err := ocilayer.ImportObjects(ctx, t, tr, withCommit, nil)
		if err != nil {
			return c, fetched, err
		}
		if withCommit {
			c = *or.Commit
		} else if c, err = ocilayer.ObjectSetCommit(ctx, t, or.Files); err != nil {
			return c, fetched, err
		}
	} else if c, err = ocilayer.ImportLayer(ctx, t, tr, ocilayer.LayerOptions{}); err != nil {
		return c, fetched, err
	}
	// Read to the end: the tar's padding, the compressed stream's
	// trailer, and the digest check at the blob's EOF.
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return c, fetched, err
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return c, fetched, err
	}
	if !br.done {
		return c, fetched, fmt.Errorf("%w: blob not read to its end", errdefs.ErrCorrupt)
	}
	if got := "sha256:" + hex.EncodeToString(diff.Sum(nil)); got != im.config.RootFS.DiffIDs[i] {
		return c, fetched, fmt.Errorf("%w: uncompressed layer hashes to %s, the config's diff_id is %s", errdefs.ErrCorrupt, got, im.config.RootFS.DiffIDs[i])
	}
	if err := t.SetRef("heads/"+ref, &c); err != nil {
		return c, fetched, err
	}
	return c, fetched, t.Commit()
}

// writeMerge writes the merge commit (base plus the non-ostree layers,
// whiteouts applied) with ostree-ext's metadata, and the image's ref.
func writeMerge(ctx context.Context, r *repo.Repo, im *image, res *PullResult, layers []objects.Checksum) error {
	t, err := r.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.Abort()
	m, err := ocilayer.Merge(ctx, r, res.BaseCommit, layers)
	if err != nil {
		return err
	}
	ts := time.Unix(0, 0)
	if created, err := time.Parse(time.RFC3339Nano, im.config.Created); err == nil {
		ts = created
	}
	md := objects.Metadata{
		{Key: MetaManifestDig, Value: str(im.digest)},
		{Key: MetaManifest, Value: str(string(im.manifestRaw))},
		{Key: MetaConfig, Value: str(string(im.configRaw))},
	}
	if res.Version != "" {
		md = append(md, objects.MetaEntry{Key: "version", Value: str(res.Version)})
	}
	zero := objects.Checksum{}
	cr, err := commit.Write(ctx, t, m, commit.Options{Orphan: true, Timestamp: ts, Parent: &zero, NoBindings: true, Metadata: md})
	if err != nil {
		return err
	}
	res.MergeCommit = cr.Checksum
	if res.ImageRefName, err = ocilayer.EscapeRef(ocilayer.ImageRefPrefix, im.ref.String()); err != nil {
		return err
	}
	if err := t.SetRef("heads/"+res.ImageRefName, &cr.Checksum); err != nil {
		return err
	}
	return t.Commit()
}

func str(s string) gvariant.Variant {
	return gvariant.Variant{Type: gvariant.MustParseType("s"), Value: s}
}

// Resolved is what Resolve found of an image without fetching its layers.
type Resolved struct {
	ManifestDigest string
	Version        string
	Created        string
	Layers         int
	// Size is the sum of the layers' compressed sizes.
	Size int64
	// Verified (ResolveVerified) is set when the policy required
	// signatures and they held.
	Verified bool
}

// Resolve reads and verifies ref's manifest and configuration only (for
// an update check), reaching registries through a.
func Resolve(ctx context.Context, ref ImageRef, a Access) (*Resolved, error) {
	im, err := resolve(ctx, ref, a)
	if err != nil {
		return nil, err
	}
	defer im.src.close()
	return resolved(im), nil
}

// ResolveVerified is Resolve followed by the signature policy of o (as
// Pull checks it), for a caller that must refuse an image before it
// writes anything of its own (install, before partitioning a disk).
// Verified in the result says whether signatures were required and held.
func ResolveVerified(ctx context.Context, ref ImageRef, o PullOptions) (*Resolved, error) {
	im, err := resolve(ctx, ref, o.Access)
	if err != nil {
		return nil, err
	}
	defer im.src.close()
	verified, err := checkPolicy(ctx, im, o)
	if err != nil {
		return nil, im.errorf("", err)
	}
	res := resolved(im)
	res.Verified = verified
	return res, nil
}

func resolved(im *image) *Resolved {
	res := &Resolved{ManifestDigest: im.digest, Created: im.config.Created, Layers: len(im.manifest.Layers)}
	res.Version = im.config.Config.Labels[LabelVersion]
	if res.Version == "" {
		res.Version = im.config.Config.Labels["version"]
	}
	for _, l := range im.manifest.Layers {
		res.Size += l.Size
	}
	return res
}
