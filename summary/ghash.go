package summary

// dictOrder reproduces the iteration order of a GLib GHashTable keyed by
// strings (g_str_hash), which is the order g_variant_dict_end() serialises
// an a{sv} in. OSTree builds the summary's dictionaries with GVariantDict,
// so matching its bytes means matching this order. The algorithm is GLib
// 2.74's open addressing: bucket (hash*11) % prime, quadratic probing, grow
// when the table is 15/16 full, rehash in place.
type dictOrder struct {
	hashes []uint32 // 0 unused, 1 tombstone (never made here), >=2 real
	keys   []string
	nnodes int
	noccup int
	shift  uint
}

var primeMod = [...]uint32{1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521,
	131071, 262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859, 134217689,
	268435399, 536870909, 1073741789, 2147483647}

const minShift = 3

func newDictOrder() *dictOrder {
	d := &dictOrder{}
	d.setShift(minShift)
	d.hashes = make([]uint32, 1<<minShift)
	d.keys = make([]string, 1<<minShift)
	return d
}

func (d *dictOrder) setShift(s uint) { d.shift = s }
func (d *dictOrder) size() int       { return 1 << d.shift }
func (d *dictOrder) mask() uint32    { return uint32(d.size() - 1) }
func (d *dictOrder) index(h uint32) uint32 {
	return (h * 11) % primeMod[d.shift]
}

// strHash is g_str_hash: djb2 over signed chars.
func strHash(s string) uint32 {
	h := uint32(5381)
	for i := 0; i < len(s); i++ {
		h = h<<5 + h + uint32(int32(int8(s[i])))
	}
	return h
}

// insert adds key (a no-op for a key already present: its slot is kept).
func (d *dictOrder) insert(key string) {
	h := strHash(key)
	if h < 2 {
		h = 2
	}
	i := d.index(h)
	var step uint32
	for d.hashes[i] != 0 {
		if d.hashes[i] == h && d.keys[i] == key {
			return
		}
		step++
		i = (i + step) & d.mask()
	}
	d.hashes[i] = h
	d.keys[i] = key
	d.nnodes++
	d.noccup++
	d.maybeResize()
}

func (d *dictOrder) maybeResize() {
	size := d.size()
	if (size > d.nnodes*4 && size > 1<<minShift) || size <= d.noccup+d.noccup/16 {
		d.resize()
	}
}

func (d *dictOrder) resize() {
	oldSize := d.size()
	n := int(float64(d.nnodes) * 1.333)
	shift := uint(0)
	for ; n != 0; shift++ {
		n >>= 1
	}
	d.setShift(max(shift, minShift))
	newSize := d.size()
	if newSize > oldSize {
		d.hashes = append(d.hashes, make([]uint32, newSize-oldSize)...)
		d.keys = append(d.keys, make([]string, newSize-oldSize)...)
	}
	moved := make([]bool, max(newSize, oldSize))
	for i := 0; i < oldSize; i++ {
		nh := d.hashes[i]
		if nh < 2 {
			d.hashes[i] = 0
			continue
		}
		if moved[i] {
			continue
		}
		d.hashes[i] = 0
		key := d.keys[i]
		d.keys[i] = ""
		for {
			hv := d.index(nh)
			var step uint32
			for moved[hv] {
				step++
				hv = (hv + step) & d.mask()
			}
			moved[hv] = true
			replaced := d.hashes[hv]
			d.hashes[hv] = nh
			if replaced < 2 {
				d.keys[hv] = key
				break
			}
			nh = replaced
			key, d.keys[hv] = d.keys[hv], key
		}
	}
	if newSize < oldSize {
		d.hashes = d.hashes[:newSize]
		d.keys = d.keys[:newSize]
	}
	d.noccup = d.nnodes
}

// order returns the keys in iteration order.
func (d *dictOrder) order() []string {
	var out []string
	for i, h := range d.hashes {
		if h >= 2 {
			out = append(out, d.keys[i])
		}
	}
	return out
}
