package pull

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/strata-os/strata/fetch"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/summary"
)

// Source is a repository a pull reads from: a remote served over HTTP, or
// a repository on a local filesystem.
//
// Contract: everything a Source returns is untrusted. Metadata bytes are
// checked by the puller; File stores through the transaction's Verified
// writers, so a file object that does not hash to its name is never
// staged. Missing files fail with an error wrapping repo.ErrNotFound. A
// failure that is not about the bytes (a reset connection, a timeout) is
// returned as itself, not wrapped in repo.ErrCorrupt. Methods may be
// called from many goroutines at once.
type Source interface {
	// Summary returns the summary file and its signature file (nil when
	// there is none), each at most max bytes.
	Summary(ctx context.Context, max int64) (data, sig []byte, err error)
	// Mode returns the source repository's mode. summaryMode is the mode
	// the summary advertises ("" when unknown).
	Mode(ctx context.Context, summaryMode string) (repo.Mode, error)
	// Ref reads a ref by its path under refs/ ("heads/main").
	Ref(ctx context.Context, path string) (objects.Checksum, error)
	// Metadata returns a metadata object's bytes, at most max of them.
	Metadata(ctx context.Context, kind objects.Kind, c objects.Checksum, max int64) ([]byte, error)
	// File stores file object c in tx and returns the bytes it moved;
	// progress, when not nil, is called with byte counts as they move.
	File(ctx context.Context, tx *repo.Txn, c objects.Checksum, progress func(int64)) (int64, error)
	// Local reports whether objects are imported from a local repository
	// rather than fetched.
	Local() bool
}

// remotePath returns where an object lives in an archive repository,
// relative to its root.
func remotePath(kind objects.Kind, c objects.Checksum) string {
	h := c.String()
	ext := kind.String()
	if kind == objects.KindFile {
		ext = "filez"
	}
	return "objects/" + h[:2] + "/" + h[2:] + "." + ext
}

// HTTPSource reads an archive repository through Fetchers: meta for the
// summary, config and refs, content for objects (OSTree's url and
// contenturl; the same Fetcher when there is no contenturl).
type HTTPSource struct {
	meta, content Fetcher
	// partialDir keeps the received prefix of large objects whose
	// transfer failed, so that the next attempt, or the next pull, resumes
	// with a Range request. "" disables resuming.
	partialDir string

	// partials names what partialDir held when first looked at, plus what
	// this source kept there since: only those are looked for (a stat per
	// object otherwise). nil: unknown, look for every object.
	partialsOnce sync.Once
	partialsMu   sync.Mutex
	partials     map[string]bool

	// Warner receives the best-effort failures of resuming (a partial
	// download that could not be kept: resume turned off for that object).
	// Pull sets it from Options.Warner when it is nil.
	Warner progress.Warner
}

func (s *HTTPSource) warn(err error) {
	if s.Warner != nil {
		s.Warner.Warn(err)
	}
}

// mayHavePartial reports whether a partial download named name may be kept.
func (s *HTTPSource) mayHavePartial(name string) bool {
	s.partialsOnce.Do(func() {
		ents, err := os.ReadDir(s.partialDir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return
		}
		s.partials = map[string]bool{}
		for _, e := range ents {
			s.partials[e.Name()] = true
		}
	})
	s.partialsMu.Lock()
	defer s.partialsMu.Unlock()
	return s.partials == nil || s.partials[name]
}

// keptPartial records that a partial download named name was kept.
func (s *HTTPSource) keptPartial(name string) {
	s.partialsMu.Lock()
	defer s.partialsMu.Unlock()
	if s.partials != nil {
		s.partials[name] = true
	}
}

// NewHTTPSource returns a Source over meta and content. partialDir is a
// directory of the destination repository for partial downloads (see
// PartialDir), or "".
func NewHTTPSource(meta, content Fetcher, partialDir string) *HTTPSource {
	if content == nil {
		content = meta
	}
	return &HTTPSource{meta: meta, content: content, partialDir: partialDir}
}

// PartialDir is where a pull into r keeps partial downloads: under tmp/,
// outside objects/, never trusted (a resumed object is verified whole).
func PartialDir(r *repo.Repo) string {
	return filepath.Join(r.Path(), "tmp", "cache", "strata-partial")
}

// Local implements Source.
func (s *HTTPSource) Local() bool { return false }

// Requests returns how many requests the source's fetchers sent (0 when
// they do not count them).
func (s *HTTPSource) Requests() int64 {
	var n int64
	for i, f := range []Fetcher{s.meta, s.content} {
		if i == 1 && s.content == s.meta {
			break
		}
		if st, ok := f.(interface{ Stats() fetch.Stats }); ok {
			n += st.Stats().Requests
		}
	}
	return n
}

// Summary implements Source.
func (s *HTTPSource) Summary(ctx context.Context, max int64) ([]byte, []byte, error) {
	sig, err := s.meta.Get(ctx, summary.SigFileName, max)
	if err != nil && !errors.Is(err, repo.ErrNotFound) {
		return nil, nil, fmt.Errorf("summary.sig: %w", err)
	}
	data, err := s.meta.Get(ctx, summary.FileName, max)
	if err != nil {
		return nil, nil, fmt.Errorf("summary: %w", err)
	}
	return data, sig, nil
}

// Mode implements Source: the summary's mode, else the config file's.
func (s *HTTPSource) Mode(ctx context.Context, summaryMode string) (repo.Mode, error) {
	if summaryMode != "" {
		return repo.ParseMode(summaryMode)
	}
	data, err := s.meta.Get(ctx, "config", 1<<20)
	if err != nil {
		return 0, fmt.Errorf("remote config: %w", err)
	}
	kf, err := repo.ParseKeyFile(string(data))
	if err != nil {
		return 0, fmt.Errorf("remote config: %w", err)
	}
	return repo.ParseMode(kf.GetDefault("core", "mode", "bare"))
}

// Ref implements Source.
func (s *HTTPSource) Ref(ctx context.Context, path string) (objects.Checksum, error) {
	data, err := s.meta.Get(ctx, "refs/"+path, 1024)
	if err != nil {
		return objects.Checksum{}, fmt.Errorf("ref %s: %w", path, err)
	}
	c, err := objects.ParseChecksum(strings.TrimSpace(string(data)))
	if err != nil {
		return c, fmt.Errorf("%w: ref %s: %v", repo.ErrCorrupt, path, err)
	}
	return c, nil
}

// Metadata implements Source.
func (s *HTTPSource) Metadata(ctx context.Context, kind objects.Kind, c objects.Checksum, max int64) ([]byte, error) {
	data, err := s.content.Get(ctx, remotePath(kind, c), max)
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", repo.ObjectName(kind, c), err)
	}
	return data, nil
}

// spillAt is the size from which a download is kept on disk as it
// arrives, so that a broken transfer can resume.
const spillAt = 1 << 20

// File implements Source: the .filez is streamed into tx, which verifies
// it as it arrives. A large object's bytes are also appended to a partial
// file; when the transfer breaks, the next call asks only for the rest
// (Range) and verifies the partial prefix and the rest as one stream. A
// resumed stream that fails verification is thrown away and the object
// fetched once more from the start.
func (s *HTTPSource) File(ctx context.Context, tx *repo.Txn, c objects.Checksum, progress func(int64)) (int64, error) {
	n, resumed, err := s.file(ctx, tx, c, true, progress)
	if err != nil && resumed && errors.Is(err, repo.ErrCorrupt) {
		var m int64
		m, _, err = s.file(ctx, tx, c, false, progress)
		n += m
	}
	return n, err
}

func (s *HTTPSource) file(ctx context.Context, tx *repo.Txn, c objects.Checksum, resume bool, progress func(int64)) (n int64, resumed bool, err error) {
	p := remotePath(objects.KindFile, c)
	var partPath string
	var have int64
	if s.partialDir != "" {
		name := c.String() + ".filez"
		partPath = filepath.Join(s.partialDir, name)
		if s.mayHavePartial(name) {
			if st, err := os.Stat(partPath); err == nil && resume {
				have = st.Size()
			} else if err == nil {
				os.Remove(partPath)
			}
		}
	}
	body, err := s.content.Open(ctx, p, have)
	if err != nil && have > 0 && ctx.Err() == nil {
		// A partial file the server will not continue (one that already
		// holds the whole object, or of a file since changed): start
		// again from the beginning.
		os.Remove(partPath)
		have = 0
		body, err = s.content.Open(ctx, p, 0)
	}
	if err != nil {
		return 0, false, fmt.Errorf("object %s: %w", repo.ObjectName(objects.KindFile, c), err)
	}
	defer body.Close()
	cnt := &countReader{r: body, fn: progress}
	sp := &spill{path: partPath}
	if sz, ok := body.(interface{ Size() int64 }); ok && sz.Size() >= 0 && have+sz.Size() < spillAt {
		sp.path = "" // declared small: nothing worth keeping if it breaks
	}
	var in io.Reader
	if have > 0 {
		f, err := os.OpenFile(partPath, os.O_RDWR, 0)
		if err != nil {
			return 0, false, err
		}
		sp.f, sp.n = f, have
		in = io.MultiReader(io.NewSectionReader(f, 0, have), io.TeeReader(cnt, sp))
		resumed = true
	} else {
		in = io.TeeReader(cnt, sp)
	}
	err = tx.WriteArchiveFileVerified(in, c)
	keep := err != nil && !errors.Is(err, repo.ErrCorrupt)
	if cerr := sp.close(keep); err == nil && cerr != nil {
		err = cerr
	}
	if keep && sp.f != nil && sp.err == nil {
		s.keptPartial(filepath.Base(partPath))
	}
	if sp.err != nil {
		s.warn(fmt.Errorf("object %s: resume turned off (the received part cannot be kept): %w", repo.ObjectName(objects.KindFile, c), sp.err))
	}
	return cnt.n, resumed, err
}

// spill is the tee target of a download: it buffers the first spillAt
// bytes in memory and moves to a file (path) beyond that, so that only
// large transfers leave something to resume. Its write errors are not
// the stream's: a spill that cannot write just stops keeping data.
type spill struct {
	path string
	buf  []byte
	f    *os.File
	n    int64
	err  error // the first write failure: nothing more is kept
}

func (s *spill) Write(p []byte) (int, error) {
	if s.path == "" || s.err != nil {
		return len(p), nil
	}
	if s.f == nil {
		s.buf = append(s.buf, p...)
		if len(s.buf) < spillAt {
			return len(p), nil
		}
		if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
			s.err = err
			return len(p), nil
		}
		f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			s.err = err
			return len(p), nil
		}
		s.f = f
		p, s.buf = s.buf, nil
	}
	if _, err := s.f.WriteAt(p, s.n); err != nil {
		s.err = err
		return len(p), nil
	}
	s.n += int64(len(p))
	return len(p), nil
}

// close keeps the partial file when keep is set (the transfer broke and
// may resume) and removes it otherwise.
func (s *spill) close(keep bool) error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	if !keep || s.err != nil {
		os.Remove(s.path)
		return nil
	}
	return err
}

// countReader counts the bytes read through it and reports them to fn.
type countReader struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.fn != nil && n > 0 {
		c.fn(int64(n))
	}
	return n, err
}

// LocalSource imports from a repository on a local filesystem, of any
// mode. Its objects are verified like fetched ones.
type LocalSource struct{ r *repo.Repo }

// NewLocalSource returns a Source reading r.
func NewLocalSource(r *repo.Repo) *LocalSource { return &LocalSource{r: r} }

// Repo returns the source repository.
func (s *LocalSource) Repo() *repo.Repo { return s.r }

// Local implements Source.
func (s *LocalSource) Local() bool { return true }

// Summary implements Source.
func (s *LocalSource) Summary(ctx context.Context, max int64) ([]byte, []byte, error) {
	data, err := readCapped(filepath.Join(s.r.Path(), summary.FileName), max)
	if err != nil {
		return nil, nil, err
	}
	sig, err := readCapped(filepath.Join(s.r.Path(), summary.SigFileName), max)
	if err != nil && !errors.Is(err, repo.ErrNotFound) {
		return nil, nil, err
	}
	return data, sig, nil
}

func readCapped(p string, max int64) ([]byte, error) {
	f, err := fsutil.OpenRegular(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", repo.ErrNotFound, p)
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s is more than %d bytes", ErrTooLarge, p, max)
	}
	return data, nil
}

// Mode implements Source.
func (s *LocalSource) Mode(context.Context, string) (repo.Mode, error) { return s.r.Mode(), nil }

// Ref implements Source.
func (s *LocalSource) Ref(_ context.Context, path string) (objects.Checksum, error) {
	return s.r.ReadRef(path)
}

// Metadata implements Source.
func (s *LocalSource) Metadata(_ context.Context, kind objects.Kind, c objects.Checksum, max int64) ([]byte, error) {
	data, err := s.r.ReadMetadata(kind, c)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: object %s is more than %d bytes", ErrTooLarge, repo.ObjectName(kind, c), max)
	}
	return data, nil
}

// File implements Source. Between archive repositories the .filez is
// copied as it is (after verification); otherwise the content is read
// and written in the destination's format.
//
// The copy checks ctx between reads: a cancelled pull stops within one
// read of a large file, and the transaction drops the unfinished object.
func (s *LocalSource) File(ctx context.Context, tx *repo.Txn, c objects.Checksum, progress func(int64)) (int64, error) {
	if s.r.Mode() == repo.ModeArchive {
		f, err := fsutil.OpenRegular(s.r.ObjectPath(objects.KindFile, c))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return 0, fmt.Errorf("%w: object %s", repo.ErrNotFound, repo.ObjectName(objects.KindFile, c))
			}
			return 0, err
		}
		defer f.Close()
		cnt := &countReader{r: fsutil.ContextReader(ctx, f), fn: progress}
		err = tx.WriteArchiveFileVerified(cnt, c)
		return cnt.n, err
	}
	h, rc, err := s.r.OpenFile(c)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	cnt := &countReader{r: fsutil.ContextReader(ctx, rc), fn: progress}
	var content io.Reader = cnt
	if !h.IsRegular() {
		content = bytes.NewReader(nil)
	}
	err = tx.WriteFileVerified(h, content, c)
	return cnt.n, err
}
