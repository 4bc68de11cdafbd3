package repo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
	"golang.org/x/sync/errgroup"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
)

// FsckOptions adjust Fsck.
type FsckOptions struct {
	// Delete removes objects found corrupt (never anything else: not
	// missing objects, refs, or objects that merely fail a binding check)
	// and marks the commits that needed them partial, as `ostree fsck
	// --delete` does, so that a later pull fetches them again.
	Delete bool
	// All also verifies objects that no commit reaches. (Fsck never stops
	// at the first problem; ostree's --all means that.)
	All bool
	// VerifyBindings checks each ref's commit against the ref: a commit
	// carrying ostree.ref-binding must list the ref's name; a ref of a
	// collection (refs/mirrors, or refs/heads in a repository with
	// core.collection-id) needs both bindings, naming that collection.
	VerifyBindings bool
	// VerifyBackRefs checks that every ref a commit's ostree.ref-binding
	// lists exists and points at that commit. It implies VerifyBindings.
	VerifyBackRefs bool
	// Progress receives phase "fsck", unit "objects" (may be nil).
	Progress progress.Reporter
}

// Problem is one thing fsck found wrong: an object (Object set) or a ref
// (Ref set).
type Problem struct {
	Object string // "CHECKSUM.KIND" of the object at fault
	Ref    string // the ref at fault, as users write it ("main", "origin:main")
	// Err says what is wrong; it wraps ErrNotFound for a missing object,
	// ErrCorrupt for an object whose bytes are wrong (a checksum mismatch
	// or a malformed object), ErrInvalid for a binding that does not
	// match. A read that failed (EIO, EACCES) is none of these: it says
	// nothing about the object, which Delete leaves alone.
	Err error
	// Commits lists the commits whose trees contain the object.
	Commits []objects.Checksum
	// Deleted is set when Delete removed the object.
	Deleted bool
}

// String renders the problem as one line naming the object or ref, e.g.
// "object 64c9…ea.file (in commit 1f2e…): checksum mismatch: content has
// checksum 0b7d…".
func (p Problem) String() string {
	var b strings.Builder
	if p.Ref != "" {
		b.WriteString("ref " + p.Ref)
	} else {
		b.WriteString("object " + p.Object)
	}
	if len(p.Commits) > 0 {
		s := make([]string, len(p.Commits))
		for i, c := range p.Commits {
			s[i] = c.String()
		}
		if len(s) == 1 {
			b.WriteString(" (in commit " + s[0] + ")")
		} else {
			b.WriteString(" (in commits " + strings.Join(s, ", ") + ")")
		}
	}
	b.WriteString(": ")
	b.WriteString(p.message())
	if p.Deleted {
		b.WriteString(" (deleted)")
	}
	return b.String()
}

// message is Err's text without the sentinel's prefix and without
// repeating the object's name, which String already gives.
func (p Problem) message() string {
	msg := p.Err.Error()
	for _, s := range []error{ErrCorrupt, ErrNotFound, ErrInvalid} {
		msg = strings.TrimPrefix(msg, s.Error()+": ")
	}
	if p.Object != "" {
		msg = strings.ReplaceAll(msg, "object "+p.Object+": ", "")
		msg = strings.ReplaceAll(msg, "object "+p.Object+" ", "")
	}
	return msg
}

// FsckReport is the outcome of Fsck.
type FsckReport struct {
	Commits  int // commit objects in the repository
	Objects  int // distinct objects verified
	Problems []Problem
	// Partial lists the commits marked partial (state/CHECKSUM.commitpartial)
	// when Fsck started: a pull was interrupted, or an earlier fsck found
	// their trees damaged. Their present objects are verified; their
	// missing objects are not problems.
	Partial []objects.Checksum
	// FsckPartial is the part of Partial that an earlier fsck marked,
	// because objects they need were missing or corrupt. Until a pull
	// completes them, they are an error, as in ostree.
	FsckPartial []objects.Checksum
	// MarkedPartial lists the commits this run marked partial because
	// objects of their trees are missing or were deleted.
	MarkedPartial []objects.Checksum
}

// OK reports whether the repository passed: no problem, and no commit
// left damaged by an earlier fsck.
func (r FsckReport) OK() bool { return len(r.Problems) == 0 && len(r.FsckPartial) == 0 }

// fsckPartialReason is the byte ostree writes into a commitpartial file
// when fsck (not an interrupted pull) made the commit partial.
const fsckPartialReason = 'f'

// Fsck verifies the repository as `ostree fsck` does: every ref names a
// stored commit; every commit object, and every dirtree, dirmeta and file
// object a commit reaches, is present, well-formed, and hashes to its name
// (metadata: SHA-256 of its bytes; files: of header and content, after
// decompression in archive mode). Each object is verified once however
// many trees share it; file contents stream through SHA-256 on one worker
// per CPU while the trees are walked. A missing object, or one Delete
// removed, marks the commits that need it partial (ostree's "fsck" reason),
// so that pulling them again repairs the repository.
//
// Problems with the repository are reported in FsckReport; the error is for
// failures to run (I/O, cancellation). Fsck takes the repo lock shared,
// like a transaction, so prune cannot delete objects under it.
func (r *Repo) Fsck(ctx context.Context, o FsckOptions) (FsckReport, error) {
	lock, err := r.lockShared(ctx)
	if err != nil {
		return FsckReport{}, err
	}
	defer lock.Unlock()
	if o.VerifyBackRefs {
		o.VerifyBindings = true
	}
	rep := progress.OrNop(o.Progress)
	f := &fsck{r: r, o: o, rep: rep, seen: map[ObjectRef]bool{}, probs: map[ObjectRef]int{}}

	refs, err := r.ListRefs()
	if err != nil {
		return FsckReport{}, err
	}
	for _, ref := range refs {
		ok, err := r.HasObject(objects.KindCommit, ref.Checksum)
		if err != nil {
			return FsckReport{}, err
		}
		if !ok {
			f.report.Problems = append(f.report.Problems, Problem{Ref: ref.Name,
				Err: fmt.Errorf("%w: its commit %s is missing", ErrNotFound, ref.Checksum)})
		}
	}

	var commits []objects.Checksum
	var all []ObjectRef
	err = r.ListObjects(func(ref ObjectRef) error {
		switch {
		case ref.Kind == objects.KindCommit:
			commits = append(commits, ref.Checksum)
		case o.All && ref.Kind != objects.KindTombstone:
			all = append(all, ref)
		}
		return nil
	}, nil)
	if err != nil {
		return FsckReport{}, err
	}
	f.report.Commits = len(commits)
	partial := map[objects.Checksum]bool{}
	for _, c := range commits {
		reason, ok, err := r.partialReason(c)
		if err != nil {
			return FsckReport{}, err
		}
		if ok {
			partial[c] = true
			f.report.Partial = append(f.report.Partial, c)
			if reason == fsckPartialReason {
				f.report.FsckPartial = append(f.report.FsckPartial, c)
			}
		}
	}
	// Complete commits first: an object shared with a partial commit is
	// then checked as one that must be present.
	slices.SortFunc(commits, func(a, b objects.Checksum) int {
		if partial[a] != partial[b] {
			if partial[a] {
				return 1
			}
			return -1
		}
		return strings.Compare(a.String(), b.String())
	})
	slices.SortFunc(f.report.Partial, compareChecksums)
	slices.SortFunc(f.report.FsckPartial, compareChecksums)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, runtime.GOMAXPROCS(0)))
	f.g, f.ctx = g, gctx
	rep.Phase("fsck", "objects", 0)
	for _, c := range commits {
		if gctx.Err() != nil {
			break
		}
		f.commit(c, partial[c])
	}
	for _, ref := range all {
		if gctx.Err() != nil {
			break
		}
		if !f.mark(ref) {
			continue
		}
		if ref.Kind == objects.KindFile {
			f.queueFile(ref.Checksum, false)
		} else {
			f.meta(ref.Kind, ref.Checksum, false)
		}
	}
	err = g.Wait()
	rep.Done()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return FsckReport{}, err
	}

	if o.VerifyBindings {
		for _, ref := range refs {
			f.checkBindings(ref)
		}
	}
	if o.VerifyBackRefs {
		for _, c := range commits {
			f.checkBackRefs(c)
		}
	}
	if err := f.attribute(ctx, commits, partial); err != nil {
		return FsckReport{}, err
	}
	slices.SortFunc(f.report.Problems, func(a, b Problem) int {
		if c := strings.Compare(a.Ref, b.Ref); c != 0 {
			return c
		}
		return strings.Compare(a.Object, b.Object)
	})
	return f.report, nil
}

func compareChecksums(a, b objects.Checksum) int { return strings.Compare(a.String(), b.String()) }

// partialReason reads c's commitpartial marker: whether there is one, and
// its first byte (0 for an empty marker, as an interrupted pull leaves).
func (r *Repo) partialReason(c objects.Checksum) (byte, bool, error) {
	data, err := os.ReadFile(filepath.Join(r.path, "state", c.String()+".commitpartial"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if len(data) == 0 {
		return 0, true, nil
	}
	return data[0], true, nil
}

// markFsckPartial durably marks c partial with ostree's "fsck" reason.
func (r *Repo) markFsckPartial(c objects.Checksum) error {
	dir := filepath.Join(r.path, "state")
	if err := fsutil.MkdirAllSync(dir, 0o755); err != nil {
		return err
	}
	return fsutil.WriteFile(filepath.Join(dir, c.String()+".commitpartial"), []byte{fsckPartialReason}, 0o644)
}

type fsck struct {
	r   *Repo
	o   FsckOptions
	rep progress.Reporter
	g   *errgroup.Group
	ctx context.Context

	mu     sync.Mutex
	seen   map[ObjectRef]bool
	probs  map[ObjectRef]int // index in report.Problems of an object's problem
	report FsckReport
}

// mark records ref as visited; false if it already was.
func (f *fsck) mark(ref ObjectRef) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen[ref] {
		return false
	}
	f.seen[ref] = true
	f.report.Objects++
	return true
}

// problem records that object ref failed with err, unless it is merely
// missing from a partial commit; with Delete, a corrupt object is removed.
func (f *fsck) problem(ref ObjectRef, err error, partial bool) {
	if err == nil || (partial && errors.Is(err, ErrNotFound)) {
		return
	}
	p := Problem{Object: ObjectName(ref.Kind, ref.Checksum), Err: err}
	if f.o.Delete && errors.Is(err, ErrCorrupt) {
		if rerr := os.Remove(f.r.ObjectPath(ref.Kind, ref.Checksum)); rerr == nil {
			p.Deleted = true
		}
	}
	f.mu.Lock()
	f.probs[ref] = len(f.report.Problems)
	f.report.Problems = append(f.report.Problems, p)
	f.mu.Unlock()
}

func (f *fsck) commit(c objects.Checksum, partial bool) {
	if !f.mark(ObjectRef{objects.KindCommit, c}) {
		return
	}
	f.rep.Add(1)
	v, err := f.r.fsckMeta(objects.KindCommit, c)
	if err != nil {
		f.problem(ObjectRef{objects.KindCommit, c}, err, false)
		return
	}
	cm := v.(*objects.Commit)
	if ok, _ := f.r.HasObject(objects.KindCommitMeta, c); ok && f.mark(ObjectRef{objects.KindCommitMeta, c}) {
		f.meta(objects.KindCommitMeta, c, false)
	}
	if f.mark(ObjectRef{objects.KindDirMeta, cm.RootMeta}) {
		f.meta(objects.KindDirMeta, cm.RootMeta, partial)
	}
	f.tree(cm.RootTree, partial)
}

// meta verifies a dirmeta (or, with All, any metadata object).
func (f *fsck) meta(kind objects.Kind, c objects.Checksum, partial bool) {
	f.rep.Add(1)
	_, err := f.r.fsckMeta(kind, c)
	f.problem(ObjectRef{kind, c}, err, partial)
}

func (f *fsck) tree(c objects.Checksum, partial bool) {
	if f.ctx.Err() != nil || !f.mark(ObjectRef{objects.KindDirTree, c}) {
		return
	}
	f.rep.Add(1)
	v, err := f.r.fsckMeta(objects.KindDirTree, c)
	if err != nil {
		f.problem(ObjectRef{objects.KindDirTree, c}, err, partial)
		return
	}
	dt := v.(*objects.DirTree)
	for _, file := range dt.Files {
		if f.mark(ObjectRef{objects.KindFile, file.Checksum}) {
			f.queueFile(file.Checksum, partial)
		}
	}
	for _, d := range dt.Dirs {
		if f.mark(ObjectRef{objects.KindDirMeta, d.Meta}) {
			f.meta(objects.KindDirMeta, d.Meta, partial)
		}
		f.tree(d.Tree, partial)
	}
}

// queueFile verifies a file object on a worker; it blocks while every
// worker is busy, which bounds the walk's lead.
func (f *fsck) queueFile(c objects.Checksum, partial bool) {
	f.g.Go(func() error {
		if err := f.ctx.Err(); err != nil {
			return err
		}
		f.problem(ObjectRef{objects.KindFile, c}, f.r.fsckFile(c), partial)
		f.rep.Add(1)
		return nil
	})
}

// errMissing is what fsck reports for an object that is not stored.
var errMissing = fmt.Errorf("%w: missing", ErrNotFound)

// fsckMeta reads a metadata object, checks its checksum and parses it:
// *objects.Commit, *objects.DirTree, *objects.DirMeta or objects.Metadata.
func (r *Repo) fsckMeta(kind objects.Kind, c objects.Checksum) (any, error) {
	fh, err := openObject(r.ObjectPath(kind, c))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errMissing
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, objects.MaxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(data) > objects.MaxMetadataSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, objects.MaxMetadataSize)
	}
	// A commitmeta is named after its commit, not after its own bytes.
	if kind != objects.KindCommitMeta {
		if got := objects.Sum(data); got != c {
			return nil, fmt.Errorf("%w: checksum mismatch: content has checksum %s", ErrCorrupt, got)
		}
	}
	switch kind {
	case objects.KindCommit:
		return objects.ParseCommit(data)
	case objects.KindDirTree:
		return objects.ParseDirTree(data)
	case objects.KindDirMeta:
		return objects.ParseDirMeta(data)
	case objects.KindCommitMeta:
		return objects.ParseMetadata(data)
	}
	return nil, fmt.Errorf("%w: fsck of %s objects", ErrInvalid, kind)
}

var fsckBufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// fsckFile streams a file object's header and content through SHA-256
// and compares the sum with its name.
func (r *Repo) fsckFile(c objects.Checksum) error {
	if r.mode == ModeArchive {
		return r.fsckArchiveFile(c)
	}
	h, rc, err := r.OpenFile(c)
	if errors.Is(err, ErrNotFound) {
		return errMissing
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	return hashFileObject(c, h, rc, nil)
}

// inflater is a reusable decompressor for .filez objects: tens of
// thousands of small objects would otherwise each allocate a fresh one.
type inflater struct {
	br *bufio.Reader
	fr io.ReadCloser
}

var inflaterPool = sync.Pool{New: func() any { return &inflater{br: bufio.NewReaderSize(nil, 64<<10)} }}

// fsckArchiveFile verifies a .filez object: its header, then its content
// inflated and hashed.
func (r *Repo) fsckArchiveFile(c objects.Checksum) error {
	f, err := openObject(r.ObjectPath(objects.KindFile, c))
	if errors.Is(err, os.ErrNotExist) {
		return errMissing
	}
	if err != nil {
		return err
	}
	defer f.Close()
	inf := inflaterPool.Get().(*inflater)
	defer inflaterPool.Put(inf)
	src := &srcReader{r: f}
	inf.br.Reset(src)
	h, err := objects.ReadArchiveHeader(inf.br)
	if err != nil {
		return corruptOr(src, ObjectName(objects.KindFile, c), err)
	}
	if inf.fr == nil {
		inf.fr = flate.NewReader(inf.br)
	} else if err := inf.fr.(flate.Resetter).Reset(inf.br, nil); err != nil {
		return err
	}
	return hashFileObject(c, h, io.LimitReader(inf.fr, int64(h.Size)), src)
}

// hashFileObject hashes header h and the content read from rc, which must
// be exactly h.Size bytes, and compares the sum with c. src is the file
// under a decompressor (nil when rc reads the file itself): its read
// errors, and rc's when it is the file, are not corruption.
func hashFileObject(c objects.Checksum, h *objects.FileHeader, rc io.Reader, src *srcReader) error {
	if src == nil {
		src = &srcReader{r: rc}
		rc = src
	}
	hs := sha256.New()
	hs.Write(h.Marshal())
	bp := fsckBufPool.Get().(*[]byte)
	defer fsckBufPool.Put(bp)
	buf := *bp
	var n uint64
	for {
		k, err := rc.Read(buf)
		hs.Write(buf[:k])
		n += uint64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return corruptOr(src, ObjectName(objects.KindFile, c), err)
		}
	}
	if n != h.Size {
		return fmt.Errorf("%w: content ends after %d of %d bytes", ErrCorrupt, n, h.Size)
	}
	var got objects.Checksum
	hs.Sum(got[:0])
	if got != c {
		return fmt.Errorf("%w: checksum mismatch: content has checksum %s", ErrCorrupt, got)
	}
	return nil
}

// attribute names, for each problem with a tree object, the commits whose
// trees contain it, and marks partial (with the "fsck" reason) every
// complete commit that needs an object now missing or deleted. It walks
// the dirtrees again, so it costs nothing when there is no such problem.
func (f *fsck) attribute(ctx context.Context, commits []objects.Checksum, partial map[objects.Checksum]bool) error {
	damaged := map[ObjectRef]int{}
	for ref, i := range f.probs {
		if ref.Kind != objects.KindCommit && ref.Kind != objects.KindCommitMeta {
			damaged[ref] = i
		}
	}
	if len(damaged) == 0 {
		return nil
	}
	memo := map[objects.Checksum][]ObjectRef{}
	var under func(tree objects.Checksum) []ObjectRef
	under = func(tree objects.Checksum) []ObjectRef {
		if v, ok := memo[tree]; ok {
			return v
		}
		set := map[ObjectRef]bool{}
		if _, ok := damaged[ObjectRef{objects.KindDirTree, tree}]; ok {
			set[ObjectRef{objects.KindDirTree, tree}] = true
		}
		if dt, err := f.r.ReadDirTree(tree); err == nil {
			for _, file := range dt.Files {
				if _, ok := damaged[ObjectRef{objects.KindFile, file.Checksum}]; ok {
					set[ObjectRef{objects.KindFile, file.Checksum}] = true
				}
			}
			for _, d := range dt.Dirs {
				if _, ok := damaged[ObjectRef{objects.KindDirMeta, d.Meta}]; ok {
					set[ObjectRef{objects.KindDirMeta, d.Meta}] = true
				}
				for _, ref := range under(d.Tree) {
					set[ref] = true
				}
			}
		}
		out := make([]ObjectRef, 0, len(set))
		for ref := range set {
			out = append(out, ref)
		}
		memo[tree] = out
		return out
	}
	for _, c := range commits {
		if err := ctx.Err(); err != nil {
			return err
		}
		cm, err := f.r.ReadCommit(c)
		if err != nil {
			continue // reported, or deleted, already
		}
		refs := under(cm.RootTree)
		if _, ok := damaged[ObjectRef{objects.KindDirMeta, cm.RootMeta}]; ok {
			refs = append(refs, ObjectRef{objects.KindDirMeta, cm.RootMeta})
		}
		needsPull := false
		for _, ref := range refs {
			p := &f.report.Problems[damaged[ref]]
			if !slices.Contains(p.Commits, c) {
				p.Commits = append(p.Commits, c)
			}
			if p.Deleted || errors.Is(p.Err, ErrNotFound) {
				needsPull = true
			}
		}
		if needsPull && !partial[c] {
			if err := f.r.markFsckPartial(c); err != nil {
				return fmt.Errorf("mark commit %s partial: %w", c, err)
			}
			f.report.MarkedPartial = append(f.report.MarkedPartial, c)
		}
	}
	for _, i := range damaged {
		slices.SortFunc(f.report.Problems[i].Commits, compareChecksums)
	}
	return nil
}

// bindingRef splits a ref path into the name a commit's ref binding would
// give and the collection it belongs to ("" for none).
func (r *Repo) bindingRef(path string) (name, collection string) {
	kind, rest, _ := strings.Cut(path, "/")
	switch kind {
	case "remotes":
		_, name, _ = strings.Cut(rest, "/")
		return name, ""
	case "mirrors":
		collection, name, _ = strings.Cut(rest, "/")
		return name, collection
	}
	return rest, ""
}

func (f *fsck) checkBindings(ref Ref) {
	cm, err := f.r.ReadCommit(ref.Checksum)
	if err != nil {
		return // reported already
	}
	name, coll := f.r.bindingRef(ref.Path)
	if !strings.HasPrefix(ref.Path, "mirrors/") {
		f.checkBinding(ref, cm, name, "")
	}
	if strings.HasPrefix(ref.Path, "heads/") {
		coll = f.r.CollectionID()
	}
	if coll != "" {
		f.checkBinding(ref, cm, name, coll)
	}
}

// checkBinding applies ostree's rule: the ref binding, when present (and
// always for a collection's ref), lists name; a collection's ref needs a
// collection binding equal to coll.
func (f *fsck) checkBinding(ref Ref, cm *objects.Commit, name, coll string) {
	bad := func(format string, args ...any) {
		f.report.Problems = append(f.report.Problems, Problem{Ref: ref.Name,
			Err: fmt.Errorf("%w: commit %s: "+format, append([]any{ErrInvalid, ref.Checksum}, args...)...)})
	}
	names, ok := metadataStrings(cm.Metadata, "ostree.ref-binding")
	if !ok {
		if coll != "" {
			bad("no ref binding, needed for a ref of collection %s", coll)
		}
		return
	}
	if !slices.Contains(names, name) {
		bad("ref binding %q does not name %q", names, name)
		return
	}
	if coll == "" {
		return
	}
	v, ok := cm.Metadata.Get("ostree.collection-binding")
	got, _ := v.Value.(string)
	switch {
	case !ok:
		bad("no collection binding, needed for a ref of collection %s", coll)
	case got != coll:
		bad("collection binding %q, but the ref belongs to collection %q", got, coll)
	}
}

// checkBackRefs checks that every ref commit c is bound to points at c.
func (f *fsck) checkBackRefs(c objects.Checksum) {
	cm, err := f.r.ReadCommit(c)
	if err != nil {
		return // reported already
	}
	names, ok := metadataStrings(cm.Metadata, "ostree.ref-binding")
	if !ok {
		return
	}
	v, _ := cm.Metadata.Get("ostree.collection-binding")
	coll, _ := v.Value.(string)
	for _, name := range names {
		var path string
		switch {
		case coll != "" && coll == f.r.CollectionID():
			path = "heads/" + name
		case coll != "":
			path = "mirrors/" + coll + "/" + name
		default:
			path = "heads/" + name
			if remote, rest, ok := strings.Cut(name, ":"); ok {
				path = "remotes/" + remote + "/" + rest
			}
		}
		bad := func(msg string) {
			f.report.Problems = append(f.report.Problems, Problem{Object: ObjectName(objects.KindCommit, c),
				Err: fmt.Errorf("%w: its ref binding names ref %s, which %s", ErrInvalid, refDisplayName(path), msg)})
		}
		got, err := f.r.ReadRef(path)
		switch {
		case validateRefPath(path) != nil:
			bad("is not a valid ref name")
		case errors.Is(err, ErrNotFound):
			bad("does not exist")
		case err != nil:
			bad("cannot be read: " + err.Error())
		case got != c:
			bad("points to " + got.String())
		}
	}
}

// metadataStrings returns a string-array metadata value ("as").
func metadataStrings(md objects.Metadata, key string) ([]string, bool) {
	v, ok := md.Get(key)
	if !ok {
		return nil, false
	}
	switch x := v.Value.(type) {
	case []string:
		return x, true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out, true
	}
	return nil, false
}
