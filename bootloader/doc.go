// Package bootloader holds the boot-loader side of an OSTree sysroot as
// ostree 2022.7 writes and reads it: Boot Loader Specification entries
// (Entry), kernel command lines with ostree's editing rules (Kargs),
// systemd-boot boot-counting file names and the order in which a BLS
// loader picks its default entry, and the kernel, initramfs and device
// tree of a deployment tree with the boot checksum that names
// boot/ostree/$os-$bootcsum (FindKernel).
//
// Everything here is pure or read-only: writing entries and kernels into
// /boot is the sysroot package's job, through fsutil.
package bootloader
