// Package pull copies commits, with their trees, from a Source (an archive
// repository over HTTP, or any local repository) into a repository, as
// `ostree pull` and `ostree pull-local` do, and with these guarantees:
//
//   - Nothing of a commit is written before its signatures (Policy), its
//     ref and collection bindings and, when asked, its timestamp have been
//     checked.
//   - Every object is verified against its checksum while it streams; an
//     object that does not verify is never staged, let alone published.
//   - Objects are published before the commits that name them, commits
//     before the refs that point at them; a commit object is only ever
//     published with its whole tree present, or with a commitpartial
//     marker written durably before it.
//   - An interrupted pull (error, Ctrl-C, kill -9) leaves the repository
//     consistent; the verified objects it received are published in
//     batches as it goes, so the next pull fetches only what is missing,
//     resuming large objects with Range requests.
//
// See docs/pull.md.
package pull

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sign"
	"github.com/strata-os/strata/summary"
)

// Options control a pull.
type Options struct {
	// Remote names the remote pulled from: refs are written as
	// refs/remotes/REMOTE/REF. With "" (pull-local without --remote) and
	// with Mirror they are written as refs/heads/REF.
	Remote string
	// Refs are the refs to pull; a 64-character checksum pulls that
	// commit without writing a ref. Empty with Mirror: every ref of the
	// summary (or, from a local repository without one, every ref).
	Refs []string
	// Mirror writes refs/heads/REF instead of refs/remotes/REMOTE/REF
	// and, when pulling every ref, copies the summary and summary.sig.
	Mirror bool
	// Depth is how many parents of each commit to pull too (-1: all).
	Depth int
	// CommitOnly pulls commit objects (and detached metadata) only; they
	// are marked partial.
	CommitOnly bool
	// Subpaths, when not empty, limits the pull to these directories or
	// files of each commit (and the directories above them); the commits
	// are marked partial.
	Subpaths []string
	// TimestampCheck refuses a commit older than the one its ref points
	// at (ErrDowngrade).
	TimestampCheck bool
	// TimestampCheckFrom, when not zero, refuses a commit older than this
	// stored one (ErrDowngrade), as ostree's --timestamp-check-from-rev.
	TimestampCheckFrom objects.Checksum
	// Policy is what the received commits and summary must satisfy.
	Policy Policy
	// MaxMetadataSize caps every metadata object received: commits,
	// commitmeta, dirtrees, dirmetas. The default is MaxRemoteMetadataSize
	// from a remote (what ostree pull accepts) and objects.MaxMetadataSize
	// from a local repository (ostree pull-local takes what ostree commit
	// wrote). When set, it caps the summary too (default summary.MaxSize).
	MaxMetadataSize int64
	// Parallel bounds the objects fetched at once (default
	// DefaultParallel).
	Parallel int
	// FlushInterval is how often received objects are published while
	// the pull runs (default 1s): what a killed pull loses.
	FlushInterval time.Duration
	// Progress receives the phases: "Receiving metadata" in objects, then
	// "Receiving objects" in bytes when the plan knows them, else in
	// objects. Stats, when set, is updated as the pull runs.
	Progress progress.Reporter
	Stats    *Stats
	// Warner receives best-effort failures that do not stop the pull;
	// nil drops them.
	Warner progress.Warner
	// OnPlan, when set, is called once what remains to download is known
	// and before anything is written; an error aborts the pull.
	OnPlan func(Plan) error
}

// DefaultParallel is how many objects a pull fetches at once unless told
// otherwise: four times ostree's 8, since the server is static. Over a
// link with 10 ms of latency per request a minbase pull took 9.6 s with 8,
// 5.4 s with 16 and 3.2 s with 32 (ostree: 11.6 s); on loopback it makes
// no difference, and 32 cost 5 MB more memory than 16.
const DefaultParallel = 32

// MaxRemoteMetadataSize is the largest metadata object a pull from a
// remote accepts: ostree's OSTREE_MAX_METADATA_SIZE (10 MiB), which
// `ostree pull` enforces ("exceeded maximum size of 10485760 bytes").
const MaxRemoteMetadataSize = 10 << 20

// Stats are a running pull's counters, updated atomically.
type Stats struct {
	MetadataFetched atomic.Int64 // metadata objects received
	ContentFetched  atomic.Int64 // file objects received
	ContentTotal    atomic.Int64 // file objects to receive (from the plan)
	BytesReceived   atomic.Int64 // bytes received, metadata included
	BytesTotal      atomic.Int64 // file bytes to receive, -1 when unknown (from the plan)
	ContentWritten  atomic.Int64 // content bytes written to the repository
}

// Plan is what remains to be done once the commits are verified and their
// trees walked, before anything is written.
type Plan struct {
	Commits       int   // commit objects to store
	Metadata      int   // dirtree and dirmeta objects to store (already received)
	MetadataBytes int64 // their size
	Content       int   // file objects to fetch
	ContentBytes  int64 // their download size, -1 when unknown
	DiskBytes     int64 // space the new objects need, -1 when unknown
}

// RefUpdate is a ref the pull moved.
type RefUpdate struct {
	Name     string // as users write it: "origin:main", "main"
	Path     string // under refs/
	Old, New objects.Checksum
}

// Result describes a finished pull.
type Result struct {
	Plan            Plan
	Commits         []objects.Checksum // the commits pulled (targets first, then parents)
	Refs            []RefUpdate        // refs that changed
	Signatures      []string           // what verified each commit
	MetadataFetched int64
	ContentFetched  int64
	BytesReceived   int64
	ContentWritten  int64
	Local           bool // objects were imported from a local repository
}

// commitInfo is a commit the pull has read and verified.
type commitInfo struct {
	c       objects.Checksum
	data    []byte
	cm      *objects.Commit
	meta    objects.Metadata // detached metadata to store, nil to keep what is there
	stored  bool             // already in the destination
	partial bool             // stored with a commitpartial marker
}

// target is a ref (or commit) requested.
type target struct {
	name   string // ref name, "" when pulled by checksum
	path   string // ref path under refs/ to update, "" for none
	commit objects.Checksum
	size   uint64 // commit size from the summary, 0 when unknown
}

// metaObj is a metadata object received and verified, waiting to be
// written.
type metaObj struct {
	kind objects.Kind
	c    objects.Checksum
	data []byte
}

type puller struct {
	dst        *repo.Repo
	src        Source
	o          Options
	summaryMax int64
	rep        progress.Reporter
	stats      *Stats
	res        Result

	sum             *summary.Summary
	sumData, sumSig []byte

	commits map[objects.Checksum]*commitInfo
	order   []objects.Checksum
}

// Pull pulls from src into dst. See the package documentation for the
// guarantees; errors name the ref, commit or object concerned.
func Pull(ctx context.Context, dst *repo.Repo, src Source, o Options) (*Result, error) {
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	summaryMax := int64(summary.MaxSize)
	switch {
	case o.MaxMetadataSize <= 0 && src.Local():
		o.MaxMetadataSize = objects.MaxMetadataSize
	case o.MaxMetadataSize <= 0:
		o.MaxMetadataSize = MaxRemoteMetadataSize
	case o.MaxMetadataSize > objects.MaxMetadataSize:
		o.MaxMetadataSize = objects.MaxMetadataSize
		fallthrough
	default:
		summaryMax = o.MaxMetadataSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	o.Warner = progress.WarnerOrNop(o.Warner)
	if hs, ok := src.(*HTTPSource); ok && hs.Warner == nil {
		hs.Warner = o.Warner
	}
	p := &puller{dst: dst, src: src, o: o, summaryMax: summaryMax, rep: progress.OrNop(o.Progress), stats: o.Stats,
		commits: map[objects.Checksum]*commitInfo{}}
	if p.stats == nil {
		p.stats = &Stats{}
	}
	p.stats.BytesTotal.Store(-1)
	p.res.Local = src.Local()
	for i, s := range o.Subpaths {
		o.Subpaths[i] = path.Clean("/" + s)
	}
	if err := p.readSummary(ctx); err != nil {
		return nil, err
	}
	summaryMode := ""
	if p.sum != nil {
		summaryMode = p.sum.Mode()
	}
	mode, err := src.Mode(ctx, summaryMode)
	if err != nil {
		return nil, err
	}
	if !src.Local() && mode != repo.ModeArchive {
		return nil, fmt.Errorf("%w: can't pull from archives with mode %q (only archive repositories can be served)", repo.ErrInvalid, mode)
	}
	targets, err := p.resolve(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.loadCommits(ctx, targets); err != nil {
		return nil, err
	}
	meta, files, err := p.walk(ctx)
	if err != nil {
		return nil, err
	}
	plan, missing, err := p.plan(meta, files)
	if err != nil {
		return nil, err
	}
	p.res.Plan = plan
	if o.OnPlan != nil {
		if err := o.OnPlan(plan); err != nil {
			return nil, err
		}
	}
	if err := p.store(ctx, meta, missing, plan); err != nil {
		return nil, err
	}
	if err := p.finish(ctx, targets); err != nil {
		return nil, err
	}
	p.res.MetadataFetched = p.stats.MetadataFetched.Load()
	p.res.ContentFetched = p.stats.ContentFetched.Load()
	p.res.BytesReceived = p.stats.BytesReceived.Load()
	p.res.ContentWritten = p.stats.ContentWritten.Load()
	return &p.res, nil
}

// readSummary fetches the summary and, when the policy asks, verifies it.
func (p *puller) readSummary(ctx context.Context) error {
	data, sig, err := p.src.Summary(ctx, p.summaryMax)
	if errors.Is(err, repo.ErrNotFound) {
		if p.o.Policy.verifiesSummary() {
			return fmt.Errorf("summary: the remote has none, and summary signatures are required: %w", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	p.stats.BytesReceived.Add(int64(len(data) + len(sig)))
	s, err := checkSummary(data, sig, &p.o.Policy)
	if err != nil {
		return err
	}
	p.sum, p.sumData, p.sumSig = s, data, sig
	return nil
}

// checkSummary verifies summary bytes as policy asks and parses them.
func checkSummary(data, sig []byte, policy *Policy) (*summary.Summary, error) {
	if policy.verifiesSummary() {
		if sig == nil {
			return nil, fmt.Errorf("summary: no summary.sig, and summary signatures are required: %w", sign.ErrNoSignature)
		}
		md, err := summary.ParseSig(sig)
		if err != nil {
			return nil, err
		}
		if _, err := verify("summary", data, md, policy.SummaryGPG, policy.SummarySign); err != nil {
			return nil, err
		}
	}
	return summary.Parse(data)
}

// FetchSummary fetches src's summary, verified as policy's summary
// verifiers say, and returns it parsed and as bytes. A source without a
// summary fails with an error wrapping repo.ErrNotFound.
func FetchSummary(ctx context.Context, src Source, policy Policy) (*summary.Summary, []byte, error) {
	data, sig, err := src.Summary(ctx, summary.MaxSize)
	if err != nil {
		return nil, nil, err
	}
	s, err := checkSummary(data, sig, &policy)
	return s, data, err
}

// refLister is implemented by sources that can list their refs without a
// summary (local repositories).
type refLister interface {
	ListHeads() ([]string, error)
}

// ListHeads lists the repository's refs/heads refs.
func (s *LocalSource) ListHeads() ([]string, error) {
	refs, err := s.r.ListRefs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range refs {
		if name, ok := strings.CutPrefix(r.Path, "heads/"); ok {
			out = append(out, name)
		}
	}
	return out, nil
}

// resolve turns the requested refs into commits.
func (p *puller) resolve(ctx context.Context) ([]target, error) {
	names := p.o.Refs
	if len(names) == 0 {
		if !p.o.Mirror {
			return nil, fmt.Errorf("%w: no refs to pull", repo.ErrInvalid)
		}
		switch {
		case p.sum != nil && !p.src.Local():
			for _, r := range p.sum.Refs {
				names = append(names, r.Name)
			}
		default:
			l, ok := p.src.(refLister)
			if !ok {
				return nil, fmt.Errorf("%w: pulling every ref needs the remote's summary, and it has none", repo.ErrNotFound)
			}
			var err error
			if names, err = l.ListHeads(); err != nil {
				return nil, err
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%w: the remote has no refs", repo.ErrNotFound)
		}
	}
	var out []target
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		if len(name) == 64 {
			if c, err := objects.ParseChecksum(name); err == nil {
				out = append(out, target{commit: c})
				continue
			}
		}
		if err := repo.ValidateRefName(name); err != nil {
			return nil, err
		}
		t := target{name: name, path: "heads/" + name}
		if p.o.Remote != "" && !p.o.Mirror {
			t.path = "remotes/" + p.o.Remote + "/" + name
		}
		switch {
		case p.src.Local():
			c, err := p.src.Ref(ctx, "heads/"+name)
			if err != nil {
				return nil, fmt.Errorf("ref %s: %w", name, err)
			}
			t.commit = c
		case p.sum != nil:
			r, ok := p.sum.Lookup(name)
			if !ok {
				return nil, fmt.Errorf("%w: no such branch '%s' in repository summary", repo.ErrNotFound, name)
			}
			t.commit, t.size = r.Checksum, r.CommitSize
		default:
			c, err := p.src.Ref(ctx, "heads/"+name)
			if err != nil {
				return nil, err
			}
			t.commit = c
		}
		out = append(out, t)
	}
	return out, nil
}

// loadCommits reads and verifies the target commits and, to Depth, their
// parents. Nothing is written.
func (p *puller) loadCommits(ctx context.Context, targets []target) error {
	for _, t := range targets {
		ci, err := p.loadCommit(ctx, t.commit, t.size, t.name, false)
		if err != nil {
			if t.name != "" {
				return fmt.Errorf("ref %s: %w", t.name, err)
			}
			return err
		}
		if p.o.TimestampCheck && t.path != "" {
			if err := p.checkTimestamp(t, ci); err != nil {
				return err
			}
		}
		if from := p.o.TimestampCheckFrom; !from.IsZero() {
			cm, err := p.dst.ReadCommit(from)
			if err != nil {
				return fmt.Errorf("reading %s for the timestamp check: %w", from, err)
			}
			if err := checkTimestamp(from, cm.Timestamp, ci.c, ci.cm.Timestamp); err != nil {
				return err
			}
		}
		for depth, c := p.o.Depth, ci.cm.Parent; depth != 0 && !c.IsZero(); depth-- {
			pi, err := p.loadCommit(ctx, c, 0, "", true)
			if errors.Is(err, repo.ErrNotFound) {
				break // history ends here in the source
			}
			if err != nil {
				return err
			}
			c = pi.cm.Parent
		}
	}
	return nil
}

func (p *puller) checkTimestamp(t target, ci *commitInfo) error {
	cur, err := p.dst.ReadRef(t.path)
	if errors.Is(err, repo.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	curCm, err := p.dst.ReadCommit(cur)
	if errors.Is(err, repo.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := checkTimestamp(cur, curCm.Timestamp, ci.c, ci.cm.Timestamp); err != nil {
		return fmt.Errorf("ref %s: %w", t.name, err)
	}
	return nil
}

// loadCommit reads commit c (from the destination when it is stored there,
// else from the source, capped at size when known) and its detached
// metadata from the source, and checks signatures and bindings.
func (p *puller) loadCommit(ctx context.Context, c objects.Checksum, size uint64, ref string, parent bool) (*commitInfo, error) {
	if ci, ok := p.commits[c]; ok {
		if ref != "" && !p.o.Policy.DisableBindings {
			if err := checkBindings(c, ci.cm, ref, p.o.Policy.CollectionID); err != nil {
				return nil, err
			}
		}
		return ci, nil
	}
	ci := &commitInfo{c: c}
	var err error
	if ci.stored, err = p.dst.HasObject(objects.KindCommit, c); err != nil {
		return nil, err
	}
	name := repo.ObjectName(objects.KindCommit, c)
	if ci.stored {
		if ci.data, err = p.dst.ReadMetadata(objects.KindCommit, c); err != nil {
			return nil, err
		}
		if ci.partial, err = p.dst.IsCommitPartial(c); err != nil {
			return nil, err
		}
	} else {
		max := p.o.MaxMetadataSize
		if size > 0 && size < uint64(max) {
			max = int64(size)
		}
		if ci.data, err = p.src.Metadata(ctx, objects.KindCommit, c, max); err != nil {
			return nil, err
		}
		p.stats.BytesReceived.Add(int64(len(ci.data)))
		p.stats.MetadataFetched.Add(1)
		if got := objects.Sum(ci.data); got != c {
			return nil, fmt.Errorf("%w: object %s has checksum %s", repo.ErrCorrupt, name, got)
		}
	}
	if ci.cm, err = objects.ParseCommit(ci.data); err != nil {
		return nil, fmt.Errorf("commit %s: %w", c, err)
	}
	// Detached metadata: always asked for, as OSTree does, in case new
	// signatures appeared; what is stored is kept when the source has none.
	mdData, err := p.src.Metadata(ctx, objects.KindCommitMeta, c, p.o.MaxMetadataSize)
	var md objects.Metadata
	switch {
	case errors.Is(err, repo.ErrNotFound):
		if ci.stored {
			if md, err = p.dst.ReadCommitMeta(c); err != nil {
				return nil, err
			}
		}
	case err != nil:
		return nil, err
	default:
		p.stats.BytesReceived.Add(int64(len(mdData)))
		if md, err = objects.ParseMetadata(mdData); err != nil {
			return nil, fmt.Errorf("commitmeta %s: %w", c, err)
		}
		ci.meta = md
	}
	if p.o.Policy.verifiesCommits() {
		msgs, err := verify("commit "+c.String(), ci.data, md, p.o.Policy.GPG, p.o.Policy.Sign)
		if err != nil {
			return nil, err
		}
		p.res.Signatures = append(p.res.Signatures, msgs...)
	}
	if !p.o.Policy.DisableBindings {
		if err := checkBindings(c, ci.cm, ref, p.o.Policy.CollectionID); err != nil {
			return nil, err
		}
	}
	p.commits[c] = ci
	p.order = append(p.order, c)
	p.res.Commits = append(p.res.Commits, c)
	return ci, nil
}

// wantDir reports whether directory dir (absolute, clean) is within or
// above one of the subpaths.
func (p *puller) wantDir(dir string) bool {
	if len(p.o.Subpaths) == 0 {
		return true
	}
	for _, s := range p.o.Subpaths {
		if under(dir, s) || under(s, dir) {
			return true
		}
	}
	return false
}

// wantFile reports whether the file at fp is within one of the subpaths.
func (p *puller) wantFile(fp string) bool {
	if len(p.o.Subpaths) == 0 {
		return true
	}
	for _, s := range p.o.Subpaths {
		if under(fp, s) {
			return true
		}
	}
	return false
}

// under reports whether a is b or inside b.
func under(a, b string) bool {
	return a == b || b == "/" || strings.HasPrefix(a, b+"/")
}

type treeTask struct {
	c   objects.Checksum
	dir string
}

// walk reads the trees of the commits to scan (new or partial ones, unless
// CommitOnly): stored dirtrees from the destination (verified), missing
// ones from the source (verified, kept in memory). It returns the
// metadata to write and every file object the trees name.
func (p *puller) walk(ctx context.Context) ([]metaObj, []objects.Checksum, error) {
	if p.o.CommitOnly {
		return nil, nil, nil
	}
	var level []treeTask
	metas := map[objects.Checksum]bool{}
	seenTree := map[objects.Checksum]bool{}
	for _, c := range p.order {
		ci := p.commits[c]
		if ci.stored && !ci.partial {
			continue
		}
		metas[ci.cm.RootMeta] = true
		if !seenTree[ci.cm.RootTree] {
			seenTree[ci.cm.RootTree] = true
			level = append(level, treeTask{ci.cm.RootTree, "/"})
		}
	}
	var (
		mu       sync.Mutex
		out      []metaObj
		files    []objects.Checksum
		seenFile = map[objects.Checksum]bool{}
	)
	p.rep.Phase("Receiving metadata", "objects", 0)
	defer p.rep.Done()
	// get returns a metadata object: the stored one, or the source's,
	// verified, recorded for writing.
	get := func(ctx context.Context, kind objects.Kind, c objects.Checksum) ([]byte, error) {
		ok, err := p.dst.HasObject(kind, c)
		if err != nil {
			return nil, err
		}
		if ok {
			return p.dst.ReadMetadata(kind, c)
		}
		data, err := p.src.Metadata(ctx, kind, c, p.o.MaxMetadataSize)
		if err != nil {
			return nil, err
		}
		p.stats.BytesReceived.Add(int64(len(data)))
		p.stats.MetadataFetched.Add(1)
		p.rep.Add(1)
		if got := objects.Sum(data); got != c {
			return nil, fmt.Errorf("%w: object %s has checksum %s", repo.ErrCorrupt, repo.ObjectName(kind, c), got)
		}
		mu.Lock()
		out = append(out, metaObj{kind, c, data})
		mu.Unlock()
		return data, nil
	}
	seenMeta := map[objects.Checksum]bool{}
	for c := range metas {
		seenMeta[c] = true
	}
	for len(level) > 0 || len(metas) > 0 {
		var next []treeTask
		var newMetas []objects.Checksum
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(p.o.Parallel)
		for c := range metas {
			g.Go(func() error {
				data, err := get(gctx, objects.KindDirMeta, c)
				if err != nil {
					return err
				}
				if _, err := objects.ParseDirMeta(data); err != nil {
					return fmt.Errorf("dirmeta %s: %w", c, err)
				}
				return nil
			})
		}
		for _, t := range level {
			g.Go(func() error {
				data, err := get(gctx, objects.KindDirTree, t.c)
				if err != nil {
					return fmt.Errorf("%s: %w", t.dir, err)
				}
				dt, err := objects.ParseDirTree(data)
				if err != nil {
					return fmt.Errorf("dirtree %s (%s): %w", t.c, t.dir, err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, f := range dt.Files {
					if !p.wantFile(path.Join(t.dir, f.Name)) || seenFile[f.Checksum] {
						continue
					}
					seenFile[f.Checksum] = true
					files = append(files, f.Checksum)
				}
				for _, d := range dt.Dirs {
					sub := path.Join(t.dir, d.Name)
					if !p.wantDir(sub) {
						continue
					}
					if !seenTree[d.Tree] {
						seenTree[d.Tree] = true
						next = append(next, treeTask{d.Tree, sub})
					}
					if !seenMeta[d.Meta] {
						seenMeta[d.Meta] = true
						newMetas = append(newMetas, d.Meta)
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, nil, err
		}
		clear(metas)
		for _, m := range newMetas {
			metas[m] = true
		}
		level = next
	}
	return out, files, nil
}
