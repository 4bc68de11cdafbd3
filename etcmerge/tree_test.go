package etcmerge

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/fsutil"
)

// node describes one entry of a test tree.
type node struct {
	typ      byte // 'f' file, 'd' directory, 'l' symlink, 'p' FIFO
	data     string
	mode     uint32 // permission bits; 0 means 0644 (files) or 0755 (dirs)
	uid, gid int
	xattrs   map[string]string
}

func F(data string) node   { return node{typ: 'f', data: data} }
func D() node              { return node{typ: 'd'} }
func L(target string) node { return node{typ: 'l', data: target} }
func P() node              { return node{typ: 'p'} }

func (n node) m(mode uint32) node { n.mode = mode; return n }
func (n node) own(uid, gid int) node {
	n.uid, n.gid = uid, gid
	return n
}
func (n node) x(k, v string) node {
	x := map[string]string{}
	for a, b := range n.xattrs {
		x[a] = b
	}
	x[k] = v
	n.xattrs = x
	return n
}

// tree maps '/'-separated paths to nodes; parents not listed are created
// as plain directories.
type tree map[string]node

func buildTree(t *testing.T, dir string, tr tree) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	paths := make([]string, 0, len(tr))
	for p := range tr {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		n, full := tr[p], filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch n.typ {
		case 'f':
			err = os.WriteFile(full, []byte(n.data), 0o644)
		case 'd':
			err = os.Mkdir(full, 0o755)
		case 'l':
			err = os.Symlink(n.data, full)
		case 'p':
			err = unix.Mkfifo(full, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Attributes last, deepest first, so that modes do not get in the way.
	for i := len(paths) - 1; i >= 0; i-- {
		n, full := tr[paths[i]], filepath.Join(dir, paths[i])
		for k, v := range n.xattrs {
			if err := unix.Lsetxattr(full, k, []byte(v), 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.Lchown(full, n.uid, n.gid); err != nil {
			t.Fatal(err)
		}
		if n.typ != 'l' {
			mode := n.mode
			if mode == 0 {
				mode = 0o644
				if n.typ == 'd' {
					mode = 0o755
				}
			}
			if err := unix.Chmod(full, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// snapshot describes every entry below dir: type, mode, owner, xattrs,
// content or symlink target; with mtimes, also regular files' mtimes.
func snapshot(t *testing.T, dir string, mtimes bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		vals, names, err := fsutil.ListXattrs(p)
		if err != nil {
			return err
		}
		var xs []string
		for _, n := range names {
			xs = append(xs, n+"="+string(vals[n]))
		}
		desc := fmt.Sprintf("mode=%o owner=%d:%d xattrs=[%s]", st.Mode, st.Uid, st.Gid, strings.Join(xs, ","))
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" content=%q", data)
			if mtimes {
				desc += fmt.Sprintf(" mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " target=" + target
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diffSnapshots returns the differences between two snapshots, one line
// each, or "".
func diffSnapshots(got, want map[string]string) string {
	var lines []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			lines = append(lines, "missing "+p+": "+w)
		} else if g != w {
			lines = append(lines, "differs "+p+":\n   got  "+g+"\n   want "+w)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			lines = append(lines, "extra "+p+": "+g)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
