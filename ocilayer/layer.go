package ocilayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
)

// droppedDirs are the API file systems whose contents a layer never
// carries into a commit (the directories themselves are kept), as in
// ostree-ext's tar import.
var droppedDirs = map[string]bool{"run": true, "tmp": true, "proc": true, "sys": true, "dev": true}

// Whiteout names (OCI image spec, "Whiteouts").
const (
	WhiteoutPrefix = ".wh."
	OpaqueWhiteout = ".wh..wh..opq"
)

// rewrite maps a plain layer's entry: absolute names are refused (a
// layer's names are relative), /etc becomes /usr/etc, and the contents
// of the dropped directories are skipped.
func rewrite(name string, comps []string) ([]string, bool, error) {
	if strings.HasPrefix(name, "/") {
		return nil, false, errors.New("absolute name in a container layer")
	}
	if len(comps) == 0 {
		return comps, false, nil
	}
	// A whiteout must name a file of its directory (".wh..." would name
	// ".."): refused here, so that such a layer is never stored.
	if last := comps[len(comps)-1]; last != OpaqueWhiteout {
		if target, ok := strings.CutPrefix(last, WhiteoutPrefix); ok && objects.ValidateFilename(target) != nil {
			return nil, false, fmt.Errorf("whiteout %q names no file", name)
		}
	}
	if droppedDirs[comps[0]] {
		return comps, len(comps) > 1, nil
	}
	if comps[0] == "etc" {
		return append([]string{"usr"}, comps...), false, nil
	}
	return comps, false, nil
}

// LayerOptions tune ImportLayer.
type LayerOptions struct {
	// Reporter counts files written; nil reports nothing.
	Reporter progress.Reporter
	// MaxBytes caps the uncompressed layer (0: no cap).
	MaxBytes int64
}

// ImportLayer reads one plain (uncompressed) layer tar from r and writes
// it to t as an orphan commit with no metadata and timestamp 0, returning
// its checksum. Whiteouts stay in the commit as entries; Merge applies
// them. The caller queues the layer's ref and commits t.
func ImportLayer(ctx context.Context, t *repo.Txn, r io.Reader, o LayerOptions) (objects.Checksum, error) {
	m := commit.NewMTree(nil)
	err := commit.AddTar(ctx, t, m, r, commit.Filter{}, commit.TarOptions{
		Reporter:        o.Reporter,
		MaxBytes:        o.MaxBytes,
		Rewrite:         rewrite,
		ImplicitParents: true,
	})
	if err != nil {
		return objects.Checksum{}, err
	}
	if m.Meta == nil {
		// Layers rarely carry "./": the root is root's 0755.
		m.Meta = &objects.DirMeta{Mode: objects.ModeDir | 0o755}
	}
	zero := objects.Checksum{}
	res, err := commit.Write(ctx, t, m, commit.Options{
		Orphan:     true,
		Timestamp:  unixZero,
		Parent:     &zero,
		NoBindings: true,
	})
	if err != nil {
		return objects.Checksum{}, err
	}
	return res.Checksum, nil
}

var unixZero = time.Unix(0, 0)
