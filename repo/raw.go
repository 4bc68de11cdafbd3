package repo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
)

// ReadStagedMetadata reads a metadata object written in this transaction
// (or already in the repository), verifying its checksum. It lets a caller
// sign a commit before the transaction publishes it.
func (t *Txn) ReadStagedMetadata(kind objects.Kind, c objects.Checksum) ([]byte, error) {
	ref := ObjectRef{kind, c}
	t.mu.Lock()
	staged := t.staged[ref]
	t.mu.Unlock()
	if !staged {
		return t.r.ReadMetadata(kind, c)
	}
	f, err := os.Open(t.stagedPath(ref))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return t.r.ReadMetadata(kind, c)
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, objects.MaxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("read staged %s: %w", ObjectName(kind, c), err)
	}
	if len(data) > objects.MaxMetadataSize || (kind != objects.KindCommitMeta && objects.Sum(data) != c) {
		return nil, fmt.Errorf("%w: staged object %s", ErrCorrupt, ObjectName(kind, c))
	}
	return data, nil
}

// CheckFreeSpace fails when writing extra more bytes would leave less free
// space than core.min-free-space-percent reserves.
func (r *Repo) CheckFreeSpace(extra uint64) error { return r.checkFreeSpace(extra) }

// Commit-partial markers: state/CHECKSUM.commitpartial, as OSTree writes
// them, say that a commit's tree may be incomplete in this repository (a
// pull was interrupted or fetched only part of it).

func (r *Repo) partialPath(c objects.Checksum) string {
	return filepath.Join(r.path, "state", c.String()+".commitpartial")
}

// MarkCommitPartial durably records that commit c may be incomplete. It is
// written before any object of c, so a crash leaves the marker.
func (r *Repo) MarkCommitPartial(c objects.Checksum) error {
	if err := fsutil.MkdirAllSync(filepath.Join(r.path, "state"), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFile(r.partialPath(c), nil, 0o644)
}

// ClearCommitPartial removes c's marker once its tree is complete.
func (r *Repo) ClearCommitPartial(c objects.Checksum) error {
	err := os.Remove(r.partialPath(c))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return fsutil.SyncDir(filepath.Join(r.path, "state"))
}

// IsCommitPartial reports whether c carries a partial marker.
func (r *Repo) IsCommitPartial(c objects.Checksum) (bool, error) {
	_, err := os.Stat(r.partialPath(c))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// PartialCommits lists the commits that carry a partial marker.
func (r *Repo) PartialCommits() ([]objects.Checksum, error) {
	ents, err := os.ReadDir(filepath.Join(r.path, "state"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []objects.Checksum
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".commitpartial")
		if !ok {
			continue
		}
		if c, err := objects.ParseChecksum(base); err == nil {
			out = append(out, c)
		}
	}
	return out, nil
}
