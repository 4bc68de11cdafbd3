package etcmerge

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// dirent is one directory entry as getdents64 returns it.
type dirent struct {
	name string
	ino  uint64
}

// glibChunk is how many entries GLib's local file enumerator reads before
// it sorts them by inode number (CHUNK_SIZE in glocalfileenumerator.c).
const glibChunk = 1000

// readdirGlib lists dir (without "." and "..") in the order in which
// GLib's g_file_enumerate_children hands the entries to ostree: readdir
// order, cut into chunks of 1000, each chunk sorted by inode number with
// GLib's comparator (the difference of two longs truncated to int) and
// glibc's qsort (a merge sort). Directory listings of `ostree admin
// config-diff` and the /etc merge follow this order.
func readdirGlib(dir string) ([]dirent, error) {
	ents, err := readdirRaw(dir)
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(ents); i += glibChunk {
		end := min(i+glibChunk, len(ents))
		msort(ents[i:end], make([]dirent, end-i))
	}
	return ents, nil
}

// readdirRaw returns dir's entries in getdents64 order.
func readdirRaw(dir string) ([]dirent, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var out []dirent
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read directory %s: %w", dir, err)
		}
		if n <= 0 {
			return out, nil
		}
		// struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name.
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return nil, fmt.Errorf("read directory %s: malformed dirent", dir)
			}
			name := b[19:reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			if s := string(name); s != "." && s != ".." {
				out = append(out, dirent{name: s, ino: binary.NativeEndian.Uint64(b[0:8])})
			}
			b = b[reclen:]
		}
	}
}

// inodeCmp is GLib's sort_by_inode: `a->inode - b->inode` on longs,
// returned as an int (so only the low 32 bits of the difference count).
func inodeCmp(a, b dirent) int32 { return int32(int64(a.ino) - int64(b.ino)) }

// msort is glibc's qsort for arrays that fit in memory (msort_with_tmp):
// a top-down merge sort that takes from the left run while cmp <= 0. It
// is stable, and with GLib's inconsistent comparator the exact algorithm
// is what decides the order.
func msort(b, tmp []dirent) {
	n := len(b)
	if n <= 1 {
		return
	}
	n1 := n / 2
	b1, b2 := b[:n1], b[n1:]
	msort(b1, tmp)
	msort(b2, tmp)
	t := tmp[:0]
	i, j := 0, 0
	for i < len(b1) && j < len(b2) {
		if inodeCmp(b1[i], b2[j]) <= 0 {
			t = append(t, b1[i])
			i++
		} else {
			t = append(t, b2[j])
			j++
		}
	}
	t = append(t, b1[i:]...)
	// The rest of b2 is already in place.
	copy(b, t)
}
