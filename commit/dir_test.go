package commit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	. "github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/internal/testtree"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

func newTestRepo(t *testing.T, mode repo.Mode) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), mode, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func beginTxn(t *testing.T, r *repo.Repo) *repo.Txn {
	t.Helper()
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Abort() })
	return tx
}

// entry is what a committed tree records for one path.
type entry struct {
	uid, gid, mode uint32
	xattrs         objects.Xattrs
	target         string
	checksum       objects.Checksum // files only
}

// readTree flattens a stored tree into path -> entry ("/" is the root).
func readTree(t *testing.T, r *repo.Repo, tree, meta objects.Checksum) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	var walk func(p string, tree, meta objects.Checksum)
	walk = func(p string, tree, meta objects.Checksum) {
		dm, err := r.ReadDirMeta(meta)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = entry{uid: dm.UID, gid: dm.GID, mode: dm.Mode, xattrs: dm.Xattrs}
		dt, err := r.ReadDirTree(tree)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range dt.Files {
			h, err := r.ReadFileHeader(f.Checksum)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Join(p, f.Name)] = entry{uid: h.UID, gid: h.GID, mode: h.Mode, xattrs: h.Xattrs, target: h.Target, checksum: f.Checksum}
		}
		for _, d := range dt.Dirs {
			walk(filepath.Join(p, d.Name), d.Tree, d.Meta)
		}
	}
	walk("/", tree, meta)
	return out
}

// commitDir writes src with filter f and returns the flattened tree.
func commitDir(t *testing.T, r *repo.Repo, src string, f Filter) (map[string]entry, objects.Checksum) {
	t.Helper()
	tx := beginTxn(t, r)
	m := NewMTree(nil)
	if err := AddDir(context.Background(), tx, m, src, f, nil); err != nil {
		t.Fatal(err)
	}
	tree, meta, err := m.Write(tx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return readTree(t, r, tree, meta), tree
}

// fixtureTree builds internal/testtree's tree for one test.
func fixtureTree(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return testtree.Build(t, d)
}

func TestAddDirRecordsEverything(t *testing.T) {
	src := fixtureTree(t)
	r := newTestRepo(t, repo.ModeBare)
	got, _ := commitDir(t, r, src, Filter{})
	for p, want := range map[string]entry{
		"/bin/suid":     {mode: objects.ModeRegular | 0o4755},
		"/bin/sgid":     {mode: objects.ModeRegular | 0o2711},
		"/tmp":          {mode: objects.ModeDir | 0o1777},
		"/private":      {uid: 1234, gid: 5678, mode: objects.ModeRegular | 0o600},
		"/dangling":     {uid: 42, gid: 43, mode: objects.ModeSymlink | 0o777, target: "does/not/exist"},
		"/abs-link":     {mode: objects.ModeSymlink | 0o777, target: "/etc/os-release"},
		"/etc/sgid-dir": {uid: 1000, gid: 1000, mode: objects.ModeDir | 0o2775},
	} {
		e, ok := got[p]
		if !ok {
			t.Errorf("%s missing", p)
			continue
		}
		if e.uid != want.uid || e.gid != want.gid || e.mode != want.mode || e.target != want.target {
			t.Errorf("%s = %d:%d %#o %q, want %d:%d %#o %q", p, e.uid, e.gid, e.mode, e.target, want.uid, want.gid, want.mode, want.target)
		}
	}
	if v, ok := got["/hello.txt"].xattrs.Get("user.comment"); !ok || string(v) != "greeting" {
		t.Errorf("hello.txt xattrs = %v", got["/hello.txt"].xattrs)
	}
	if _, ok := got["/etc"].xattrs.Get("user.dirattr"); !ok {
		t.Errorf("directory xattrs lost: %v", got["/etc"].xattrs)
	}
	// Hard links are one object.
	a, b := got["/usr/lib/libfoo.so.1"].checksum, got["/bin/libfoo-copy"].checksum
	if a != b || a.IsZero() {
		t.Errorf("hard links stored as %v and %v", a, b)
	}
	if _, ok := got["/var/empty/nested/also-empty"]; !ok {
		t.Error("empty nested directory missing")
	}
	if _, ok := got["/unicode/"+strings.Repeat("L", 251)+".txt"]; !ok {
		t.Error("255-byte name missing")
	}
}

func TestAddDirFilters(t *testing.T) {
	src := fixtureTree(t)
	uid, gid := uint32(7), uint32(8)
	tests := []struct {
		name  string
		mode  repo.Mode
		f     Filter
		check func(t *testing.T, p string, e entry)
	}{
		{"owner", repo.ModeBare, Filter{OwnerUID: &uid, OwnerGID: &gid}, func(t *testing.T, p string, e entry) {
			if e.uid != 7 || e.gid != 8 {
				t.Errorf("%s owned by %d:%d", p, e.uid, e.gid)
			}
		}},
		{"no-xattrs", repo.ModeBare, Filter{NoXattrs: true}, func(t *testing.T, p string, e entry) {
			if len(e.xattrs) != 0 {
				t.Errorf("%s has xattrs %v", p, e.xattrs)
			}
		}},
		{"canonical", repo.ModeBare, Filter{Canonical: true}, func(t *testing.T, p string, e entry) {
			if e.uid != 0 || e.gid != 0 || len(e.xattrs) != 0 {
				t.Errorf("%s: %d:%d xattrs %v", p, e.uid, e.gid, e.xattrs)
			}
			if e.mode&objects.ModeTypeMask != objects.ModeSymlink && e.mode&^objects.ModeTypeMask&^0o755 != 0 {
				t.Errorf("%s: mode %#o has bits outside 0755", p, e.mode)
			}
		}},
		{"bare-user-only forces canonical", repo.ModeBareUserOnly, Filter{}, func(t *testing.T, p string, e entry) {
			if e.uid != 0 || e.gid != 0 || len(e.xattrs) != 0 || (e.mode&objects.ModeTypeMask != objects.ModeSymlink && e.mode&0o7022 != 0) {
				t.Errorf("%s: %d:%d %#o xattrs %v", p, e.uid, e.gid, e.mode, e.xattrs)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := commitDir(t, newTestRepo(t, tc.mode), src, tc.f)
			if len(got) < 30 {
				t.Fatalf("only %d entries", len(got))
			}
			for p, e := range got {
				tc.check(t, p, e)
			}
		})
	}
}

func TestAddDirRefusesSpecialFiles(t *testing.T) {
	for _, kind := range []string{"fifo", "socket", "device"} {
		t.Run(kind, func(t *testing.T) {
			src := t.TempDir()
			os.WriteFile(filepath.Join(src, "ok"), []byte("ok"), 0o644)
			os.Mkdir(filepath.Join(src, "sub"), 0o755)
			p := filepath.Join(src, "sub", "special")
			var err error
			switch kind {
			case "fifo":
				err = unix.Mkfifo(p, 0o644)
			case "socket":
				var fd int
				if fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0); err == nil {
					defer unix.Close(fd)
					err = unix.Bind(fd, &unix.SockaddrUnix{Name: p})
				}
			case "device":
				err = unix.Mknod(p, syscall.S_IFCHR|0o644, int(unix.Mkdev(1, 3)))
			}
			if err != nil {
				t.Fatal(err)
			}
			r := newTestRepo(t, repo.ModeBareUser)
			tx := beginTxn(t, r)
			err = AddDir(context.Background(), tx, NewMTree(nil), src, Filter{}, nil)
			if err == nil || !strings.Contains(err.Error(), "/sub/special") || !strings.Contains(err.Error(), "unsupported file type") {
				t.Errorf("err = %v, want one naming /sub/special", err)
			}
			tx.Abort()
			n := 0
			r.ListObjects(func(repo.ObjectRef) error { n++; return nil }, nil)
			if n != 0 {
				t.Errorf("%d objects stored by a refused commit", n)
			}
		})
	}
}

func TestAddDirErrors(t *testing.T) {
	r := newTestRepo(t, repo.ModeArchive)
	tx := beginTxn(t, r)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if err := AddDir(context.Background(), tx, NewMTree(nil), filepath.Join(dir, "missing"), Filter{}, nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing dir: %v", err)
	}
	if err := AddDir(context.Background(), tx, NewMTree(nil), file, Filter{}, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file as the tree: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := AddDir(ctx, tx, NewMTree(nil), fixtureTree(t), Filter{}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	// A symlink to a directory is followed at the root only.
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(fixtureTree(t), link)
	m := NewMTree(nil)
	if err := AddDir(context.Background(), tx, m, link, Filter{}, nil); err != nil {
		t.Errorf("root given as a symlink: %v", err)
	}
}

type countingReporter struct{ n atomic.Int64 }

func (c *countingReporter) Phase(string, string, int64) {}
func (c *countingReporter) Add(n int64)                 { c.n.Add(n) }
func (c *countingReporter) Done()                       {}

func TestAddDirReportsProgress(t *testing.T) {
	src := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		os.WriteFile(filepath.Join(src, n), []byte(n), 0o644)
	}
	os.Symlink("a", filepath.Join(src, "l"))
	rep := &countingReporter{}
	tx := beginTxn(t, newTestRepo(t, repo.ModeBareUser))
	if err := AddDir(context.Background(), tx, NewMTree(nil), src, Filter{}, rep); err != nil {
		t.Fatal(err)
	}
	if got := rep.n.Load(); got != 4 {
		t.Errorf("progress counted %d files, want 4", got)
	}
}

func TestOverlayTypeChangeRefused(t *testing.T) {
	base, fileOverDir, dirOverFile := t.TempDir(), t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(base, "d"), 0o755)
	os.WriteFile(filepath.Join(base, "d", "x"), nil, 0o644)
	os.WriteFile(filepath.Join(base, "f"), nil, 0o644)
	os.WriteFile(filepath.Join(fileOverDir, "d"), nil, 0o644)
	os.MkdirAll(filepath.Join(dirOverFile, "f"), 0o755)
	r := newTestRepo(t, repo.ModeBareUser)
	for _, over := range []string{fileOverDir, dirOverFile} {
		tx := beginTxn(t, r)
		m := NewMTree(nil)
		if err := AddDir(context.Background(), tx, m, base, Filter{}, nil); err != nil {
			t.Fatal(err)
		}
		err := AddDir(context.Background(), tx, m, over, Filter{}, nil)
		if !errors.Is(err, ErrTypeChange) || !errors.Is(err, repo.ErrInvalid) {
			t.Errorf("overlay %s: %v, want ErrTypeChange", filepath.Base(over), err)
		}
	}
	// The same overlays through a committed ref.
	tx := beginTxn(t, r)
	m := NewMTree(nil)
	if err := AddDir(context.Background(), tx, m, base, Filter{}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := Write(context.Background(), tx, m, Options{Branch: "base"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, over := range []string{fileOverDir, dirOverFile} {
		tx := beginTxn(t, r)
		m := NewMTree(nil)
		if err := AddDir(context.Background(), tx, m, over, Filter{}, nil); err != nil {
			t.Fatal(err)
		}
		if err := AddRef(tx, m, res.Checksum.String()); !errors.Is(err, ErrTypeChange) {
			t.Errorf("ref over %s: %v, want ErrTypeChange", filepath.Base(over), err)
		}
	}
}
