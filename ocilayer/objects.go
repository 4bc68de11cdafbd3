package ocilayer

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
)

// Where ostree-ext's tar streams keep the repository.
const (
	repoPrefix    = "sysroot/ostree/repo/"
	objectsPrefix = repoPrefix + "objects/"
)

// Limits on what an encapsulated layer may declare.
const (
	// MaxMetadataObject caps a commit, dirtree, dirmeta or commitmeta
	// object (ostree's own cap on metadata is 10 MiB... for dirtrees of
	// huge directories we allow more).
	MaxMetadataObject = 32 << 20
	// maxXattrsObject caps a .file-xattrs object, as ostree-ext does.
	maxXattrsObject = 1 << 20
)

// ObjectsResult is what ImportObjects found in a layer.
type ObjectsResult struct {
	// Commit is the commit object the layer carried (nil: none, an
	// object-set layer).
	Commit *objects.Checksum
	// Files are the content objects the layer carried, in stream order.
	Files []objects.Checksum
}

// ImportObjects reads one encapsulated layer (uncompressed tar, ostree-ext
// format) from r and writes the objects it carries to t, each verified
// against its name before it is staged. Entries outside
// sysroot/ostree/repo/objects (the hard-linked checkout, the repo's
// skeleton) are read and ignored. wantCommit requires the layer to carry
// exactly one commit object (the image's first layer).
func ImportObjects(ctx context.Context, t *repo.Txn, r io.Reader, wantCommit bool, rep progress.Reporter) (*ObjectsResult, error) {
	rep = progress.OrNop(rep)
	tr := commit.NewTarReader(r)
	res := &ObjectsResult{}
	xattrs := map[string]objects.Xattrs{} // .file-xattrs objects by their sha256
	var pending *struct {
		file objects.Checksum
		xs   objects.Xattrs
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		rel, ok := strings.CutPrefix(path.Clean(h.Name), objectsPrefix)
		if !ok {
			if h.Typeflag == '3' || h.Typeflag == '4' || h.Typeflag == '6' {
				return nil, commit.EntryError(h, "device nodes and fifos are not allowed in an image layer")
			}
			continue
		}
		dir, base, ok := strings.Cut(rel, "/")
		if !ok || len(dir) != 2 || strings.Contains(base, "/") {
			continue // an objects/XX directory entry
		}
		stem, ext, ok := strings.Cut(base, ".")
		if !ok {
			return nil, commit.EntryError(h, "object name without a kind")
		}
		sum, err := objects.ParseChecksum(dir + stem)
		if err != nil {
			return nil, commit.EntryError(h, "object name is not a checksum")
		}
		switch ext {
		case "commit", "dirtree", "dirmeta", "commitmeta":
			data, err := readSmall(tr, h, MaxMetadataObject)
			if err != nil {
				return nil, err
			}
			if ext == "commitmeta" {
				md, err := objects.ParseMetadata(data)
				if err != nil {
					return nil, commit.EntryError(h, "detached metadata: %v", err)
				}
				if err := t.WriteCommitMeta(sum, md); err != nil {
					return nil, fmt.Errorf("%s: %w", h.Name, err)
				}
				continue
			}
			kind, _ := objects.ParseKind(ext)
			if kind == objects.KindCommit {
				if !wantCommit {
					return nil, commit.EntryError(h, "a commit object in a layer that must carry none")
				}
				if res.Commit != nil {
					return nil, commit.EntryError(h, "a second commit object in one layer")
				}
				res.Commit = &sum
			}
			if err := t.WriteMetadataVerified(kind, data, sum); err != nil {
				return nil, commit.EntryError(h, "%v", err)
			}
		case "file-xattrs":
			data, err := readSmall(tr, h, maxXattrsObject)
			if err != nil {
				return nil, err
			}
			if got := fmt.Sprintf("%x", sha256.Sum256(data)); got != sum.String() {
				return nil, commit.EntryError(h, "xattrs object hashes to %s", got)
			}
			xs, err := objects.ParseXattrs(data)
			if err != nil {
				return nil, commit.EntryError(h, "%v", err)
			}
			xattrs[sum.String()] = xs
		case "file-xattrs-link":
			if h.Typeflag != '1' {
				return nil, commit.EntryError(h, "xattrs link is not a hard link")
			}
			target, ok := strings.CutPrefix(path.Clean(h.Linkname), objectsPrefix)
			tdir, tbase, _ := strings.Cut(target, "/")
			tstem, _ := strings.CutSuffix(tbase, ".file-xattrs")
			xs, found := xattrs[tdir+tstem]
			if !ok || !found {
				return nil, commit.EntryError(h, "xattrs link to %q, which the layer did not carry before it", h.Linkname)
			}
			pending = &struct {
				file objects.Checksum
				xs   objects.Xattrs
			}{sum, xs}
		case "file":
			if pending == nil || pending.file != sum {
				return nil, commit.EntryError(h, "content object without its xattrs link before it")
			}
			fh := &objects.FileHeader{UID: uint32(h.UID), GID: uint32(h.GID), Xattrs: pending.xs}
			pending = nil
			perm := uint32(h.Mode) & 0o7777
			switch h.Typeflag {
			case '0', 0:
				fh.Mode = objects.ModeRegular | perm
				fh.Size = uint64(h.Size)
			case '2':
				fh.Mode = objects.ModeSymlink | perm
				fh.Target = h.Linkname
			default:
				return nil, commit.EntryError(h, "content object of tar type %q (only regular files and symlinks)", rune(h.Typeflag))
			}
			var content io.Reader = tr
			if fh.IsSymlink() {
				content = strings.NewReader("")
			}
			if err := t.WriteFileVerified(fh, content, sum); err != nil {
				return nil, commit.EntryError(h, "%v", err)
			}
			res.Files = append(res.Files, sum)
			rep.Add(1)
		default:
			return nil, commit.EntryError(h, "unknown object kind %q", ext)
		}
	}
	if wantCommit && res.Commit == nil {
		return nil, fmt.Errorf("%w: the layer carries no commit object", commit.ErrInvalidTar)
	}
	return res, nil
}

func readSmall(tr *commit.TarReader, h *commit.TarHeader, limit int64) ([]byte, error) {
	if h.Typeflag != '0' && h.Typeflag != 0 {
		return nil, commit.EntryError(h, "metadata object is not a regular file")
	}
	if h.Size > limit {
		return nil, commit.EntryError(h, "object of %d bytes, over the %d-byte limit", h.Size, limit)
	}
	data := make([]byte, h.Size)
	if _, err := io.ReadFull(tr, data); err != nil {
		return nil, err
	}
	return data, nil
}

// ObjectSetCommit writes the commit ostree-ext records for a layer that
// carried only content objects: a root (0:0, 040755) whose files are the
// objects, each named by its checksum, no metadata, timestamp 0. It keeps
// the objects reachable (prune) under the layer's ref.
func ObjectSetCommit(ctx context.Context, t *repo.Txn, files []objects.Checksum) (objects.Checksum, error) {
	m := commit.NewMTree(&objects.DirMeta{Mode: objects.ModeDir | 0o755})
	for _, f := range files {
		slot, err := m.SetFile(t.Repo(), f.String())
		if err != nil {
			return objects.Checksum{}, err
		}
		*slot = f
	}
	zero := objects.Checksum{}
	res, err := commit.Write(ctx, t, m, commit.Options{Orphan: true, Timestamp: unixZero, Parent: &zero, NoBindings: true})
	return res.Checksum, err
}
