package pull

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/summary"
)

// plan counts what is missing and checks that the disk can hold it. Sizes
// come from the new commits' ostree.sizes when they have it.
func (p *puller) plan(meta []metaObj, files []objects.Checksum) (Plan, []objects.Checksum, error) {
	pl := Plan{Metadata: len(meta)}
	sizes := map[objects.Checksum]objSize{}
	for _, c := range p.order {
		ci := p.commits[c]
		if !ci.stored {
			pl.Commits++
			pl.MetadataBytes += int64(len(ci.data))
		}
		s, err := parseSizes(ci.cm.Metadata)
		if err != nil {
			return pl, nil, fmt.Errorf("commit %s: %w", c, err)
		}
		for k, v := range s {
			sizes[k] = v
		}
	}
	for _, m := range meta {
		pl.MetadataBytes += int64(len(m.data))
	}
	var missing []objects.Checksum
	known := true
	for _, c := range files {
		ok, err := p.dst.HasObject(objects.KindFile, c)
		if err != nil {
			return pl, nil, err
		}
		if ok {
			continue
		}
		missing = append(missing, c)
		s, found := sizes[c]
		if !found || s.kind != objects.KindFile {
			known = false
			continue
		}
		pl.ContentBytes += int64(s.archived)
		if p.dst.Mode() == repo.ModeArchive {
			pl.DiskBytes += int64(s.archived)
		} else {
			pl.DiskBytes += int64(s.unpacked)
		}
	}
	pl.Content = len(missing)
	if known {
		pl.DiskBytes += pl.MetadataBytes
		if err := p.dst.CheckFreeSpace(uint64(pl.DiskBytes)); err != nil {
			return pl, nil, err
		}
	} else {
		pl.ContentBytes, pl.DiskBytes = -1, -1
	}
	p.stats.ContentTotal.Store(int64(pl.Content))
	p.stats.BytesTotal.Store(pl.ContentBytes)
	return pl, missing, nil
}

// batcher publishes received objects in batches. The workers stage each
// object in the current generation's transaction; every interval one of
// them rotates: new objects go to a new transaction while the old one
// waits for the objects still in flight in it, and is then committed
// (published). So the workers never wait for one another, at most two
// transactions are open, and a killed pull loses about one interval of
// work.
type batcher struct {
	r        *repo.Repo
	ctx      context.Context
	interval time.Duration
	written  *atomic.Int64 // content bytes written, summed as transactions end

	mu       sync.Mutex
	cur      *generation
	rotating bool
	err      error // the first failed commit
}

type generation struct {
	tx     *repo.Txn
	began  time.Time
	flight sync.WaitGroup // objects being staged in tx
}

// acquire returns the transaction to stage the next object in; release
// must follow.
func (b *batcher) acquire() (*generation, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return nil, b.err
	}
	if b.cur == nil {
		tx, err := b.r.Begin(b.ctx)
		if err != nil {
			return nil, err
		}
		b.cur = &generation{tx: tx, began: time.Now()}
	}
	b.cur.flight.Add(1)
	return b.cur, nil
}

// release ends an object's staging and, when the current generation is
// old enough and no one else is rotating, publishes it.
func (b *batcher) release(g *generation) error {
	g.flight.Done()
	b.mu.Lock()
	if b.rotating || b.cur == nil || time.Since(b.cur.began) < b.interval {
		b.mu.Unlock()
		return nil
	}
	old := b.cur
	b.cur, b.rotating = nil, true
	b.mu.Unlock()
	err := b.publish(old)
	b.mu.Lock()
	b.rotating = false
	b.mu.Unlock()
	return err
}

func (b *batcher) publish(g *generation) error {
	g.flight.Wait()
	if b.written != nil {
		b.written.Add(g.tx.BytesWritten.Load())
	}
	err := g.tx.Commit()
	if err != nil {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return err
}

// close publishes the current generation, once every worker is done.
func (b *batcher) close() error {
	b.mu.Lock()
	g := b.cur
	b.cur = nil
	err := b.err
	b.mu.Unlock()
	if g != nil {
		if perr := b.publish(g); err == nil {
			err = perr
		}
	}
	return err
}

// writeMeta stores the received dirtrees and dirmetas.
func (p *puller) writeMeta(ctx context.Context, meta []metaObj) error {
	if len(meta) == 0 {
		return nil
	}
	tx, err := p.dst.Begin(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	for _, m := range meta {
		if err := tx.WriteMetadataVerified(m.kind, m.data, m.c); err != nil {
			tx.Abort()
			return err
		}
	}
	return tx.Commit()
}

// fetchFiles fetches the missing file objects with Parallel workers,
// staging them through a batcher that publishes every FlushInterval. On
// failure, what was verified is still published.
func (p *puller) fetchFiles(ctx context.Context, missing []objects.Checksum, pl Plan) error {
	if len(missing) == 0 {
		return nil
	}
	byBytes := pl.ContentBytes >= 0
	if byBytes {
		p.rep.Phase("Receiving objects", "bytes", pl.ContentBytes)
	} else {
		p.rep.Phase("Receiving objects", "objects", int64(len(missing)))
	}
	defer p.rep.Done()
	onBytes := func(n int64) {
		p.stats.BytesReceived.Add(n)
		if byBytes {
			p.rep.Add(n)
		}
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once     sync.Once
		firstErr error
	)
	fail := func(err error) {
		once.Do(func() {
			firstErr = err
			cancel()
		})
	}
	bat := &batcher{r: p.dst, ctx: context.WithoutCancel(ctx), interval: p.o.FlushInterval, written: &p.stats.ContentWritten}
	ch := make(chan objects.Checksum)
	var wg sync.WaitGroup
	for range min(p.o.Parallel, len(missing)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				g, err := bat.acquire()
				if err != nil {
					fail(err)
					return
				}
				// Transport failures are retried (and broken bodies
				// resumed) by the Fetcher; what comes back is final.
				_, err = p.src.File(fctx, g.tx, c, onBytes)
				if rerr := bat.release(g); err == nil {
					err = rerr
				}
				if err != nil {
					if ctx.Err() != nil {
						err = ctx.Err()
					}
					fail(err)
					return
				}
				p.stats.ContentFetched.Add(1)
				if !byBytes {
					p.rep.Add(1)
				}
			}
		}()
	}
feed:
	for _, c := range missing {
		select {
		case ch <- c:
		case <-fctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	// What verified is published, even when the pull failed.
	if err := bat.close(); err != nil {
		fail(err)
	}
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// finish stores the commits and their detached metadata, then moves the
// refs, in a transaction of their own that starts after every object of
// their trees is published. Commits whose tree is not all there (CommitOnly,
// Subpaths) are first marked partial; markers of commits now complete are
// removed last.
func (p *puller) finish(ctx context.Context, targets []target) error {
	partialPull := p.o.CommitOnly || len(p.o.Subpaths) > 0
	tx, err := p.dst.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Abort()
	for _, c := range p.order {
		ci := p.commits[c]
		if !ci.stored {
			if partialPull {
				if err := p.dst.MarkCommitPartial(c); err != nil {
					return err
				}
			}
			if err := tx.WriteMetadataVerified(objects.KindCommit, ci.data, c); err != nil {
				return err
			}
		}
		if ci.meta != nil {
			if err := p.writeCommitMeta(tx, ci); err != nil {
				return err
			}
		}
	}
	for _, t := range targets {
		if t.path == "" {
			continue
		}
		old, err := p.dst.ReadRef(t.path)
		if err != nil && !errors.Is(err, repo.ErrNotFound) {
			return err
		}
		if old == t.commit {
			continue
		}
		if err := tx.SetRef(t.path, &t.commit); err != nil {
			return err
		}
		name := t.name
		if p.o.Remote != "" && !p.o.Mirror {
			name = p.o.Remote + ":" + t.name
		}
		p.res.Refs = append(p.res.Refs, RefUpdate{Name: name, Path: t.path, Old: old, New: t.commit})
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if !partialPull {
		for _, c := range p.order {
			if ci := p.commits[c]; ci.partial {
				if err := p.dst.ClearCommitPartial(c); err != nil {
					return err
				}
			}
		}
	}
	if p.o.Mirror && len(p.o.Refs) == 0 && p.sumData != nil && !p.src.Local() {
		var sig objects.Metadata
		if p.sumSig != nil {
			if sig, err = summary.ParseSig(p.sumSig); err != nil {
				return err
			}
		}
		if err := summary.Publish(p.dst, p.sumData, sig); err != nil {
			return err
		}
	}
	return nil
}

// writeCommitMeta stores the source's detached metadata unless the stored
// copy is the same.
func (p *puller) writeCommitMeta(tx *repo.Txn, ci *commitInfo) error {
	if ci.stored {
		old, err := p.dst.ReadCommitMeta(ci.c)
		if err != nil && !errors.Is(err, repo.ErrCorrupt) {
			return err
		}
		a, _ := old.Marshal()
		b, _ := ci.meta.Marshal()
		if old != nil && string(a) == string(b) {
			return nil
		}
	}
	return tx.WriteCommitMeta(ci.c, ci.meta)
}
