package ocilayer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// ChunkObject is one content object of a chunk and the paths (relative,
// "usr/bin/sh") where the commit has it.
type ChunkObject struct {
	Checksum objects.Checksum
	Size     uint64
	Paths    []string
}

// Chunk is the content of one exported layer, sorted by checksum.
type Chunk struct {
	Name string
	// Index is the chunk's place among the plan's chunks (0-based; empty
	// chunks are left out of a plan, so indexes may skip).
	Index   int
	Objects []ChunkObject
}

// Size is the sum of the chunk's object sizes.
func (c *Chunk) Size() uint64 {
	var n uint64
	for _, o := range c.Objects {
		n += o.Size
	}
	return n
}

// Limits on the number of layers of an export.
const (
	DefaultMaxLayers = 64
	MaxLayersLimit   = 128
)

// Plan splits commit's content objects into at most maxLayers-1 chunks
// (the remaining layer is the commit layer, which WriteChunk writes with
// final). An object goes to the chunk chosen by a hash of its first
// path's directory, cut to three components ("usr/lib/python3"), so files
// of one package land together; the files of a directory group larger
// than total/(maxLayers-1) are placed by a hash of their own path instead,
// so a big flat directory is spread out. A path's chunk depends only on it
// (and, for the big-group rule, on its group's share of the tree, which
// small updates rarely move), so an update that changes a few files
// changes only their chunks, and one commit always gives the same chunks.
// Empty chunks are left out.
//
// prev, when not nil, is a previous export's layout (object -> chunk
// index): an object it places in one of this plan's chunks stays there,
// whatever the rule says, so that no object of the previous version
// changes layer; new objects follow the rule.
func Plan(ctx context.Context, r *repo.Repo, commit objects.Checksum, maxLayers int, prev map[objects.Checksum]int) ([]Chunk, error) {
	if maxLayers < 2 || maxLayers > MaxLayersLimit {
		return nil, fmt.Errorf("%w: layer count %d: between 2 and %d", errdefs.ErrInvalid, maxLayers, MaxLayersLimit)
	}
	c, err := r.ReadCommit(commit)
	if err != nil {
		return nil, err
	}
	byObj := map[objects.Checksum]*ChunkObject{}
	var walk func(tree objects.Checksum, dir string) error
	walk = func(tree objects.Checksum, dir string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		dt, err := r.ReadDirTree(tree)
		if err != nil {
			return err
		}
		for _, f := range dt.Files {
			o := byObj[f.Checksum]
			if o == nil {
				h, err := r.ReadFileHeader(f.Checksum)
				if err != nil {
					return err
				}
				o = &ChunkObject{Checksum: f.Checksum, Size: h.Size}
				byObj[f.Checksum] = o
			}
			o.Paths = append(o.Paths, dir+f.Name)
		}
		for _, d := range dt.Dirs {
			if dir == "" && d.Name == "sysroot" {
				continue // ostree-ext never exports /sysroot's content
			}
			if err := walk(d.Tree, dir+d.Name+"/"); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(c.RootTree, ""); err != nil {
		return nil, err
	}
	n := maxLayers - 1
	chunks := make([]Chunk, n)
	// Group by directory (cut to three components), except the files of a
	// directory group larger than a chunk's fair share, which are spread
	// by their own path: a big flat directory (/usr/bin) must not make one
	// huge layer that any change in it refetches.
	dirKey := func(p string) string {
		comps := strings.Split(p, "/")
		comps = comps[:len(comps)-1]
		if len(comps) > 3 {
			comps = comps[:3]
		}
		return strings.Join(comps, "/")
	}
	var total uint64
	groupSize := map[string]uint64{}
	for _, o := range byObj {
		sort.Strings(o.Paths)
		total += o.Size
		groupSize[dirKey(o.Paths[0])] += o.Size
	}
	share := total / uint64(n)
	for _, o := range byObj {
		if i, ok := prev[o.Checksum]; ok && i >= 0 && i < n {
			chunks[i].Objects = append(chunks[i].Objects, *o)
			continue
		}
		key := dirKey(o.Paths[0])
		if groupSize[key] > share {
			key = o.Paths[0]
		}
		h := fnv.New32a()
		io.WriteString(h, key)
		i := int(h.Sum32() % uint32(n))
		chunks[i].Objects = append(chunks[i].Objects, *o)
	}
	var out []Chunk
	for i := range chunks {
		if len(chunks[i].Objects) == 0 {
			continue
		}
		objs := chunks[i].Objects
		sort.Slice(objs, func(a, b int) bool { return string(objs[a].Checksum[:]) < string(objs[b].Checksum[:]) })
		out = append(out, Chunk{Name: fmt.Sprintf("chunk %d of %d", i+1, n), Index: i, Objects: objs})
	}
	return out, nil
}

// objectPath is where ostree-ext's streams keep an object.
func objectPath(c objects.Checksum, ext string) string {
	s := c.String()
	return objectsPrefix + s[:2] + "/" + s[2:] + "." + ext
}

var epoch = time.Unix(0, 0)

type chunkWriter struct {
	ctx      context.Context
	r        *repo.Repo
	tw       *tar.Writer
	commit   objects.Checksum
	dirtrees map[objects.Checksum]bool
	dirmetas map[objects.Checksum]bool
	content  map[objects.Checksum]bool
}

func (w *chunkWriter) header(h *tar.Header) error {
	h.Format = tar.FormatGNU
	h.ModTime = epoch
	return w.tw.WriteHeader(h)
}

func (w *chunkWriter) dir(name string, uid, gid, mode uint32) error {
	return w.header(&tar.Header{Typeflag: tar.TypeDir, Name: name, Uid: int(uid), Gid: int(gid), Mode: int64(mode &^ objects.ModeTypeMask)})
}

func (w *chunkWriter) data(name string, data []byte) error {
	if err := w.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
		return err
	}
	_, err := w.tw.Write(data)
	return err
}

// repoStructure writes the skeleton of a bare-split-xattrs repository.
func (w *chunkWriter) repoStructure() error {
	for _, d := range []string{"sysroot", "sysroot/ostree", "sysroot/ostree/repo", "sysroot/ostree/repo/objects"} {
		if err := w.dir(d, 0, 0, 0o755); err != nil {
			return err
		}
	}
	for i := range 256 {
		if err := w.dir(fmt.Sprintf("%s%02x", objectsPrefix, i), 0, 0, 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"extensions", "refs", "refs/heads", "refs/mirrors", "refs/remotes", "state", "tmp", "tmp/cache"} {
		if err := w.dir(repoPrefix+d, 0, 0, 0o755); err != nil {
			return err
		}
	}
	return w.data(repoPrefix+"config", []byte("[core]\nrepo_version=1\nmode=bare-split-xattrs\n"))
}

func (w *chunkWriter) metaObject(kind objects.Kind, c objects.Checksum, ext string) ([]byte, error) {
	data, err := w.r.ReadMetadata(kind, c)
	if err != nil {
		return nil, err
	}
	return data, w.data(objectPath(c, ext), data)
}

// mapPath turns usr/etc back into etc for the stream.
func mapPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "./usr/etc"); ok && (rest == "" || rest[0] == '/') {
		return "./etc" + rest
	}
	if rest, ok := strings.CutPrefix(p, "usr/etc"); ok && (rest == "" || rest[0] == '/') {
		return "etc" + rest
	}
	return p
}

// structure writes the commit layer's metadata: the root, the repo
// skeleton, the commit (and its detached metadata), and every dirtree and
// dirmeta object with the directories of the checkout.
func (w *chunkWriter) structure() error {
	c, err := w.r.ReadCommit(w.commit)
	if err != nil {
		return err
	}
	rootMeta, err := w.r.ReadDirMeta(c.RootMeta)
	if err != nil {
		return err
	}
	if err := w.dir("./", rootMeta.UID, rootMeta.GID, rootMeta.Mode); err != nil {
		return err
	}
	if err := w.repoStructure(); err != nil {
		return err
	}
	if _, err := w.metaObject(objects.KindCommit, w.commit, "commit"); err != nil {
		return err
	}
	if _, err := w.metaObject(objects.KindCommitMeta, w.commit, "commitmeta"); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	w.dirmetas[c.RootMeta] = true
	if _, err := w.metaObject(objects.KindDirMeta, c.RootMeta, "dirmeta"); err != nil {
		return err
	}
	if err := w.dirtree("./", c.RootTree, true); err != nil {
		return err
	}
	// ostree-ext always adds var/tmp (its check for one in the commit
	// compares a "./"-prefixed path and never matches).
	return w.header(&tar.Header{Typeflag: tar.TypeDir, Name: "var/tmp", Mode: 0o1777})
}

func (w *chunkWriter) dirtree(dir string, tree objects.Checksum, root bool) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	data, err := w.r.ReadMetadata(objects.KindDirTree, tree)
	if err != nil {
		return err
	}
	if !w.dirtrees[tree] {
		w.dirtrees[tree] = true
		if err := w.data(objectPath(tree, "dirtree"), data); err != nil {
			return err
		}
	}
	dt, err := objects.ParseDirTree(data)
	if err != nil {
		return err
	}
	for _, d := range dt.Dirs {
		meta, err := w.r.ReadDirMeta(d.Meta)
		if err != nil {
			return err
		}
		if !w.dirmetas[d.Meta] {
			w.dirmetas[d.Meta] = true
			if _, err := w.metaObject(objects.KindDirMeta, d.Meta, "dirmeta"); err != nil {
				return err
			}
		}
		if root && d.Name == "sysroot" {
			continue
		}
		sub := mapPath(dir + d.Name)
		if err := w.dir(sub, meta.UID, meta.GID, meta.Mode); err != nil {
			return err
		}
		if err := w.dirtree(sub+"/", d.Tree, false); err != nil {
			return err
		}
	}
	return nil
}

// SegmentKind names the part of a chunk's stream that WriteOptions.Split
// ends.
type SegmentKind int

const (
	// SegmentHead is the start of the stream: the repository skeleton
	// (with final, the commit layer's structure) and every xattrs object
	// the chunk's content objects use.
	SegmentHead SegmentKind = iota
	// SegmentObject is one content object: its xattrs link and the
	// object's entry with its bytes. A reader that has the head's xattrs
	// can import it alone.
	SegmentObject
)

// WriteOptions tune WriteChunk.
type WriteOptions struct {
	// Split, when set, is called with the tar stream flushed to a record
	// boundary at the end of each segment: once after the head, then after
	// each content object, with its checksum. What follows the last call
	// (the checkout's hard links and the end of the archive) is the tail.
	// A writer that starts a new compressed frame at each call makes every
	// object fetchable on its own (container's chunked layers).
	Split func(kind SegmentKind, obj objects.Checksum) error
}

// contentObject writes one content object (its xattrs link first, the
// xattrs object itself being in the head) and returns the header its
// checkout links take.
func (w *chunkWriter) contentObject(o ChunkObject) (*objects.FileHeader, error) {
	if err := w.ctx.Err(); err != nil {
		return nil, err
	}
	h, rc, err := w.r.OpenFileVerified(o.Checksum)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if w.content[o.Checksum] {
		return h, nil
	}
	w.content[o.Checksum] = true
	xpath := objectPath(objects.Sum(objects.MarshalXattrs(h.Xattrs)), "file-xattrs")
	if err := w.header(&tar.Header{Typeflag: tar.TypeLink, Name: objectPath(o.Checksum, "file-xattrs-link"), Linkname: xpath, Mode: 0o644}); err != nil {
		return nil, err
	}
	obj := tar.Header{Name: objectPath(o.Checksum, "file"), Uid: int(h.UID), Gid: int(h.GID), Mode: int64(h.Mode &^ objects.ModeTypeMask)}
	if h.IsSymlink() {
		obj.Typeflag, obj.Linkname = tar.TypeSymlink, h.Target
		return h, w.header(&obj)
	}
	obj.Typeflag, obj.Size = tar.TypeReg, int64(h.Size)
	if err := w.header(&obj); err != nil {
		return nil, err
	}
	n, err := io.Copy(w.tw, rc)
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", o.Checksum, err)
	}
	if uint64(n) != h.Size {
		return nil, fmt.Errorf("%w: object %s: %d bytes, header says %d", errdefs.ErrCorrupt, o.Checksum, n, h.Size)
	}
	return h, nil
}

// links writes the checkout's hard links to one content object (an empty
// regular file is written as itself: ostree-ext's rule).
func (w *chunkWriter) links(o ChunkObject, h *objects.FileHeader) error {
	for _, p := range o.Paths {
		l := tar.Header{Name: mapPath(p), Uid: int(h.UID), Gid: int(h.GID), Mode: int64(h.Mode &^ objects.ModeTypeMask)}
		if h.IsRegular() && h.Size == 0 {
			l.Typeflag = tar.TypeReg
		} else {
			l.Typeflag, l.Linkname = tar.TypeLink, objectPath(o.Checksum, "file")
		}
		if err := w.header(&l); err != nil {
			return err
		}
	}
	return nil
}

// xattrObjects writes, in checksum order, the distinct xattrs objects of
// the chunk's content objects.
func (w *chunkWriter) xattrObjects(chunk Chunk) error {
	byPath := map[string][]byte{}
	for _, o := range chunk.Objects {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		h, err := w.r.ReadFileHeader(o.Checksum)
		if err != nil {
			return err
		}
		xdata := objects.MarshalXattrs(h.Xattrs)
		byPath[objectPath(objects.Sum(xdata), "file-xattrs")] = xdata
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := w.data(p, byPath[p]); err != nil {
			return err
		}
	}
	return nil
}

// split flushes the tar stream to a record boundary and calls o.Split.
func (w *chunkWriter) split(o WriteOptions, kind SegmentKind, obj objects.Checksum) error {
	if o.Split == nil {
		return nil
	}
	if err := w.tw.Flush(); err != nil {
		return err
	}
	return o.Split(kind, obj)
}

// WriteChunk writes one layer of an export of commit as an uncompressed
// tar to out, in ostree-ext's format. The head comes first: with final,
// the commit layer's structure (the root, the repo skeleton, the commit,
// every dirtree and dirmeta and the checkout's directories), without, the
// repo skeleton; then the xattrs objects of chunk's content objects. Then
// each content object (its xattrs link and the object), and last the
// checkout's hard links to them. Every content object is read verified.
func WriteChunk(ctx context.Context, out io.Writer, r *repo.Repo, commit objects.Checksum, chunk Chunk, final bool, o WriteOptions) error {
	w := &chunkWriter{ctx: ctx, r: r, tw: tar.NewWriter(out), commit: commit,
		dirtrees: map[objects.Checksum]bool{}, dirmetas: map[objects.Checksum]bool{},
		content: map[objects.Checksum]bool{}}
	var err error
	if final {
		err = w.structure()
	} else {
		err = w.repoStructure()
	}
	if err != nil {
		return err
	}
	if err := w.xattrObjects(chunk); err != nil {
		return err
	}
	if err := w.split(o, SegmentHead, objects.Checksum{}); err != nil {
		return err
	}
	headers := make([]*objects.FileHeader, len(chunk.Objects))
	for i, obj := range chunk.Objects {
		if headers[i], err = w.contentObject(obj); err != nil {
			return err
		}
		if err := w.split(o, SegmentObject, obj.Checksum); err != nil {
			return err
		}
	}
	for i, obj := range chunk.Objects {
		if err := w.links(obj, headers[i]); err != nil {
			return err
		}
	}
	return w.tw.Close()
}
