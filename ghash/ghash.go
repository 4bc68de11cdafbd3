// Package ghash reproduces the iteration order of a GLib GHashTable with
// string keys (g_str_hash). OSTree's bytes depend on it in two places: a
// GVariantDict serialises its a{sv} in that order (the summary), and
// ostree writes the BLS entry keys it does not know in the order of the
// table it keeps them in. The order follows from the keys' hashes and the
// history of insertions and removals; Table replays that history with GLib
// 2.74's algorithm (ghash.c: open addressing, initial bucket
// (hash*11) % prime, quadratic probing, tombstones, resize at 15/16
// occupancy or below 1/4 load, in-place rehash).
package ghash

const ghashMinShift = 3

var ghashPrimeMod = [...]uint32{
	1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521,
	131071, 262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213, 33554393,
	67108859, 134217689, 268435399, 536870909, 1073741789, 2147483647,
}

const (
	ghashUnused    = 0
	ghashTombstone = 1
)

type Table struct {
	size, mod, mask uint32
	hashes          []uint32
	keys            []string
	nnodes          int
	noccupied       int
}

// New returns an empty table.
func New() *Table {
	t := &Table{}
	t.setShift(ghashMinShift)
	t.hashes = make([]uint32, t.size)
	t.keys = make([]string, t.size)
	return t
}

// StrHash is g_str_hash: djb2 over signed chars.
func StrHash(s string) uint32 {
	h := uint32(5381)
	for i := 0; i < len(s); i++ {
		h = h<<5 + h + uint32(int32(int8(s[i])))
	}
	return h
}

func (t *Table) setShift(shift int) {
	t.size = 1 << shift
	t.mod = ghashPrimeMod[shift]
	t.mask = t.size - 1
}

func (t *Table) setShiftFromSize(size int) {
	shift := 0
	for n := size; n != 0; n >>= 1 {
		shift++
	}
	t.setShift(max(shift, ghashMinShift))
}

func (t *Table) hashToIndex(h uint32) uint32 { return (h * 11) % t.mod }

func (t *Table) lookup(key string) (index, hash uint32) {
	hash = StrHash(key)
	if hash < 2 {
		hash = 2
	}
	idx := t.hashToIndex(hash)
	var firstTomb uint32
	haveTomb := false
	step := uint32(0)
	for nh := t.hashes[idx]; nh != ghashUnused; nh = t.hashes[idx] {
		if nh == hash && t.keys[idx] == key {
			return idx, hash
		}
		if nh == ghashTombstone && !haveTomb {
			firstTomb, haveTomb = idx, true
		}
		step++
		idx = (idx + step) & t.mask
	}
	if haveTomb {
		return firstTomb, hash
	}
	return idx, hash
}

// Insert adds key; a key already present keeps its bucket.
func (t *Table) Insert(key string) {
	idx, hash := t.lookup(key)
	old := t.hashes[idx]
	if old >= 2 {
		return // already there: the key keeps its bucket
	}
	t.hashes[idx] = hash
	t.keys[idx] = key
	t.nnodes++
	if old == ghashUnused {
		t.noccupied++
		t.maybeResize()
	}
}

// Remove deletes key, leaving a tombstone as GLib does.
func (t *Table) Remove(key string) {
	idx, _ := t.lookup(key)
	if t.hashes[idx] < 2 {
		return
	}
	t.hashes[idx] = ghashTombstone
	t.keys[idx] = ""
	t.nnodes--
	t.maybeResize()
}

func (t *Table) maybeResize() {
	size, occ := int(t.size), t.noccupied
	if (size > t.nnodes*4 && size > 1<<ghashMinShift) || size <= occ+occ/16 {
		t.resize()
	}
}

func (t *Table) resize() {
	oldSize := t.size
	t.setShiftFromSize(int(float64(t.nnodes) * 1.333))
	var realloc []bool
	if t.size > oldSize {
		t.hashes = append(t.hashes, make([]uint32, t.size-oldSize)...)
		t.keys = append(t.keys, make([]string, t.size-oldSize)...)
		realloc = make([]bool, t.size)
	} else {
		realloc = make([]bool, oldSize)
	}
	for i := uint32(0); i < oldSize; i++ {
		nodeHash := t.hashes[i]
		if nodeHash < 2 {
			t.hashes[i] = ghashUnused
			continue
		}
		if realloc[i] {
			continue
		}
		t.hashes[i] = ghashUnused
		key := t.keys[i]
		t.keys[i] = ""
		for {
			hv := t.hashToIndex(nodeHash)
			step := uint32(0)
			for realloc[hv] {
				step++
				hv = (hv + step) & t.mask
			}
			realloc[hv] = true
			replaced := t.hashes[hv]
			t.hashes[hv] = nodeHash
			if replaced < 2 {
				t.keys[hv] = key
				break
			}
			nodeHash = replaced
			key, t.keys[hv] = t.keys[hv], key
		}
	}
	if t.size < oldSize {
		t.hashes = t.hashes[:t.size]
		t.keys = t.keys[:t.size]
	}
	t.noccupied = t.nnodes
}

// Keys returns the keys in iteration order.
func (t *Table) Keys() []string {
	var out []string
	for i, h := range t.hashes {
		if h >= 2 {
			out = append(out, t.keys[i])
		}
	}
	return out
}

// Order returns keys in the order in which a GLib GHashTable with string
// keys iterates them after they were inserted in the given order
// (duplicates ignored).
func Order(keys []string) []string {
	t := New()
	for _, k := range keys {
		t.Insert(k)
	}
	return t.Keys()
}
