package commit

import (
	"fmt"
	"sort"

	"github.com/strata-os/strata/ghash"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

// Metadata keys of a bootable commit, as OSTree names them.
const (
	// MetaBootable (ostree.bootable) is true on a commit that holds a kernel.
	MetaBootable = "ostree.bootable"
	// MetaLinux (ostree.linux) is the kernel version: the name of the
	// usr/lib/modules directory that holds vmlinuz.
	MetaLinux = "ostree.linux"
)

// KernelVersion finds the kernel of a tree as `ostree commit --bootable`
// (ostree 2022.7, ostree_commit_metadata_for_bootable) does: the one
// directory of usr/lib/modules that holds an entry named vmlinuz. It fails
// with ErrNotFound when the tree has no usr/lib/modules or no kernel in it,
// and with ErrInvalid when there are several. A kernel only in
// boot/vmlinuz-* is not found, as ostree 2022.7 does not find it.
func KernelVersion(r *repo.Repo, m *MTree) (string, error) {
	d := m
	for _, name := range []string{"usr", "lib", "modules"} {
		next, err := d.Lookup(r, name)
		if err != nil {
			return "", err
		}
		if next == nil {
			return "", fmt.Errorf("%w: no directory usr/lib/modules in the tree (--bootable)", repo.ErrNotFound)
		}
		d = next
	}
	if err := d.expand(r); err != nil {
		return "", err
	}
	var found []string
	for name, sub := range d.dirs {
		if err := sub.expand(r); err != nil {
			return "", err
		}
		_, isFile := sub.files["vmlinuz"]
		_, isDir := sub.dirs["vmlinuz"]
		if isFile || isDir {
			found = append(found, name)
		}
	}
	sort.Strings(found)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w: no kernel found in /usr/lib/modules (--bootable)", repo.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%w: multiple kernels found in /usr/lib/modules: %v (--bootable)", repo.ErrInvalid, found)
}

// BootableMetadata returns md with ostree.bootable = true and ostree.linux
// = kver, in the order and with the values `ostree commit --bootable`
// gives: ostree passes the metadata through a GVariantDict, so a key given
// twice keeps its first place and its last value, the two keys replace
// any the caller gave, and the entries come out in the order of GLib's
// hash table (ghash).
func BootableMetadata(md objects.Metadata, kver string) objects.Metadata {
	md = append(append(objects.Metadata(nil), md...),
		objects.MetaEntry{Key: MetaBootable, Value: gvariant.Variant{Type: bType, Value: true}},
		objects.MetaEntry{Key: MetaLinux, Value: gvariant.Variant{Type: sType, Value: kver}})
	return dictOrder(md)
}

// dictOrder is what g_variant_dict_init and g_variant_dict_end make of md.
func dictOrder(md objects.Metadata) objects.Metadata {
	vals := make(map[string]gvariant.Variant, len(md))
	keys := make([]string, 0, len(md))
	for _, e := range md {
		keys = append(keys, e.Key)
		vals[e.Key] = e.Value
	}
	out := objects.Metadata{}
	for _, k := range ghash.Order(keys) {
		out = append(out, objects.MetaEntry{Key: k, Value: vals[k]})
	}
	return out
}

var bType = gvariant.MustParseType("b")
