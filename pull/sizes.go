package pull

import (
	"encoding/binary"
	"fmt"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// objSize is one entry of a commit's ostree.sizes metadata.
type objSize struct {
	kind     objects.Kind
	archived uint64 // size of the object in an archive repo (what is downloaded)
	unpacked uint64 // size of the content once unpacked
}

// OSTree's object type numbers, as ostree.sizes records them.
var sizesKinds = map[byte]objects.Kind{
	1: objects.KindFile,
	2: objects.KindDirTree,
	3: objects.KindDirMeta,
	4: objects.KindCommit,
}

// parseSizes reads a commit's ostree.sizes (written by `ostree commit
// --generate-sizes`): an array of byte strings, each a checksum, the
// archived and unpacked sizes as varints, and (in newer commits) an object
// type byte. It returns nil when the commit has none.
func parseSizes(md objects.Metadata) (map[objects.Checksum]objSize, error) {
	v, ok := md.Get("ostree.sizes")
	if !ok {
		return nil, nil
	}
	if v.Type.String() != "aay" {
		return nil, fmt.Errorf("%w: ostree.sizes has type %s, want aay", repo.ErrCorrupt, v.Type)
	}
	out := map[objects.Checksum]objSize{}
	for _, it := range v.Value.([]any) {
		b := it.([]byte)
		if len(b) < 32+2 {
			return nil, fmt.Errorf("%w: ostree.sizes entry of %d bytes", repo.ErrCorrupt, len(b))
		}
		var c objects.Checksum
		copy(c[:], b)
		b = b[32:]
		archived, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: ostree.sizes: bad varint", repo.ErrCorrupt)
		}
		b = b[n:]
		unpacked, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: ostree.sizes: bad varint", repo.ErrCorrupt)
		}
		b = b[n:]
		kind := objects.KindFile
		if len(b) > 0 {
			k, ok := sizesKinds[b[0]]
			if !ok {
				return nil, fmt.Errorf("%w: ostree.sizes: object type %d", repo.ErrCorrupt, b[0])
			}
			kind = k
		}
		out[c] = objSize{kind: kind, archived: archived, unpacked: unpacked}
	}
	return out, nil
}
