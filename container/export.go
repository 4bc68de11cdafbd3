package container

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/gzip"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/ocilayer"
	"github.com/strata-os/strata/repo"
)

// EncapsulateOptions tune Encapsulate; the zero value works.
type EncapsulateOptions struct {
	// MaxLayers bounds the layer count (default 64, at most 128).
	MaxLayers int
	// Labels are added to the image's labels.
	Labels map[string]string
	// Access gives registry credentials and registries.conf for a push.
	Access Access
	// Previous, when set, is an earlier export (by strata, zstd) whose
	// layout is kept: every object it has stays in the same chunk, so
	// that no layer of it changes but for what changed in the tree.
	Previous *ImageRef
	// Compression is CompressionZstd (the default: chunked layers with a
	// table of contents, docs/oci.md) or CompressionGzip (one gzip stream
	// a layer, for consumers that cannot read zstd layers).
	Compression string
}

// Layer compressions of Encapsulate.
const (
	CompressionZstd = "zstd"
	CompressionGzip = "gzip"
)

// EncapsulateResult is what Encapsulate wrote.
type EncapsulateResult struct {
	ManifestDigest string
	Layers         int
}

// Encapsulate exports commit as an image in ostree-ext's format: the
// commit layer first (the commit, every dirtree and dirmeta), then up to
// MaxLayers-1 chunks of content objects (ocilayer.Plan, keeping
// Previous's layout), compressed as chunked zstd (the commit layer
// carrying the table of contents, see chunked.go) or gzip, with labels ostree.commit, ostree.final-diffid, containers.bootc=1,
// ostree.bootable=true and the commit's version. Same commit and options,
// same bytes, same manifest digest. dest is an oci: layout (written in
// place, tag replaced), an oci-archive: file (replaced, holding only this
// image) or a registry (pushed).
func Encapsulate(ctx context.Context, r *repo.Repo, c objects.Checksum, dest ImageRef, o EncapsulateOptions) (*EncapsulateResult, error) {
	maxLayers := o.MaxLayers
	if maxLayers == 0 {
		maxLayers = ocilayer.DefaultMaxLayers
	}
	co, err := r.ReadCommit(c)
	if err != nil {
		return nil, err
	}
	var prev map[objects.Checksum]int
	if o.Previous != nil {
		if prev, err = previousLayout(ctx, *o.Previous, o.Access); err != nil {
			return nil, fmt.Errorf("previous image: %w", err)
		}
	}
	chunks, err := ocilayer.Plan(ctx, r, c, maxLayers, prev)
	if err != nil {
		return nil, err
	}
	var dir, tag string
	switch dest.Transport {
	case OCIDir:
		dir, tag = dest.PathTag()
		if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
			return nil, err
		}
	case Registry, OCIArchive:
		// A registry gets the image pushed from a private layout; an
		// archive is that layout tarred, the layout made beside the
		// archive (its blobs are the size of the image).
		tmpBase, archive := "", ""
		tag = "latest"
		if dest.Transport == OCIArchive {
			archive, tag = dest.PathTag()
			tmpBase = filepath.Dir(archive)
		}
		tmp, err := os.MkdirTemp(tmpBase, ".strata-encapsulate-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
		if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: encapsulate writes to oci:, oci-archive: or registry:, not %s", errdefs.ErrInvalid, dest.Transport)
	}
	created := time.Unix(int64(co.Timestamp), 0).UTC().Format(time.RFC3339)
	comp := o.Compression
	if comp == "" {
		comp = CompressionZstd
	}
	if comp != CompressionZstd && comp != CompressionGzip {
		return nil, fmt.Errorf("%w: compression %q: zstd or gzip", errdefs.ErrInvalid, comp)
	}
	// The chunk layers are written first: the commit layer carries their
	// table of contents.
	layers := make([]Descriptor, len(chunks)+1)
	diffIDs := make([]string, len(chunks)+1)
	t := &toc{Version: tocVersion}
	for i, ch := range chunks {
		tl := &tocLayer{Chunk: &ch.Index}
		d, diff, err := writeLayer(ctx, dir, r, c, ch, false, comp, tl, nil)
		if err != nil {
			return nil, err
		}
		layers[i+1], diffIDs[i+1] = d, diff
		t.Layers = append(t.Layers, *tl)
	}
	if comp != CompressionZstd {
		t = nil
	}
	d, diff, err := writeLayer(ctx, dir, r, c, ocilayer.Chunk{Name: "ostree commit"}, true, comp, nil, t)
	if err != nil {
		return nil, err
	}
	layers[0], diffIDs[0] = d, diff
	labels := map[string]string{
		LabelCommit:    c.String(),
		LabelFinalDiff: diffIDs[len(diffIDs)-1],
		LabelBootc:     "1",
		LabelBootable:  "true",
	}
	if v, ok := co.Metadata.String("version"); ok {
		labels[LabelVersion] = v
		labels["version"] = v
	}
	for k, v := range o.Labels {
		labels[k] = v
	}
	type history struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
		Comment   string `json:"comment,omitempty"`
	}
	cfg := struct {
		Created      string `json:"created"`
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Config       struct {
			Labels map[string]string `json:"Labels"`
		} `json:"config"`
		RootFS struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
		History []history `json:"history"`
	}{Created: created, Architecture: runtime.GOARCH, OS: "linux"}
	cfg.Config.Labels = labels
	cfg.RootFS.Type, cfg.RootFS.DiffIDs = "layers", diffIDs
	for i := range layers {
		comment := "ostree commit"
		if i > 0 {
			comment = chunks[i-1].Name
		}
		cfg.History = append(cfg.History, history{Created: created, CreatedBy: "strata container encapsulate", Comment: comment})
	}
	cfgRaw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgDesc, err := writeBlob(dir, mtOCIConfig, cfgRaw)
	if err != nil {
		return nil, err
	}
	man := Manifest{SchemaVersion: 2, MediaType: mtOCIManifest, Config: cfgDesc, Layers: layers, Annotations: labels}
	manRaw, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	manDesc, err := writeBlob(dir, mtOCIManifest, manRaw)
	if err != nil {
		return nil, err
	}
	if err := writeIndex(dir, manDesc, tag); err != nil {
		return nil, err
	}
	res := &EncapsulateResult{ManifestDigest: manDesc.Digest, Layers: len(layers)}
	switch dest.Transport {
	case Registry:
		if err := push(ctx, dir, manDesc, dest, o.Access); err != nil {
			return nil, err
		}
	case OCIArchive:
		file, _ := dest.PathTag()
		if err := writeArchive(ctx, dir, file); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// writeArchive durably replaces file with a tar of the OCI layout dir, as
// skopeo's oci-archive transport reads it: the directories blobs/ and
// blobs/sha256/, the blobs in name order, index.json and oci-layout;
// owner 0, mode 0644 (0755 for directories), mtime 0, so the same layout
// gives the same bytes.
func writeArchive(ctx context.Context, dir, file string) error {
	blobs, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		return err
	}
	names := []string{}
	for _, b := range blobs {
		if b.Type().IsRegular() && !strings.HasPrefix(b.Name(), ".") {
			names = append(names, "blobs/sha256/"+b.Name())
		}
	}
	sort.Strings(names)
	names = append(names, "index.json", "oci-layout")
	epoch := time.Unix(0, 0)
	return fsutil.WriteFileFunc(file, 0o644, func(w io.Writer) error {
		tw := tar.NewWriter(w)
		for _, d := range []string{"blobs/", "blobs/sha256/"} {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
		}
		for _, n := range names {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := addArchiveFile(tw, filepath.Join(dir, n), n, epoch); err != nil {
				return err
			}
		}
		return tw.Close()
	})
}

func addArchiveFile(tw *tar.Writer, path, name string, mtime time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: st.Size(), Mode: 0o644, ModTime: mtime}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("archiving %s: %w", name, err)
	}
	return nil
}

// writeLayer writes one chunk as a layer blob, hashing the tar (its
// diff_id) and the compressed bytes (its digest) as they are written.
// With zstd, a chunk layer's head and each content object get frames of
// their own, recorded in tl; the commit layer (final) gets t, the table
// of contents, after its tar.
func writeLayer(ctx context.Context, dir string, r *repo.Repo, c objects.Checksum, ch ocilayer.Chunk, final bool, comp string, tl *tocLayer, t *toc) (Descriptor, string, error) {
	blobs := filepath.Join(dir, "blobs", "sha256")
	f, err := os.CreateTemp(blobs, ".layer-")
	if err != nil {
		return Descriptor{}, "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	digest := sha256.New()
	counter := &countWriter{w: io.MultiWriter(f, digest)}
	diff := sha256.New()
	mt := MediaTypeLayerGzip
	var annotations map[string]string
	if comp == CompressionGzip {
		zw, err := gzip.NewWriterLevel(counter, gzip.DefaultCompression)
		if err != nil {
			return Descriptor{}, "", err
		}
		if err := ocilayer.WriteChunk(ctx, io.MultiWriter(zw, diff), r, c, ch, final, ocilayer.WriteOptions{}); err != nil {
			return Descriptor{}, "", fmt.Errorf("layer %q: %w", ch.Name, err)
		}
		if err := zw.Close(); err != nil {
			return Descriptor{}, "", err
		}
	} else {
		mt = MediaTypeLayerZstd
		fw, err := newFrameWriter(counter)
		if err != nil {
			return Descriptor{}, "", err
		}
		var wo ocilayer.WriteOptions
		if !final {
			wo.Split = func(kind ocilayer.SegmentKind, obj objects.Checksum) error {
				n, err := fw.cut()
				if kind == ocilayer.SegmentHead {
					tl.Head = n
				} else {
					tl.Objects = append(tl.Objects, obj.String())
					tl.Lengths = append(tl.Lengths, n)
				}
				return err
			}
		}
		if err := ocilayer.WriteChunk(ctx, io.MultiWriter(fw, diff), r, c, ch, final, wo); err != nil {
			return Descriptor{}, "", fmt.Errorf("layer %q: %w", ch.Name, err)
		}
		if err := fw.finish(); err != nil {
			return Descriptor{}, "", err
		}
		if final && t != nil {
			pos, err := writeTOC(counter, t)
			if err != nil {
				return Descriptor{}, "", err
			}
			annotations = map[string]string{AnnotationTOC: pos}
		}
	}
	d, err := publishBlob(f, digest, counter.n, mt)
	d.Annotations = annotations
	if tl != nil {
		tl.Digest = d.Digest
	}
	return d, "sha256:" + hex.EncodeToString(diff.Sum(nil)), err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// publishBlob syncs the temporary f and renames it to its digest.
func publishBlob(f *os.File, h hash.Hash, size int64, mt string) (Descriptor, error) {
	if err := f.Sync(); err != nil {
		return Descriptor{}, err
	}
	hexsum := hex.EncodeToString(h.Sum(nil))
	dst := filepath.Join(filepath.Dir(f.Name()), hexsum)
	if err := os.Rename(f.Name(), dst); err != nil {
		return Descriptor{}, err
	}
	if err := fsutil.SyncDir(filepath.Dir(dst)); err != nil {
		return Descriptor{}, err
	}
	return Descriptor{MediaType: mt, Digest: "sha256:" + hexsum, Size: size}, nil
}

func writeBlob(dir, mt string, data []byte) (Descriptor, error) {
	sum := sha256.Sum256(data)
	d := Descriptor{MediaType: mt, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}
	return d, fsutil.WriteFile(filepath.Join(dir, "blobs", "sha256", hex.EncodeToString(sum[:])), data, 0o644)
}

// writeIndex records manifest m under tag in dir's index.json, replacing
// an image of the same tag, and writes oci-layout.
func writeIndex(dir string, m Descriptor, tag string) error {
	var idx struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType,omitempty"`
		Manifests     []Descriptor `json:"manifests"`
	}
	data, err := fsutil.ReadFileLimit(filepath.Join(dir, "index.json"), MaxManifestSize)
	if err == nil {
		if err := json.Unmarshal(data, &idx); err != nil {
			return fmt.Errorf("%w: %s/index.json: %w", errdefs.ErrInvalid, dir, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	idx.SchemaVersion, idx.MediaType = 2, mtOCIIndex
	kept := idx.Manifests[:0]
	for _, d := range idx.Manifests {
		if tag == "" || d.Annotations[annotationRefName] != tag {
			kept = append(kept, d)
		}
	}
	if tag == "" {
		kept = nil // one untagged image: the layout holds only it
	} else {
		m.Annotations = map[string]string{annotationRefName: tag}
	}
	idx.Manifests = append(kept, m)
	sort.SliceStable(idx.Manifests, func(i, j int) bool {
		return idx.Manifests[i].Annotations[annotationRefName] < idx.Manifests[j].Annotations[annotationRefName]
	})
	out, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	return fsutil.WriteFile(filepath.Join(dir, "index.json"), out, 0o644)
}

// push uploads the image in layout dir to the registry; go-containerregistry
// skips blobs the registry already has and keeps the manifest's bytes.
func push(ctx context.Context, dir string, m Descriptor, dest ImageRef, a Access) error {
	t, opts, err := a.remote(ctx, dest)
	if err != nil {
		return err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return err
	}
	h, err := hashOf(m.Digest)
	if err != nil {
		return err
	}
	img, err := p.Image(h)
	if err != nil {
		return err
	}
	if err := remote.Write(t.ref, img, append(opts, remote.WithJobs(4))...); err != nil {
		return fmt.Errorf("pushing %s: %w", dest, t.authError(a.Keychain, 0, err))
	}
	return nil
}
