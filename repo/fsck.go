package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
)

// FsckOptions adjust Fsck.
type FsckOptions struct {
	// Delete removes objects found corrupt (never anything else).
	Delete bool
	// All also verifies objects no commit reaches.
	All bool
	// VerifyBindings checks that each ref's commit is bound to that ref
	// when it carries ostree.ref-binding.
	VerifyBindings bool
	Progress       progress.Reporter
}

// Problem is one thing fsck found wrong.
type Problem struct {
	Object string // "CHECKSUM.KIND", or a ref path
	Err    error
	// Deleted is set when --delete removed the object.
	Deleted bool
}

func (p Problem) String() string { return p.Object + ": " + p.Err.Error() }

// FsckReport is the outcome of Fsck.
type FsckReport struct {
	Commits  int
	Objects  int
	Problems []Problem
	// Partial lists commits marked partial (an interrupted pull); their
	// missing objects are not problems.
	Partial []objects.Checksum
}

// Fsck verifies the repository as `ostree fsck` does: every ref points at
// a stored commit; every commit object, and every dirtree, dirmeta and file
// object any commit reaches, is present, well-formed and hashes to its
// name. Objects are read once each; file contents are hashed in parallel,
// one worker per CPU. It takes the repo lock shared, like a transaction.
func (r *Repo) Fsck(ctx context.Context, o FsckOptions) (*FsckReport, error) {
	lock, err := r.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	rep := progress.OrNop(o.Progress)
	f := &fsck{r: r, o: o, rep: rep, seen: map[ObjectRef]bool{}, report: &FsckReport{}}

	refs, err := r.ListRefs()
	if err != nil {
		return nil, err
	}
	for _, ref := range refs {
		ok, err := r.HasObject(objects.KindCommit, ref.Checksum)
		if err != nil {
			return nil, err
		}
		if !ok {
			f.problem(ref.Path, objects.KindCommit, fmt.Errorf("%w: ref %s points to missing commit %s", ErrNotFound, ref.Name, ref.Checksum), false)
		}
	}
	var commits []objects.Checksum
	var all []ObjectRef
	err = r.ListObjects(func(ref ObjectRef) error {
		if ref.Kind == objects.KindCommit {
			commits = append(commits, ref.Checksum)
		}
		if o.All {
			all = append(all, ref)
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	sort.Slice(commits, func(i, j int) bool { return commits[i].String() < commits[j].String() })
	f.report.Commits = len(commits)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, runtime.GOMAXPROCS(0)))
	f.g, f.ctx = g, gctx
	rep.Phase("fsck", "objects", 0)
	for _, c := range commits {
		if err := gctx.Err(); err != nil {
			break
		}
		f.commit(c)
	}
	for _, ref := range all {
		if err := gctx.Err(); err != nil {
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
	if err != nil {
		return nil, err
	}
	if o.VerifyBindings {
		for _, ref := range refs {
			f.checkBinding(ref)
		}
	}
	sort.Slice(f.report.Problems, func(i, j int) bool { return f.report.Problems[i].Object < f.report.Problems[j].Object })
	return f.report, nil
}

type fsck struct {
	r   *Repo
	o   FsckOptions
	rep progress.Reporter
	g   *errgroup.Group
	ctx context.Context

	mu     sync.Mutex
	seen   map[ObjectRef]bool
	report *FsckReport
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

func (f *fsck) problem(name string, kind objects.Kind, err error, deletable bool) {
	p := Problem{Object: name, Err: err}
	if deletable && f.o.Delete && errors.Is(err, ErrCorrupt) {
		path := filepath.Join(f.r.path, "objects", name[:2], name[2:])
		if kind == objects.KindFile && f.r.mode == ModeArchive {
			path = strings.TrimSuffix(path, ".file") + ".filez"
		}
		if rerr := os.Remove(path); rerr == nil {
			p.Deleted = true
		}
	}
	f.mu.Lock()
	f.report.Problems = append(f.report.Problems, p)
	f.mu.Unlock()
}

func (f *fsck) partial(c objects.Checksum) bool {
	_, err := os.Stat(filepath.Join(f.r.path, "state", c.String()+".commitpartial"))
	return err == nil
}

func (f *fsck) commit(c objects.Checksum) {
	if !f.mark(ObjectRef{objects.KindCommit, c}) {
		return
	}
	f.rep.Add(1)
	partial := f.partial(c)
	if partial {
		f.report.Partial = append(f.report.Partial, c)
	}
	cm, err := f.r.ReadCommit(c)
	if err != nil {
		f.problem(ObjectName(objects.KindCommit, c), objects.KindCommit, err, true)
		return
	}
	if _, err := f.r.ReadCommitMeta(c); err != nil {
		f.problem(ObjectName(objects.KindCommitMeta, c), objects.KindCommitMeta, err, false)
	}
	if f.mark(ObjectRef{objects.KindDirMeta, cm.RootMeta}) {
		f.meta(objects.KindDirMeta, cm.RootMeta, partial)
	}
	f.tree(cm.RootTree, partial)
}

// meta verifies a dirmeta (or, with All, any metadata object).
func (f *fsck) meta(kind objects.Kind, c objects.Checksum, partial bool) {
	f.rep.Add(1)
	var err error
	switch kind {
	case objects.KindDirMeta:
		_, err = f.r.ReadDirMeta(c)
	case objects.KindDirTree:
		_, err = f.r.ReadDirTree(c)
	case objects.KindCommit:
		_, err = f.r.ReadCommit(c)
	case objects.KindCommitMeta:
		_, err = f.r.ReadCommitMeta(c)
	}
	f.report1(kind, c, err, partial)
}

func (f *fsck) report1(kind objects.Kind, c objects.Checksum, err error, partial bool) {
	if err == nil {
		return
	}
	if partial && errors.Is(err, ErrNotFound) {
		return
	}
	f.problem(ObjectName(kind, c), kind, err, true)
}

func (f *fsck) tree(c objects.Checksum, partial bool) {
	if f.ctx.Err() != nil || !f.mark(ObjectRef{objects.KindDirTree, c}) {
		return
	}
	f.rep.Add(1)
	dt, err := f.r.ReadDirTree(c)
	if err != nil {
		f.report1(objects.KindDirTree, c, err, partial)
		return
	}
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

var fsckBufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func (f *fsck) queueFile(c objects.Checksum, partial bool) {
	f.g.Go(func() error {
		f.report1(objects.KindFile, c, f.r.verifyFile(c), partial)
		f.rep.Add(1)
		return nil
	})
}

// verifyFile reads a file object through the verifying reader.
func (r *Repo) verifyFile(c objects.Checksum) error {
	_, rc, err := r.OpenFileVerified(c)
	if err != nil {
		return err
	}
	defer rc.Close()
	buf := fsckBufPool.Get().(*[]byte)
	defer fsckBufPool.Put(buf)
	for {
		_, err := rc.Read(*buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				err = fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			return err
		}
	}
}

func (f *fsck) checkBinding(ref Ref) {
	cm, err := f.r.ReadCommit(ref.Checksum)
	if err != nil {
		return // reported already
	}
	v, ok := cm.Metadata.Get("ostree.ref-binding")
	if !ok {
		return
	}
	names, _ := v.Value.([]any)
	name := ref.Name
	if _, rest, ok := strings.Cut(name, ":"); ok {
		name = rest
	}
	for _, n := range names {
		if s, _ := n.(string); s == name {
			return
		}
	}
	f.problem(ref.Path, objects.KindCommit, fmt.Errorf("%w: commit %s is not bound to ref %s", ErrCorrupt, ref.Checksum, ref.Name), false)
}
