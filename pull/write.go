package pull

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/summary"
	"golang.org/x/sync/errgroup"
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

// store stages the received dirtrees and dirmetas and the missing file
// objects (fetched Parallel at a time) in one transaction, whose staging
// directory is spread over the filesystem (Txn.SpreadStaging). What is
// staged is published every FlushInterval while the workers go on
// (Txn.Flush), and the rest when they end (Txn.Commit), also when the pull
// fails or is cancelled: what verified is kept.
//
// Cancelling ctx stops the workers at once: every Source reads through ctx
// (a local copy checks it between reads), so a large file stops mid-copy
// and its temporary is removed, never published. The transaction itself
// runs on context.WithoutCancel(ctx) for that reason only: the Commit after
// a cancellation must still publish the objects that verified. Only
// complete, verified objects are published, and no ref (refs wait for
// finish).
func (p *puller) store(ctx context.Context, meta []metaObj, missing []objects.Checksum, pl Plan) error {
	if len(meta) == 0 && len(missing) == 0 {
		return nil
	}
	tx, err := p.dst.BeginWith(context.WithoutCancel(ctx), repo.TxnOptions{Warner: p.o.Warner})
	if err != nil {
		return err
	}
	tx.SpreadStaging()
	byBytes := pl.ContentBytes >= 0
	if len(missing) > 0 {
		if byBytes {
			p.rep.Phase("Receiving objects", "bytes", pl.ContentBytes)
		} else {
			p.rep.Phase("Receiving objects", "objects", int64(len(missing)))
		}
		defer p.rep.Done()
	}
	onBytes := func(n int64) {
		p.stats.BytesReceived.Add(n)
		if byBytes {
			p.rep.Add(n)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	workersDone := make(chan struct{})
	// The flusher publishes what is staged every FlushInterval, until the
	// workers are done (Flush must not overlap Commit).
	g.Go(func() error {
		t := time.NewTicker(p.o.FlushInterval)
		defer t.Stop()
		for {
			select {
			case <-workersDone:
				return nil
			case <-gctx.Done():
				return nil
			case <-t.C:
				if err := tx.Flush(); err != nil {
					return err
				}
			}
		}
	})
	// The workers stage the metadata first (it is in memory), then fetch
	// the files, at most Parallel at once.
	var metaBytes int64
	g.Go(func() error {
		defer close(workersDone)
		w, wctx := errgroup.WithContext(gctx)
		w.SetLimit(p.o.Parallel)
		for i := range meta {
			if wctx.Err() != nil {
				break
			}
			m := &meta[i]
			metaBytes += int64(len(m.data))
			w.Go(func() error { return tx.WriteMetadataVerified(m.kind, m.data, m.c) })
		}
		for _, c := range missing {
			if wctx.Err() != nil {
				break
			}
			w.Go(func() error {
				// Transport failures are retried (and broken bodies
				// resumed) by the Fetcher; what comes back is final.
				if _, err := p.src.File(wctx, tx, c, onBytes); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					return err
				}
				p.stats.ContentFetched.Add(1)
				if !byBytes {
					p.rep.Add(1)
				}
				return nil
			})
		}
		return w.Wait()
	})
	err = g.Wait()
	// What verified is published, even when the pull failed.
	if cerr := tx.Commit(); err == nil {
		err = cerr
	}
	p.stats.ContentWritten.Add(max(tx.BytesWritten.Load()-metaBytes, 0))
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return err
}

// finish stores the commits and their detached metadata, then moves the
// refs, in a transaction of their own that starts after every object of
// their trees is published. Commits whose tree is not all there (CommitOnly,
// Subpaths) are first marked partial; markers of commits now complete are
// removed last.
func (p *puller) finish(ctx context.Context, targets []target) error {
	partialPull := p.o.CommitOnly || len(p.o.Subpaths) > 0
	tx, err := p.dst.BeginWith(ctx, repo.TxnOptions{Warner: p.o.Warner})
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
