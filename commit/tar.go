package commit

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
)

// What `ostree commit --tree=tar=FILE` (2022.7, libarchive 3.6) records,
// found by running it on crafted archives, and what AddTar does. "Same"
// means AddTar gives the same objects, so the same commit checksum.
//
//	input                            ostree 2022.7                         AddTar
//	-------------------------------  ------------------------------------  -----------------------------
//	owner                            numeric uid/gid of the header (PAX     same; uname/gname ignored
//	                                 uid/gid win), truncated to 32 bits
//	mode                             header perm bits | type from the       same, but perm bits outside
//	                                 typeflag (type bits in the field are   07777 are refused (a bare
//	                                 dropped; bits above 07777 are kept)    repo cannot store them)
//	root directory                   from an entry named ".", "./", "/"    same
//	no root entry                    "Can't commit an empty tree" unless    same (the error comes from
//	                                 another --tree gives the root           Write)
//	parent not in the archive        "No such file or directory: NAME"      refused, naming the entry
//	  --tar-autocreate-parents       root and EVERY parent on the path,    same (quirk included)
//	                                 existing or not, re-stamped 0755
//	                                 with the entry's raw uid/gid; no
//	                                 --owner-*/canonical applied to them
//	empty archive + autocreate       root 0755 0:0, filter applied         same
//	"./" prefixes, "a//b", "a/./b"   "." and empty components dropped      same
//	trailing slashes                 dropped                               same
//	absolute names "/a", "/../a"     made relative: leading "/" and "/.."  same (cannot leave the root)
//	                                 after a leading "/" are stripped
//	".." anywhere else               "Invalid uplink '..' in path"         refused
//	name longer than PATH_MAX        "Path ... is too long"                refused
//	invalid UTF-8 in a name          "Invalid UTF-8 in filename"           refused
//	duplicate file entries           the later one wins                    same
//	duplicate directory entries      later metadata wins, contents merge   same
//	file where a dir is, or reverse  error, or an assertion crash          refused
//	file as the root entry           empty-named entry in the root tree    refused
//	                                 (an invalid dirtree)
//	regular type with trailing "/"   a directory (old tar convention)      same
//	  and data (size > 0)            a directory; the data read as more    refused, naming the entry
//	                                 tar entries (hidden ones imported)    (no tree matches both readings)
//	type '7', '\0', unknown types    regular files (POSIX rule)            same; vendor types A-Z other
//	                                                                       than D, L, K, V, X refused
//	volume label 'V', global PAX 'g' skipped                               same
//	size of dir/symlink/device/      ignored (no data follows)             same
//	  ustar hard link entries
//	symlinks                         stored, never followed; an entry      same; an empty target or
//	                                 below a symlink has no parent dir     one of PATH_MAX or more is
//	                                 ("No such file or directory")         refused (ostree stores junk)
//	hard links ('1' entries)         deferred to the end: the link gets    same; a link to a link is
//	                                 the target's final object (same       refused (ostree's result
//	                                 checksum, so one object); a PAX       depends on hash order), as
//	                                 link with data replaces the target    are links out of the tree
//	link target missing or a dir     error                                 refused
//	link target with ".."            assertion crash (abort)               refused
//	device nodes, fifos              "Unsupported file type for path"      refused
//	xattrs SCHILY.xattr.*,           recorded in REVERSE record order      same; a name repeated with
//	  LIBARCHIVE.xattr.* (base64),   (libarchive prepends), duplicates     the same value kept once,
//	  RHT.security.selinux           kept                                  with another value refused
//	  ... in a bare repo             file objects keep that order, but     file xattrs sorted, so the
//	                                 fsck reads them back sorted: unless   object is valid; the checksum
//	                                 reverse order is sorted, ostree's     differs from ostree's (whose
//	                                 own fsck calls the object corrupt     repo fails fsck) only there
//	symlink mode in a bare or        the header's (0644, say) though the   0777, what the object reads
//	  bare-user-only repo
//	                                 symlink reads back 0777: fsck fails   back as; as above
//	--no-xattrs, bare-user-only      xattrs dropped                        same
//	--canonical-permissions          uid/gid 0, mode &= 0755 (not          same
//	                                 symlinks); xattrs KEPT
//	GNU sparse files                 expanded                              refused
//	damaged header checksum          "Damaged tar archive"                 refused
//	truncated data                   ostree spins forever                  refused
//	no end-of-archive blocks         accepted                              refused (looks truncated)
//	compression                      anything libarchive reads             gzip, zstd, bzip2; xz refused
//
// Limits that bound memory on hostile input: a PAX header of at most 1 MiB,
// a GNU long name of at most 64 KiB, xattr names of 255 bytes and values of
// 64 KiB (Linux's limits), paths of PATH_MAX (4096) bytes, which also
// bounds the depth of the tree.

// TarOptions tune AddTar.
type TarOptions struct {
	// AutocreateParents creates directories that are not in the archive
	// before their entries, as `ostree commit --tar-autocreate-parents`
	// does (see the table above for its quirk).
	AutocreateParents bool
	// Reporter counts files written; nil reports nothing.
	Reporter progress.Reporter
	// MaxBytes, when positive, caps the size of the (decompressed)
	// archive: a few bytes of gzip or zstd can declare terabytes.
	MaxBytes int64
	// Rewrite, when set, sees every entry's raw name and its path
	// components (and each hard link's target) before anything else is
	// done with the entry: it returns the components to use instead, skip
	// to drop the entry (its data is skipped), or an error that refuses
	// the archive naming the entry. OCI layers use it for /etc -> /usr/etc
	// and the API file systems whose contents are dropped.
	Rewrite func(name string, comps []string) (out []string, skip bool, err error)
	// ImplicitParents creates a missing parent directory as root:root
	// 0755 without touching existing ones (container layers may omit
	// parents); AutocreateParents's re-stamping quirk does not apply.
	ImplicitParents bool
}

// AddTar overlays a tar archive read from r onto m, writing its files to
// t. The archive may be plain or compressed with gzip, zstd or bzip2
// (detected by magic number). The result matches `ostree commit
// --tree=tar=` on the same archive, byte for byte.
//
// Untrusted archives are safe: no entry can land outside m, symlinks are
// stored and never followed, and memory is bounded whatever the archive
// declares. An archive AddTar refuses gives an error matching
// ErrInvalidTar that names the entry; m may then hold part of the archive
// and t must be aborted (nothing is published until t commits).
func AddTar(ctx context.Context, t *repo.Txn, m *MTree, r io.Reader, f Filter, opts TarOptions) error {
	rd, check, closer, err := decompress(r)
	if err != nil {
		return err
	}
	defer closer()
	if opts.MaxBytes > 0 {
		rd = &capReader{r: rd, left: opts.MaxBytes, max: opts.MaxBytes}
	}
	ti := &tarImport{
		ctx:      ctx,
		t:        t,
		r:        t.Repo(),
		root:     m,
		f:        f,
		opts:     opts,
		rep:      progress.OrNop(opts.Reporter),
		tr:       newTarReader(rd),
		deferred: map[string]*linkGroup{},
	}
	if ti.r.Mode() == repo.ModeBareUserOnly {
		ti.f.Canonical, ti.f.NoXattrs = true, true
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Workers())
	ti.g, ti.ctx = g, gctx
	err = ti.run()
	// A worker's failure cancels gctx; report it rather than the
	// cancellation it caused.
	if werr := g.Wait(); werr != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = werr
	}
	if err == nil {
		err = ti.linkDeferred()
	}
	if err == nil && opts.AutocreateParents && m.Meta == nil && m.lazyTree == nil {
		uid, gid, mode := ti.filter(0, 0, objects.ModeDir|0o755)
		m.Meta = &objects.DirMeta{UID: uid, GID: gid, Mode: mode}
	}
	if err == nil {
		err = check()
	}
	return err
}

// decompress sniffs the compression and returns the tar stream, and a
// check to run after the end-of-archive marker: it reads on a little, so
// that a compressed stream's own checksum is verified.
func decompress(r io.Reader) (rd io.Reader, check func() error, closer func(), err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(6)
	nop := func() {}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, nil, &tarError{offset: -1, msg: "reading gzip header", err: err}
		}
		return zr, drain("gzip", zr), nop, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return nil, nil, nil, &tarError{offset: -1, msg: "reading zstd header", err: err}
		}
		return zr, drain("zstd", zr), zr.Close, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		zr := bzip2.NewReader(br)
		return zr, drain("bzip2", zr), nop, nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, nil, nil, &tarError{offset: -1, msg: "xz-compressed archives are not supported: decompress first (xz -d)"}
	}
	return br, func() error { return nil }, nop, nil
}

// maxTrailing is how much of a compressed stream is read past the tar's
// end to reach its checksum; tar pads to 10 KiB records, so 16 MiB is
// plenty, and more is ignored rather than decompressed.
const maxTrailing = 16 << 20

func drain(kind string, r io.Reader) func() error {
	return func() error {
		_, err := io.CopyN(io.Discard, r, maxTrailing)
		if err != nil && err != io.EOF {
			return &tarError{offset: -1, msg: kind + " stream after the end of the archive", err: err}
		}
		return nil
	}
}

// capReader fails once more than max bytes have been read.
type capReader struct {
	r         io.Reader
	left, max int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("the archive is larger than the %d-byte limit", c.max)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

type tarImport struct {
	ctx  context.Context
	t    *repo.Txn
	r    *repo.Repo
	root *MTree
	f    Filter
	opts TarOptions
	rep  progress.Reporter
	tr   *tarReader
	g    *errgroup.Group

	deferred map[string]*linkGroup // by target path
	order    []string              // targets, first seen first
}

// linkGroup is the hard links to one target, resolved after the last entry.
type linkGroup struct {
	target []string
	links  []deferredLink
}

type deferredLink struct {
	e      *tarEntry
	parent *MTree
	name   string
}

func (ti *tarImport) filter(uid, gid, mode uint32) (uint32, uint32, uint32) {
	if ti.f.OwnerUID != nil {
		uid = *ti.f.OwnerUID
	}
	if ti.f.OwnerGID != nil {
		gid = *ti.f.OwnerGID
	}
	if ti.f.Canonical {
		uid, gid = 0, 0
		if mode&objects.ModeTypeMask != objects.ModeSymlink {
			mode &= objects.ModeTypeMask | 0o755
		}
	}
	return uid, gid, mode
}

func entryErr(e *tarEntry, format string, a ...any) error {
	return &tarError{name: e.name, offset: e.offset, msg: fmt.Sprintf(format, a...)}
}

func wrapEntryErr(e *tarEntry, err error) error {
	var te *tarError
	if errors.As(err, &te) {
		return te // the archive's fault: say only that
	}
	return &tarError{name: e.name, offset: e.offset, msg: "writing", err: err, local: true}
}

// Entry kinds after libarchive's classification.
const (
	kindReg = iota
	kindDir
	kindSymlink
	kindHardlink
)

func classify(e *tarEntry) (int, error) {
	switch e.typ {
	case '0', 0, '7':
	case '1':
		return kindHardlink, nil
	case '2':
		return kindSymlink, nil
	case '5', 'D':
		return kindDir, nil
	case '3':
		return 0, entryErr(e, "unsupported file type: character device (only regular files, symlinks and directories can be committed)")
	case '4':
		return 0, entryErr(e, "unsupported file type: block device (only regular files, symlinks and directories can be committed)")
	case '6':
		return 0, entryErr(e, "unsupported file type: fifo (only regular files, symlinks and directories can be committed)")
	case 'S':
		return 0, entryErr(e, "sparse files are not supported")
	default:
		if e.typ >= 'A' && e.typ <= 'Z' {
			return 0, entryErr(e, "unsupported tar entry type %q", rune(e.typ))
		}
		// POSIX: unknown types are regular files.
	}
	if strings.HasSuffix(e.name, "/") {
		// Old tars mark directories this way. One that carries data is
		// refused: libarchive (so ostree) takes the entry for a directory
		// with no data and reads the data as more entries, which a
		// reader that skips it never sees; no tree is the same for both.
		if e.size > 0 {
			return 0, entryErr(e, "regular-file entry with a trailing \"/\" carries %d bytes of data (ostree would read them as further tar entries): refused", e.size)
		}
		return kindDir, nil
	}
	return kindReg, nil
}

// tarPath turns an entry name into path components as OSTree does: leading
// "/" (and "/.." right after one) stripped, "." and empty components
// dropped; ".." elsewhere, over-long paths and invalid UTF-8 refused. The
// result always names something inside the root.
func tarPath(name string) ([]string, error) {
	src := name
	for strings.HasPrefix(src, "/") {
		src = src[1:]
		if strings.HasPrefix(src, "../") {
			src = src[2:]
		}
	}
	if len(src) > maxPathLen {
		return nil, fmt.Errorf("path is %d bytes, longer than PATH_MAX (%d)", len(src), maxPathLen)
	}
	var comps []string
	for c := range strings.SplitSeq(src, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return nil, errors.New(`invalid ".." component in path`)
		}
		if !utf8.ValidString(c) {
			return nil, fmt.Errorf("invalid UTF-8 in file name %q", c)
		}
		comps = append(comps, c)
	}
	return comps, nil
}

// child looks name up in d: a file's slot or a subdirectory.
func (ti *tarImport) child(d *MTree, name string) (*objects.Checksum, *MTree, error) {
	if err := d.expand(ti.r); err != nil {
		return nil, nil, err
	}
	return d.files[name], d.dirs[name], nil
}

func (ti *tarImport) run() error {
	if err := ti.root.expand(ti.r); err != nil {
		return err
	}
	for {
		if err := ti.ctx.Err(); err != nil {
			return err
		}
		e, err := ti.tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ti.entry(e); err != nil {
			return err
		}
	}
}

func (ti *tarImport) entry(e *tarEntry) error {
	comps, err := tarPath(e.name)
	if err != nil {
		return entryErr(e, "%v", err)
	}
	if ti.opts.Rewrite != nil {
		out, skip, err := ti.opts.Rewrite(e.name, comps)
		if err != nil {
			return entryErr(e, "%v", err)
		}
		if skip {
			return nil
		}
		comps = out
	}
	kind, err := classify(e)
	if err != nil {
		return err
	}
	perm := e.mode &^ objects.ModeTypeMask
	if perm&^0o7777 != 0 {
		return entryErr(e, "mode %#o has bits outside 07777", e.mode)
	}
	var typeBits int64 = objects.ModeRegular // hard links too, as OSTree
	switch kind {
	case kindDir:
		typeBits = objects.ModeDir
	case kindSymlink:
		typeBits = objects.ModeSymlink
	}
	uid, gid, mode := ti.filter(uint32(e.uid), uint32(e.gid), uint32(perm|typeBits))
	xattrs := e.xattrs
	if ti.f.NoXattrs {
		xattrs = nil
	}
	if len(comps) == 0 {
		if kind != kindDir {
			return entryErr(e, "the root of the tree must be a directory")
		}
		ti.root.Meta = &objects.DirMeta{UID: uid, GID: gid, Mode: mode, Xattrs: xattrs}
		return nil
	}
	parent, err := ti.parent(e, comps)
	if err != nil {
		return err
	}
	name := comps[len(comps)-1]
	slot, sub, err := ti.child(parent, name)
	if err != nil {
		return wrapEntryErr(e, err)
	}
	switch kind {
	case kindDir:
		if slot != nil {
			return entryErr(e, "cannot replace the file %q with a directory", strings.Join(comps, "/"))
		}
		if _, err := parent.Dir(ti.r, name, &objects.DirMeta{UID: uid, GID: gid, Mode: mode, Xattrs: xattrs}); err != nil {
			return wrapEntryErr(e, err)
		}
		return nil
	case kindHardlink:
		target, err := ti.linkTarget(e)
		if err != nil {
			return err
		}
		if len(target) == 0 {
			return entryErr(e, "hard link to the root directory")
		}
		key := strings.Join(target, "/")
		grp := ti.deferred[key]
		if grp == nil {
			grp = &linkGroup{target: target}
			ti.deferred[key] = grp
			ti.order = append(ti.order, key)
		}
		grp.links = append(grp.links, deferredLink{e: e, parent: parent, name: name})
		if e.size == 0 {
			if sub != nil {
				return entryErr(e, "cannot replace the directory %q with a file", strings.Join(comps, "/"))
			}
			return nil
		}
		// A PAX hard link with data: imported like a file, and its
		// object replaces the target's at the end.
	}
	if sub != nil {
		return entryErr(e, "cannot replace the directory %q with a file", strings.Join(comps, "/"))
	}
	if kind == kindSymlink && (ti.r.Mode() == repo.ModeBare || ti.r.Mode() == repo.ModeBareUserOnly) {
		// Likewise a bare (or bare-user-only) repo's symlink object is a
		// symlink, whose mode reads back as 0777 whatever the archive said.
		mode = objects.ModeSymlink | 0o777
	}
	if len(xattrs) > 1 && ti.r.Mode() == repo.ModeBare {
		// A bare repo keeps xattrs on the object file itself, and reading
		// them back gives them sorted: unsorted, the object would fail
		// fsck (ostree writes it so, and its own fsck then fails).
		xattrs = append(objects.Xattrs(nil), xattrs...)
		xattrs.Sort()
	}
	h := &objects.FileHeader{UID: uid, GID: gid, Mode: mode, Xattrs: xattrs}
	if kind == kindSymlink {
		if e.linkname == "" {
			return entryErr(e, "symlink with an empty target")
		}
		if len(e.linkname) >= maxPathLen {
			return entryErr(e, "symlink target is %d bytes, PATH_MAX (%d) or more", len(e.linkname), maxPathLen)
		}
		h.Target = e.linkname
	} else {
		h.Size = uint64(e.size)
	}
	newSlot, err := parent.SetFile(ti.r, name)
	if err != nil {
		return wrapEntryErr(e, err)
	}
	return ti.writeFile(e, h, newSlot)
}

// writeFile stores one file object. Small contents are read here, in
// archive order, and hashed and written by a worker; large ones stream.
func (ti *tarImport) writeFile(e *tarEntry, h *objects.FileHeader, slot *objects.Checksum) error {
	if h.IsRegular() && h.Size > smallTarFile {
		c, err := ti.t.WriteFile(h, ti.tr)
		if err != nil {
			return wrapEntryErr(e, err)
		}
		*slot = c
		ti.rep.Add(1)
		return nil
	}
	var data []byte
	if h.IsRegular() && h.Size > 0 {
		data = make([]byte, h.Size)
		if _, err := io.ReadFull(ti.tr, data); err != nil {
			return wrapEntryErr(e, err)
		}
	}
	ti.g.Go(func() error {
		c, err := ti.t.WriteFile(h, bytes.NewReader(data))
		if err != nil {
			return wrapEntryErr(e, err)
		}
		*slot = c
		ti.rep.Add(1)
		return nil
	})
	return nil
}

// smallTarFile is the largest content buffered for a worker; with the
// worker bound it caps the memory in flight.
const smallTarFile = 1 << 20

// parent returns the directory that will hold the entry comps, which must
// exist unless AutocreateParents is set.
func (ti *tarImport) parent(e *tarEntry, comps []string) (*MTree, error) {
	d := ti.root
	for i, c := range comps[:len(comps)-1] {
		slot, sub, err := ti.child(d, c)
		if err != nil {
			return nil, wrapEntryErr(e, err)
		}
		if sub != nil {
			d = sub
			continue
		}
		p := strings.Join(comps[:i+1], "/")
		if slot != nil {
			return nil, entryErr(e, "%q is not a directory (a file or symlink; symlinks are never followed)", p)
		}
		if ti.opts.ImplicitParents {
			if d, err = d.Dir(ti.r, c, &objects.DirMeta{Mode: objects.ModeDir | 0o755}); err != nil {
				return nil, wrapEntryErr(e, err)
			}
			continue
		}
		if !ti.opts.AutocreateParents {
			return nil, entryErr(e, "parent directory %q is not in the archive before this entry (--tar-autocreate-parents creates it)", p)
		}
		return ti.autocreate(e, comps)
	}
	return d, nil
}

// autocreate does what OSTree does when a parent is missing: it re-stamps
// the root and every directory on the path, existing or not, with mode
// 0755 and the entry's own uid and gid, unfiltered.
func (ti *tarImport) autocreate(e *tarEntry, comps []string) (*MTree, error) {
	meta := func() *objects.DirMeta {
		return &objects.DirMeta{UID: uint32(e.uid), GID: uint32(e.gid), Mode: objects.ModeDir | 0o755}
	}
	ti.root.Meta = meta()
	d := ti.root
	for i, c := range comps[:len(comps)-1] {
		slot, _, err := ti.child(d, c)
		if err != nil {
			return nil, wrapEntryErr(e, err)
		}
		if slot != nil {
			return nil, entryErr(e, "%q is not a directory (a file or symlink; symlinks are never followed)", strings.Join(comps[:i+1], "/"))
		}
		if d, err = d.Dir(ti.r, c, meta()); err != nil {
			return nil, wrapEntryErr(e, err)
		}
	}
	return d, nil
}

// linkDeferred resolves hard links once every entry is in: first a link
// that carried data replaces its target, then every target is looked up,
// then every link gets its target's object.
func (ti *tarImport) linkDeferred() error {
	for _, key := range ti.order {
		grp := ti.deferred[key]
		for _, l := range grp.links {
			if l.e.size == 0 {
				continue
			}
			c, _, err := ti.child(l.parent, l.name)
			if err != nil || c == nil {
				return entryErr(l.e, "hard link with data was replaced by a directory")
			}
			d, name, err := ti.lookupParent(l.e, grp.target)
			if err != nil {
				return err
			}
			if _, sub, _ := ti.child(d, name); sub != nil {
				return entryErr(l.e, "hard link target %q is a directory", key)
			}
			slot, err := d.SetFile(ti.r, name)
			if err != nil {
				return wrapEntryErr(l.e, err)
			}
			*slot = *c
			break
		}
	}
	isLink := map[string]bool{}
	for _, key := range ti.order {
		for _, l := range ti.deferred[key].links {
			if l.e.size == 0 {
				isLink[ti.pathOf(l)] = true
			}
		}
	}
	sums := make([]objects.Checksum, len(ti.order))
	for i, key := range ti.order {
		grp := ti.deferred[key]
		e := grp.links[0].e
		if isLink[key] {
			return entryErr(e, "hard link target %q is itself a hard link", key)
		}
		d, name, err := ti.lookupParent(e, grp.target)
		if err != nil {
			return err
		}
		c, sub, err := ti.child(d, name)
		if err != nil {
			return wrapEntryErr(e, err)
		}
		if sub != nil {
			return entryErr(e, "hard link target %q is a directory", key)
		}
		if c == nil {
			return entryErr(e, "hard link target %q is not a file in the archive", key)
		}
		sums[i] = *c
	}
	for i, key := range ti.order {
		for _, l := range ti.deferred[key].links {
			_, sub, err := ti.child(l.parent, l.name)
			if err != nil {
				return wrapEntryErr(l.e, err)
			}
			if sub != nil {
				return entryErr(l.e, "cannot replace a directory with a hard link")
			}
			slot, err := l.parent.SetFile(ti.r, l.name)
			if err != nil {
				return wrapEntryErr(l.e, err)
			}
			*slot = sums[i]
		}
	}
	return nil
}

// pathOf is the path key of a link entry (its name as tarPath and
// Rewrite read it).
func (ti *tarImport) pathOf(l deferredLink) string {
	comps, _ := tarPath(l.e.name)
	if ti.opts.Rewrite != nil {
		comps, _, _ = ti.opts.Rewrite(l.e.name, comps)
	}
	return strings.Join(comps, "/")
}

// linkTarget is a hard link's target as path components, rewritten as
// entry names are.
func (ti *tarImport) linkTarget(e *tarEntry) ([]string, error) {
	target, err := tarPath(e.linkname)
	if err != nil {
		return nil, entryErr(e, "hard link target %q: %v", e.linkname, err)
	}
	if ti.opts.Rewrite != nil {
		out, skip, err := ti.opts.Rewrite(e.linkname, target)
		if err != nil {
			return nil, entryErr(e, "hard link target %q: %v", e.linkname, err)
		}
		if skip {
			return nil, entryErr(e, "hard link target %q is a path whose contents are dropped", e.linkname)
		}
		target = out
	}
	return target, nil
}

// lookupParent walks existing directories to the one holding path.
func (ti *tarImport) lookupParent(e *tarEntry, path []string) (*MTree, string, error) {
	d := ti.root
	for i, c := range path[:len(path)-1] {
		_, sub, err := ti.child(d, c)
		if err != nil {
			return nil, "", wrapEntryErr(e, err)
		}
		if sub == nil {
			return nil, "", entryErr(e, "hard link target directory %q does not exist", strings.Join(path[:i+1], "/"))
		}
		d = sub
	}
	return d, path[len(path)-1], nil
}
