package repo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"golang.org/x/sys/unix"
)

// Txn is a write transaction. Objects written through it go to a private
// staging directory; Commit makes them durable (syncfs), moves them into
// objects/, makes that durable, and only then writes the queued refs. A
// transaction that is aborted, or whose process dies, publishes nothing:
// its staging directory is removed by the next transaction.
//
// The Write methods may be called from many goroutines at once. Commit and
// Abort must not run concurrently with them.
type Txn struct {
	r       *Repo
	ctx     context.Context
	warn    progress.Warner
	lock    *fsutil.Lock
	stLock  *fsutil.Lock
	staging string

	mu      sync.Mutex
	staged  map[ObjectRef]bool
	subdirs [256]atomic.Bool
	refs    []refUpdate
	done    bool
	failed  error // set by unclaim

	fl flushState // see Flush

	// Stats, updated atomically.
	ObjectsWritten atomic.Int64
	BytesWritten   atomic.Int64
}

type refUpdate struct {
	ref string // e.g. "heads/main", "remotes/origin/main"
	sum *objects.Checksum
}

// TxnOptions adjust a transaction. The zero value works.
type TxnOptions struct {
	// Warner receives the transaction's best-effort failures, which do
	// not fail it: a dead transaction's staging directory or a stale
	// temporary not removed, the staging placement ioctl refused
	// (SpreadStaging), its own staging directory not removed at the end.
	// nil drops them.
	Warner progress.Warner
}

// Begin starts a transaction with default options (BeginWith).
func (r *Repo) Begin(ctx context.Context) (*Txn, error) {
	return r.BeginWith(ctx, TxnOptions{})
}

// BeginWith starts a transaction under the repo's shared lock (prune takes
// it exclusively). It first removes staging directories left by dead
// transactions.
func (r *Repo) BeginWith(ctx context.Context, o TxnOptions) (*Txn, error) {
	lock, err := r.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	t := &Txn{r: r, ctx: ctx, warn: progress.WarnerOrNop(o.Warner), lock: lock, staged: map[ObjectRef]bool{}}
	if err := r.cleanStaleStaging(t.warn); err != nil {
		lock.Unlock()
		return nil, err
	}
	if err := r.checkFreeSpace(0); err != nil {
		lock.Unlock()
		return nil, err
	}
	// The staging lock tells other processes this directory is alive. It
	// is taken on a private name and then renamed into place, so the file
	// at the staging lock's path is locked from the instant it exists: a
	// concurrent Begin's cleanStaleStaging can never take it for stale.
	tmp := filepath.Join(r.path, "tmp")
	for try := 0; ; try++ {
		var rnd [8]byte
		rand.Read(rnd[:])
		id := hex.EncodeToString(rnd[:])
		t.staging = filepath.Join(tmp, "staging-strata-"+id)
		private := filepath.Join(tmp, newLockPrefix+id)
		if t.stLock, err = fsutil.LockFile(ctx, private, fsutil.LockOptions{Exclusive: true}); err != nil {
			if errors.Is(err, fsutil.ErrLocked) && try < 100 {
				// A concurrent cleanStaleStaging holds the new file
				// for an instant (and removes it): take another name.
				continue
			}
			lock.Unlock()
			return nil, fmt.Errorf("begin transaction: %w", err)
		}
		err = os.Rename(private, t.staging+".lock")
		if err == nil {
			break
		}
		t.stLock.Unlock()
		if errors.Is(err, fs.ErrNotExist) && try < 100 {
			// A concurrent cleanStaleStaging took the file between its
			// creation and our lock, and removed it: take another name.
			continue
		}
		os.Remove(private)
		lock.Unlock()
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	if err := os.Mkdir(t.staging, 0o755); err != nil {
		os.Remove(t.staging + ".lock")
		t.stLock.Unlock()
		lock.Unlock()
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	return t, nil
}

func (r *Repo) lockShared(ctx context.Context) (*fsutil.Lock, error) {
	return fsutil.LockFile(ctx, filepath.Join(r.path, ".lock"), fsutil.LockOptions{Wait: true})
}

// LockExclusive takes the repo lock exclusively (for prune), waiting for
// running transactions.
func (r *Repo) LockExclusive(ctx context.Context) (*fsutil.Lock, error) {
	return fsutil.LockFile(ctx, filepath.Join(r.path, ".lock"), fsutil.LockOptions{Exclusive: true, Wait: true})
}

// cleanStaleStaging removes staging directories whose owner died, and
// lock files of transactions that died before making their directory.
// newLockPrefix names a staging lock file before Begin renames it into place.
const newLockPrefix = "newlock-strata-"

func (r *Repo) cleanStaleStaging(warn progress.Warner) error {
	tmp := filepath.Join(r.path, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), newLockPrefix) {
			// A lock file of a Begin that died before renaming it into
			// place (a live one is locked; one caught before its
			// creator locked it makes that Begin take another name).
			if l, err := fsutil.LockFile(context.Background(), filepath.Join(tmp, e.Name()), fsutil.LockOptions{Exclusive: true}); err == nil {
				os.Remove(filepath.Join(tmp, e.Name()))
				l.Unlock()
			}
			continue
		}
		if !strings.HasPrefix(e.Name(), "staging-strata-") {
			continue
		}
		dir := filepath.Join(tmp, strings.TrimSuffix(e.Name(), ".lock"))
		if e.Name() != filepath.Base(dir) {
			// A lock file: handled with its directory, if there is one.
			if _, err := os.Lstat(dir); err == nil {
				continue
			}
		}
		l, err := fsutil.LockFile(context.Background(), dir+".lock", fsutil.LockOptions{Exclusive: true})
		if err != nil {
			continue // alive
		}
		if l.Holds(dir + ".lock") {
			if err := os.RemoveAll(dir); err != nil {
				warn.Warn(fmt.Errorf("staging directory of a dead transaction not removed: %w", err))
			} else if err := os.Remove(dir + ".lock"); err != nil && !errors.Is(err, fs.ErrNotExist) {
				warn.Warn(fmt.Errorf("lock of a dead transaction not removed: %w", err))
			}
		}
		l.Unlock()
	}
	return nil
}

// checkFreeSpace fails when writing extra bytes would leave less than the
// configured min-free-space-percent of the filesystem free.
func (r *Repo) checkFreeSpace(extra uint64) error {
	if r.minFree == 0 {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(r.path, &st); err != nil {
		return nil // unknown: do not block
	}
	total := st.Blocks * uint64(st.Bsize)
	free := st.Bavail * uint64(st.Bsize)
	reserve := total * uint64(r.minFree) / 100
	if free < reserve+extra {
		return fmt.Errorf("repo %s: not enough free space: %d MiB free, min-free-space-percent %d%% reserves %d MiB, %d MiB needed",
			r.path, free>>20, r.minFree, reserve>>20, extra>>20)
	}
	return nil
}

// Repo returns the transaction's repository.
func (t *Txn) Repo() *Repo { return t.r }

func (t *Txn) stagedPath(ref ObjectRef) string {
	return filepath.Join(t.staging, t.r.objectRel(ref.Kind, ref.Checksum))
}

func (t *Txn) ensureSubdir(c objects.Checksum) error {
	if t.subdirs[c[0]].Load() {
		return nil
	}
	err := os.Mkdir(filepath.Join(t.staging, c.String()[:2]), 0o755)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	t.subdirs[c[0]].Store(true)
	return nil
}

// Has reports whether the object is in the repository or staged.
func (t *Txn) Has(kind objects.Kind, c objects.Checksum) (bool, error) {
	ref := ObjectRef{kind, c}
	t.mu.Lock()
	s := t.staged[ref]
	t.mu.Unlock()
	if s {
		return true, nil
	}
	return t.r.HasObject(kind, c)
}

// claim marks ref as being staged; false if it is already present.
func (t *Txn) claim(ref ObjectRef) (bool, error) {
	if err := t.ctx.Err(); err != nil {
		return false, err
	}
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return false, errors.New("transaction already finished")
	}
	if t.staged[ref] {
		t.mu.Unlock()
		return false, nil
	}
	t.staged[ref] = true
	t.mu.Unlock()
	if ref.Kind != objects.KindCommitMeta {
		if ok, err := t.r.HasObject(ref.Kind, ref.Checksum); err != nil || ok {
			return false, err
		}
	}
	return true, nil
}

// unclaim undoes claim after a failed write. Another goroutine writing the
// same object may already have been told it is staged, so the transaction
// can no longer commit: Commit fails from then on.
func (t *Txn) unclaim(ref ObjectRef) {
	t.mu.Lock()
	delete(t.staged, ref)
	if t.failed == nil {
		t.failed = fmt.Errorf("a write of %s failed in this transaction", ObjectName(ref.Kind, ref.Checksum))
	}
	t.mu.Unlock()
}

// WriteMetadata stores a metadata object and returns its checksum.
func (t *Txn) WriteMetadata(kind objects.Kind, data []byte) (objects.Checksum, error) {
	c := objects.Sum(data)
	return c, t.writeMetadata(kind, c, data)
}

// WriteMetadataVerified stores a metadata object that must hash to want;
// otherwise nothing is written and the error wraps ErrCorrupt.
func (t *Txn) WriteMetadataVerified(kind objects.Kind, data []byte, want objects.Checksum) error {
	if got := objects.Sum(data); got != want {
		return fmt.Errorf("%w: object %s has checksum %s", ErrCorrupt, ObjectName(kind, want), got)
	}
	return t.writeMetadata(kind, want, data)
}

func (t *Txn) writeMetadata(kind objects.Kind, c objects.Checksum, data []byte) error {
	if !kind.IsMeta() || kind == objects.KindCommitMeta {
		return fmt.Errorf("%w: %s is not a content-addressed metadata kind", ErrInvalid, kind)
	}
	if len(data) > objects.MaxMetadataSize {
		return fmt.Errorf("%w: object %s larger than %d bytes", ErrInvalid, ObjectName(kind, c), objects.MaxMetadataSize)
	}
	return t.stage(ObjectRef{kind, c}, func(p string) error {
		if err := writeNew(p, data, false); err != nil {
			return err
		}
		t.ObjectsWritten.Add(1)
		t.BytesWritten.Add(int64(len(data)))
		return nil
	})
}

// writeNew writes data to a new file at p (replacing one when replace is
// set). It is not fsynced: publish makes the whole staging directory
// durable with one syncfs.
func writeNew(p string, data []byte, replace bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if replace {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(p, flags, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// stage is the one way an object enters the staging directory. It claims
// ref (nothing is done when the object is already stored or staged; detached
// metadata is always replaced), makes its XX/ subdirectory, and calls put
// with the staged path, which put must create complete (write it, or rename
// a verified temporary onto it). On failure the staged path is removed and
// the claim undone; on success the object is queued for publish.
func (t *Txn) stage(ref ObjectRef, put func(p string) error) error {
	if ref.Kind == objects.KindCommitMeta {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		t.mu.Lock()
		if t.done {
			t.mu.Unlock()
			return errors.New("transaction already finished")
		}
		t.staged[ref] = true
		t.mu.Unlock()
	} else if ok, err := t.claim(ref); err != nil || !ok {
		return err
	}
	if err := t.ensureSubdir(ref.Checksum); err != nil {
		t.unclaim(ref)
		return fmt.Errorf("stage %s: %w", ObjectName(ref.Kind, ref.Checksum), err)
	}
	p := t.stagedPath(ref)
	if err := put(p); err != nil {
		os.Remove(p)
		t.unclaim(ref)
		return fmt.Errorf("stage %s: %w", ObjectName(ref.Kind, ref.Checksum), err)
	}
	t.stagedDone(ref)
	return nil
}

// WriteCommitMeta stores detached metadata for a commit, replacing any.
func (t *Txn) WriteCommitMeta(commit objects.Checksum, md objects.Metadata) error {
	data, err := md.Marshal()
	if err != nil {
		return err
	}
	return t.stage(ObjectRef{objects.KindCommitMeta, commit}, func(p string) error {
		if err := writeNew(p, data, true); err != nil {
			return err
		}
		t.ObjectsWritten.Add(1)
		t.BytesWritten.Add(int64(len(data)))
		return nil
	})
}

// smallFile is the size below which a file's content is read into memory
// and hashed before anything is written, so that objects already present
// cost no write at all.
const smallFile = 256 << 10

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// WriteFile stores a file object from its header and content (nil for a
// symlink) and returns its checksum. h.Size MUST be the content's length;
// content longer or shorter than that is an error and nothing is stored.
func (t *Txn) WriteFile(h *objects.FileHeader, content io.Reader) (objects.Checksum, error) {
	return t.writeFile(h, content, nil)
}

// WriteFileVerified is WriteFile for untrusted input: unless header and
// content hash to want, nothing is stored and the error wraps ErrCorrupt.
func (t *Txn) WriteFileVerified(h *objects.FileHeader, content io.Reader, want objects.Checksum) error {
	_, err := t.writeFile(h, content, &want)
	return err
}

func (t *Txn) writeFile(h *objects.FileHeader, content io.Reader, want *objects.Checksum) (objects.Checksum, error) {
	var c objects.Checksum
	if err := t.ctx.Err(); err != nil {
		return c, err
	}
	if err := h.Validate(); err != nil {
		return c, err
	}
	if err := t.checkModeFits(h); err != nil {
		return c, err
	}
	if h.IsSymlink() || h.Size <= smallFile {
		buf := bufPool.Get().(*bytes.Buffer)
		defer bufPool.Put(buf)
		buf.Reset()
		buf.Grow(int(h.Size) + 1)
		if h.IsRegular() {
			if content == nil {
				content = bytes.NewReader(nil)
			}
			n, err := io.Copy(buf, io.LimitReader(content, int64(h.Size)+1))
			if err != nil {
				return c, fmt.Errorf("reading content: %w", err)
			}
			if uint64(n) != h.Size {
				return c, fmt.Errorf("%w: content is %d bytes, header says %d", ErrCorrupt, n, h.Size)
			}
		}
		hs := objects.NewFileHasher(h)
		hs.Write(buf.Bytes())
		hs.Sum(c[:0])
		if want != nil && c != *want {
			return c, fmt.Errorf("%w: object %s has checksum %s", ErrCorrupt, ObjectName(objects.KindFile, *want), c)
		}
		return c, t.stage(ObjectRef{objects.KindFile, c}, func(p string) error { return t.materialize(p, h, buf) })
	}
	// Large file: stream into a temporary, hashing as it goes.
	tmp := filepath.Join(t.staging, fsutil.TempName("large"))
	hs := objects.NewFileHasher(h)
	cr := &countingReader{r: io.TeeReader(io.LimitReader(content, int64(h.Size)+1), hs)}
	err := t.materialize(tmp, h, cr)
	if err == nil && uint64(cr.n) != h.Size {
		err = fmt.Errorf("%w: content is %d bytes, header says %d", ErrCorrupt, cr.n, h.Size)
	}
	if err != nil {
		os.Remove(tmp)
		return c, err
	}
	hs.Sum(c[:0])
	if want != nil && c != *want {
		os.Remove(tmp)
		return c, fmt.Errorf("%w: object %s has checksum %s", ErrCorrupt, ObjectName(objects.KindFile, *want), c)
	}
	// The verified temporary becomes the staged object (or is dropped when
	// the object is already there).
	err = t.stage(ObjectRef{objects.KindFile, c}, func(p string) error { return os.Rename(tmp, p) })
	os.Remove(tmp)
	return c, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// checkModeFits refuses what the repo mode cannot represent.
func (t *Txn) checkModeFits(h *objects.FileHeader) error {
	if t.r.mode == ModeBareUserOnly && h.IsRegular() {
		if bad := h.Mode &^ objects.ModeTypeMask &^ 0o775; bad != 0 {
			return fmt.Errorf("%w: mode %#o has bits %#o not allowed in a bare-user-only repository", ErrInvalid, h.Mode, bad)
		}
	}
	return nil
}

// materialize writes a file object in the repo's storage format at p. It
// works on raw file descriptors: os.File's poller registration and
// blocking-mode switches cost more than the write itself for small files.
func (t *Txn) materialize(p string, h *objects.FileHeader, content io.Reader) error {
	mode := t.r.mode
	if h.IsSymlink() && (mode == ModeBare || mode == ModeBareUserOnly) {
		if err := unix.Symlink(h.Target, p); err != nil {
			return err
		}
		if mode == ModeBare {
			if err := unix.Lchown(p, int(h.UID), int(h.GID)); err != nil {
				return err
			}
			if err := setXattrs(p, h.Xattrs, true); err != nil {
				return err
			}
		}
		t.ObjectsWritten.Add(1)
		return nil
	}
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "create", Path: p, Err: err}
	}
	w := fdWriter(fd)
	var n int64
	switch mode {
	case ModeArchive:
		n, err = t.writeArchive(w, h, content)
	case ModeBareUser:
		if h.IsSymlink() {
			_, err = w.Write(append([]byte(h.Target), 0))
		} else {
			n, err = copyContent(w, content)
		}
		if err == nil {
			err = unix.Fsetxattr(fd, "user.ostreemeta", objects.BareUserMeta(h), 0)
		}
		if err == nil && h.IsRegular() {
			err = unix.Fchmod(fd, h.Mode&0o775|0o400)
		}
	default: // bare, bare-user-only
		n, err = copyContent(w, content)
		if err == nil && mode == ModeBare {
			err = unix.Fchown(fd, int(h.UID), int(h.GID))
		}
		if err == nil {
			err = unix.Fchmod(fd, h.Mode&^objects.ModeTypeMask)
		}
		if err == nil && mode == ModeBare {
			for _, x := range h.Xattrs {
				if err = unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
					err = fmt.Errorf("setxattr %s: %w", x.Name, err)
					break
				}
			}
		}
	}
	if err == nil && mode.IsBare() {
		// OSTree gives bare file objects mtime 0 so that checkouts are
		// reproducible.
		err = unix.Futimes(fd, []unix.Timeval{{Sec: 0}, {Sec: 0}})
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	t.ObjectsWritten.Add(1)
	t.BytesWritten.Add(n)
	return nil
}

var flatePool sync.Pool // *flate.Writer

// writeArchive writes a .filez object: header, then raw deflate. Small
// contents are compressed into memory and written with one call.
func (t *Txn) writeArchive(w fdWriter, h *objects.FileHeader, content io.Reader) (int64, error) {
	out := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(out)
	out.Reset()
	out.Write(h.MarshalArchive())
	var dst io.Writer = out
	var bw *bufio.Writer
	if h.Size > smallFile {
		if _, err := w.Write(out.Bytes()); err != nil {
			return 0, err
		}
		bw = bufio.NewWriterSize(w, 256<<10)
		dst = bw
	}
	zw, _ := flatePool.Get().(*flate.Writer)
	if zw == nil {
		var err error
		if zw, err = flate.NewWriter(dst, t.r.zlevel); err != nil {
			return 0, err
		}
	} else {
		zw.Reset(dst)
	}
	defer flatePool.Put(zw)
	var n int64
	var err error
	if h.IsRegular() && content != nil {
		n, err = io.Copy(zw, content)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return n, err
	}
	if bw != nil {
		return n, bw.Flush()
	}
	_, err = w.Write(out.Bytes())
	return n, err
}

// copyContent copies content to w; a bytes.Buffer (the small-file path)
// becomes a single write.
func copyContent(w fdWriter, content io.Reader) (int64, error) {
	if content == nil {
		return 0, nil
	}
	if b, ok := content.(*bytes.Buffer); ok {
		_, err := w.Write(b.Bytes())
		return int64(b.Len()), err
	}
	buf := make([]byte, 256<<10)
	return io.CopyBuffer(struct{ io.Writer }{w}, content, buf)
}

// fdWriter writes to a raw file descriptor.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

func setXattrs(p string, xs objects.Xattrs, nofollow bool) error {
	for _, x := range xs {
		var err error
		if nofollow {
			err = unix.Lsetxattr(p, x.Name, x.Value, 0)
		} else {
			err = unix.Setxattr(p, x.Name, x.Value, 0)
		}
		if err != nil {
			return fmt.Errorf("setxattr %s on %s: %w", x.Name, p, err)
		}
	}
	return nil
}

// SetRef queues a ref update, applied by Commit after every object is
// durable. ref is relative to refs/ ("heads/main", "remotes/o/main",
// "mirrors/COLLECTION/main"); a nil sum deletes the ref.
func (t *Txn) SetRef(ref string, sum *objects.Checksum) error {
	if err := validateRefPath(ref); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refs = append(t.refs, refUpdate{ref: ref, sum: sum})
	return nil
}

// Commit publishes the transaction in order: staged objects synced,
// renamed into objects/, synced again; then refs, each written durably.
func (t *Txn) Commit() error {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return errors.New("transaction already finished")
	}
	t.done = true
	failed := t.failed
	t.mu.Unlock()
	defer t.release()
	if err := t.ctx.Err(); err != nil {
		return err
	}
	if failed != nil {
		return failed
	}
	// Everything staged and not yet flushed, detached metadata included.
	t.mu.Lock()
	refs := t.fl.ready
	t.fl.ready = nil
	for ref := range t.staged {
		if ref.Kind == objects.KindCommitMeta {
			refs = append(refs, ref)
		}
	}
	t.mu.Unlock()
	if err := t.publish(refs); err != nil {
		return err
	}
	// A ref may only name a commit that is now stored: checked for all
	// before any is written.
	for _, u := range t.refs {
		if u.sum == nil {
			continue
		}
		if ok, err := t.r.HasObject(objects.KindCommit, *u.sum); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("%w: commit %s (for ref %s)", ErrNotFound, u.sum, u.ref)
			}
			return err
		}
	}
	refDirs := map[string]bool{}
	for _, u := range t.refs {
		if err := t.r.writeRef(u.ref, u.sum); err != nil {
			return err
		}
		refDirs[filepath.Dir(filepath.Join(t.r.path, "refs", filepath.FromSlash(u.ref)))] = true
	}
	// Temporaries of ref writes whose process was killed are removed here,
	// once per directory touched (ostree ignores dot-files in refs/, so
	// they only waste space).
	for d := range refDirs {
		if err := fsutil.RemoveStaleTemps(d); err != nil {
			t.warn.Warn(err)
		}
	}
	return nil
}

// Abort discards everything staged.
func (t *Txn) Abort() error {
	t.mu.Lock()
	already := t.done
	t.done = true
	t.mu.Unlock()
	if already {
		return nil
	}
	t.release()
	return nil
}

func (t *Txn) release() {
	// What is left (a directory that would not go) is removed by the next
	// transaction's cleanStaleStaging, once this one's lock is released.
	if err := os.RemoveAll(t.staging); err != nil {
		t.warn.Warn(fmt.Errorf("staging directory not removed: %w", err))
	} else {
		os.Remove(t.staging + ".lock")
	}
	t.stLock.Unlock()
	t.lock.Unlock()
}
