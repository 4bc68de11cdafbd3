// Package ocilayer converts between container image layers (tar streams)
// and trees in a repository, with ostree-ext's semantics (see docs/oci.md):
//
//   - a plain layer (any container build's layer) becomes one commit:
//     /etc is moved to /usr/etc, the contents of /run, /tmp, /proc, /sys
//     and /dev are dropped, whiteouts (.wh.NAME, .wh..wh..opq) are kept as
//     entries, and Merge applies them when the layers are stacked;
//   - an encapsulated layer (ostree-ext's "bare-split-xattrs" tar: objects
//     under sysroot/ostree/repo/objects beside a hard-linked checkout)
//     imports its objects verified against their names, and WriteChunk
//     writes one.
//
// Layer tars are untrusted: they are read with commit's hardened tar
// reader, and an entry that would land outside the tree (a ".."
// component, an absolute name, a hard link out of the tree), a device
// node or fifo outside the dropped directories, or an object whose bytes
// do not hash to its name is refused with an error naming the entry.
// Nothing is published by this package: callers commit the repo.Txn only
// after the whole layer was read and verified.
package ocilayer
