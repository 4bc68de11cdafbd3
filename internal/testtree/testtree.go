// Package testtree builds, for tests, a directory tree that exercises every
// entry kind a repository must carry: modes with setuid/setgid/sticky,
// foreign owners, symlinks (absolute, relative, dangling, to a directory),
// hard links, xattrs, empty directories, unicode and maximum-length names,
// deep paths, empty, small and large files.
package testtree

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// LargeSize is the size of the large file: above the repo's in-memory
// threshold, so the streaming write path is exercised.
const LargeSize = 3<<20 + 17

// Build creates the tree under dir (which must exist and be empty) and
// returns dir. It needs root for foreign owners; xattrs are set in the
// user namespace (and trusted, when root).
func Build(t testing.TB, dir string) string {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(rel string, data []byte, mode uint32) {
		t.Helper()
		p := filepath.Join(dir, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, 0o600))
		must(unix.Chmod(p, mode))
	}
	mkdir := func(rel string, mode uint32) {
		t.Helper()
		p := filepath.Join(dir, rel)
		must(os.MkdirAll(p, 0o755))
		must(unix.Chmod(p, mode))
	}
	must(unix.Chmod(dir, 0o755))
	file("empty", nil, 0o644)
	file("hello.txt", []byte("hello, world\n"), 0o644)
	file("bin/tool", []byte("#!/bin/sh\necho tool\n"), 0o755)
	file("bin/suid", []byte("setuid binary\n"), 0o4755)
	file("bin/sgid", []byte("setgid binary\n"), 0o2711)
	file("private", []byte("secret\n"), 0o600)
	file("readonly", []byte("ro\n"), 0o444)
	large := bytes.Repeat([]byte("0123456789abcdef"), LargeSize/16+1)[:LargeSize]
	large[12345] = 'X'
	file("usr/share/large.bin", large, 0o644)
	mkdir("tmp", 0o1777)
	mkdir("root", 0o700)
	mkdir("empty-dir", 0o755)
	mkdir("var/empty/nested/also-empty", 0o755)
	mkdir("etc/sgid-dir", 0o2775)
	file("etc/os-release", []byte("NAME=test\n"), 0o644)
	// Symlinks of every shape.
	must(os.Symlink("/etc/os-release", filepath.Join(dir, "abs-link")))
	must(os.Symlink("../hello.txt", filepath.Join(dir, "bin/rel-link")))
	must(os.Symlink("does/not/exist", filepath.Join(dir, "dangling")))
	must(os.Symlink("usr/share", filepath.Join(dir, "dir-link")))
	// Hard links: three names, one inode.
	file("usr/lib/libfoo.so.1", []byte("ELF pretend\n"), 0o755)
	must(os.Link(filepath.Join(dir, "usr/lib/libfoo.so.1"), filepath.Join(dir, "usr/lib/libfoo-hardlink")))
	must(os.Link(filepath.Join(dir, "usr/lib/libfoo.so.1"), filepath.Join(dir, "bin/libfoo-copy")))
	// Unicode, spaces and a 255-byte name.
	file("unicode/ünïcødé 文件 🚀.txt", []byte("unicode\n"), 0o644)
	file("unicode/with space and 'quotes'", []byte("q\n"), 0o644)
	long := strings.Repeat("L", 251) + ".txt"
	file("unicode/"+long, []byte("long name\n"), 0o644)
	// A deep path.
	deep := "deep"
	for i := range 40 {
		deep = filepath.Join(deep, "d"+string(rune('a'+i%26)))
	}
	file(filepath.Join(deep, "leaf"), []byte("deep leaf\n"), 0o644)
	// Extended attributes on a file and a directory.
	must(unix.Lsetxattr(filepath.Join(dir, "hello.txt"), "user.comment", []byte("greeting"), 0))
	must(unix.Lsetxattr(filepath.Join(dir, "hello.txt"), "user.binary", []byte{0, 1, 2, 255}, 0))
	must(unix.Lsetxattr(filepath.Join(dir, "etc"), "user.dirattr", []byte("d"), 0))
	if os.Geteuid() == 0 {
		must(unix.Lsetxattr(filepath.Join(dir, "bin/tool"), "trusted.test", []byte("t"), 0))
		// Foreign owners.
		must(os.Lchown(filepath.Join(dir, "private"), 1234, 5678))
		must(os.Lchown(filepath.Join(dir, "root"), 0, 0))
		must(os.Lchown(filepath.Join(dir, "dangling"), 42, 43))
		must(os.Lchown(filepath.Join(dir, "etc/sgid-dir"), 1000, 1000))
	}
	return dir
}
