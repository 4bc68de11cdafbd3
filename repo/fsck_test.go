package repo

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
)

func fsckOf(t *testing.T, r *Repo, o FsckOptions) FsckReport {
	t.Helper()
	rep, err := r.Fsck(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// rootFile returns the checksum of the file called name in commit c's root.
func rootFile(t *testing.T, r *Repo, c objects.Checksum, name string) objects.Checksum {
	t.Helper()
	cm, err := r.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := r.ReadDirTree(cm.RootTree)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range dt.Files {
		if f.Name == name {
			return f.Checksum
		}
	}
	t.Fatalf("no %s", name)
	return objects.Checksum{}
}

func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func problemNames(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// TestFsckNamesEachCorruption corrupts one object of each kind in turn, in
// every mode, and checks that fsck reports exactly that object (and the
// commit holding it), that --delete removes it and marks the commit
// partial, and that the commit then stays an error until repaired.
func TestFsckNamesEachCorruption(t *testing.T) {
	kinds := []string{"file", "large", "symlink", "dirtree", "subdirtree", "dirmeta", "commit", "commitmeta", "missing", "missing-dirtree", "truncated", "ostreemeta", "ostreemeta-junk"}
	for _, mode := range allModes {
		for _, what := range kinds {
			if strings.HasPrefix(what, "ostreemeta") && mode != ModeBareUser {
				continue
			}
			t.Run(mode.String()+"/"+what, func(t *testing.T) {
				r := newRepo(t, mode)
				c := commitTo(t, r, "main", "one", sampleFiles("x"))
				tx := begin(t, r)
				if err := tx.WriteCommitMeta(c, objects.Metadata{{Key: "k", Value: gvariant.Variant{Type: gvariant.MustParseType("s"), Value: "v"}}}); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				if rep := fsckOf(t, r, FsckOptions{}); !rep.OK() || rep.Commits != 1 || rep.Objects != 10 {
					t.Fatalf("clean repo: %+v", rep)
				}
				cm, _ := r.ReadCommit(c)
				sub, _ := r.ReadDirTree(cm.RootTree)
				ref := map[string]ObjectRef{
					"file": {objects.KindFile, rootFile(t, r, c, "a.txt")}, "missing": {objects.KindFile, rootFile(t, r, c, "a.txt")},
					"truncated": {objects.KindFile, rootFile(t, r, c, "large.bin")}, "ostreemeta": {objects.KindFile, rootFile(t, r, c, "exec")},
					"ostreemeta-junk": {objects.KindFile, rootFile(t, r, c, "a.txt")},
					"large":           {objects.KindFile, rootFile(t, r, c, "large.bin")}, "symlink": {objects.KindFile, rootFile(t, r, c, "link")},
					"dirtree": {objects.KindDirTree, cm.RootTree}, "subdirtree": {objects.KindDirTree, sub.Dirs[0].Tree},
					"missing-dirtree": {objects.KindDirTree, sub.Dirs[0].Tree},
					"dirmeta":         {objects.KindDirMeta, cm.RootMeta}, "commit": {objects.KindCommit, c}, "commitmeta": {objects.KindCommitMeta, c},
				}[what]
				name, path := ObjectName(ref.Kind, ref.Checksum), r.ObjectPath(ref.Kind, ref.Checksum)
				switch what {
				case "missing", "missing-dirtree":
					os.Remove(path)
				case "truncated":
					st, _ := os.Stat(path)
					os.Truncate(path, st.Size()/2)
				case "ostreemeta":
					// A valid user.ostreemeta, but for another mode.
					h, _ := r.ReadFileHeader(ref.Checksum)
					h.Mode = objects.ModeRegular | 0o600
					if err := setXattrs(path, objects.Xattrs{{Name: "user.ostreemeta", Value: objects.BareUserMeta(h)}}, true); err != nil {
						t.Fatal(err)
					}
				case "ostreemeta-junk":
					if err := setXattrs(path, objects.Xattrs{{Name: "user.ostreemeta", Value: []byte("junk")}}, true); err != nil {
						t.Fatal(err)
					}
				case "symlink":
					if mode == ModeArchive {
						// The target lives in the compressed header.
						data, _ := os.ReadFile(path)
						i := strings.Index(string(data), "a.txt")
						data[i] = 'b'
						os.WriteFile(path, data, 0o644)
					} else {
						os.Remove(path)
						os.Symlink("b.txt", path)
					}
				case "file", "large":
					corruptFileObject(t, r, ref.Checksum)
				case "commitmeta":
					os.WriteFile(path, []byte("\x01\x02junk"), 0o644)
				default:
					flipByte(t, path, 2)
				}
				rep := fsckOf(t, r, FsckOptions{})
				if len(rep.Problems) != 1 || rep.Problems[0].Object != name || rep.OK() {
					t.Fatalf("problems %q, want exactly %s", problemNames(rep.Problems), name)
				}
				p := rep.Problems[0]
				wantErr := ErrCorrupt
				if strings.HasPrefix(what, "missing") {
					wantErr = ErrNotFound
				}
				if !errors.Is(p.Err, wantErr) {
					t.Fatalf("error %v, want %v", p.Err, wantErr)
				}
				line := p.String()
				if !strings.HasPrefix(line, "object "+name) || strings.Count(line, name) != 1 {
					t.Errorf("message %q does not name %s once", line, name)
				}
				inTree := ref.Kind != objects.KindCommit && ref.Kind != objects.KindCommitMeta
				if inTree && (len(p.Commits) != 1 || p.Commits[0] != c) {
					t.Errorf("problem not attributed to commit %s: %v", c, p.Commits)
				}
				// A missing object marks its commit partial, as ostree fsck does.
				if wantPartial := strings.HasPrefix(what, "missing"); (len(rep.MarkedPartial) == 1) != wantPartial {
					t.Errorf("marked partial: %v", rep.MarkedPartial)
				}
				if wantErr == ErrNotFound {
					return
				}

				rep = fsckOf(t, r, FsckOptions{Delete: true})
				if len(rep.Problems) != 1 || !rep.Problems[0].Deleted {
					t.Fatalf("--delete did not delete: %q", problemNames(rep.Problems))
				}
				if _, err := os.Lstat(path); !os.IsNotExist(err) {
					t.Fatalf("%s still present after --delete", path)
				}
				rep = fsckOf(t, r, FsckOptions{})
				switch {
				case ref.Kind == objects.KindCommit:
					if len(rep.Problems) != 1 || rep.Problems[0].Ref != "main" || !errors.Is(rep.Problems[0].Err, ErrNotFound) {
						t.Errorf("after deleting the commit: %q", problemNames(rep.Problems))
					}
				case ref.Kind == objects.KindCommitMeta:
					if !rep.OK() {
						t.Errorf("after deleting the commitmeta: %+v", rep)
					}
				default:
					// The commit now misses an object: partial with
					// ostree's fsck reason, an error until pulled again.
					if len(rep.Problems) != 0 || len(rep.FsckPartial) != 1 || rep.FsckPartial[0] != c || rep.OK() {
						t.Errorf("after --delete: %+v", rep)
					}
				}
			})
		}
	}
}

// eioReader hands out the file's first n bytes, then fails with err.
type eioReader struct {
	f   *os.File
	n   int
	err error
}

func (r *eioReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, r.err
	}
	if len(p) > r.n {
		p = p[:r.n]
	}
	k, err := r.f.Read(p)
	r.n -= k
	return k, err
}

func (r *eioReader) Close() error { return r.f.Close() }

// failReads makes every read of the objects in paths fail: at open with
// EACCES (an unreadable object; the tests run as root, so chmod 000 would
// not do), or with EIO after half the object was read.
func failReads(t *testing.T, how string, paths ...string) {
	t.Helper()
	bad := map[string]bool{}
	for _, p := range paths {
		bad[p] = true
	}
	orig := openObject
	t.Cleanup(func() { openObject = orig })
	openObject = func(p string) (io.ReadCloser, error) {
		if !bad[p] {
			return orig(p)
		}
		if how == "eacces" {
			return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		st, _ := f.Stat()
		return &eioReader{f: f, n: int(st.Size() / 2), err: syscall.EIO}, nil
	}
}

// TestFsckDeleteKeepsUnreadable: an object whose read fails (EIO in the
// middle, EACCES at open) is reported with the cause in its chain, not as
// corruption, and fsck --delete keeps it and marks no commit partial;
// a real mismatch found in the same run is still deleted.
func TestFsckDeleteKeepsUnreadable(t *testing.T) {
	for _, mode := range allModes {
		for _, how := range []string{"eio", "eacces"} {
			for _, what := range []string{"file", "large", "dirtree", "dirmeta", "commit"} {
				t.Run(mode.String()+"/"+how+"/"+what, func(t *testing.T) {
					r := newRepo(t, mode)
					c := commitTo(t, r, "main", "one", sampleFiles("x"))
					cm, _ := r.ReadCommit(c)
					ref := map[string]ObjectRef{
						"file": {objects.KindFile, rootFile(t, r, c, "a.txt")}, "large": {objects.KindFile, rootFile(t, r, c, "large.bin")},
						"dirtree": {objects.KindDirTree, cm.RootTree}, "dirmeta": {objects.KindDirMeta, cm.RootMeta}, "commit": {objects.KindCommit, c},
					}[what]
					path := r.ObjectPath(ref.Kind, ref.Checksum)
					before, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					// A real mismatch beside it, unless the commit or its
					// root tree is unreadable (fsck then never reaches it).
					var corrupt string
					if what != "commit" && what != "dirtree" {
						exec := rootFile(t, r, c, "exec")
						corrupt = r.ObjectPath(objects.KindFile, exec)
						corruptFileObject(t, r, exec)
					}
					failReads(t, how, path)
					rep := fsckOf(t, r, FsckOptions{Delete: true})
					var got *Problem
					for i, p := range rep.Problems {
						if p.Object == ObjectName(ref.Kind, ref.Checksum) {
							got = &rep.Problems[i]
						}
					}
					wantErr := map[string]error{"eio": syscall.EIO, "eacces": syscall.EACCES}[how]
					if got == nil || !errors.Is(got.Err, wantErr) || errors.Is(got.Err, ErrCorrupt) || got.Deleted {
						t.Fatalf("problems %q: want %s reported with %v, not corrupt, not deleted", problemNames(rep.Problems), what, wantErr)
					}
					if !strings.Contains(got.String(), wantErr.Error()) {
						t.Errorf("message %q does not give the cause", got.String())
					}
					if after, err := os.ReadFile(path); err != nil || string(after) != string(before) {
						t.Fatalf("%s changed or removed by fsck --delete: %v", path, err)
					}
					if len(rep.MarkedPartial) != 0 && corrupt == "" {
						t.Errorf("a read error marked commits partial: %v", rep.MarkedPartial)
					}
					if corrupt != "" {
						if len(rep.Problems) != 2 {
							t.Errorf("problems %q, want the unreadable and the corrupt object", problemNames(rep.Problems))
						}
						if _, err := os.Lstat(corrupt); !os.IsNotExist(err) {
							t.Errorf("the corrupt object was not deleted beside the unreadable one")
						}
					}
					// Readable again: the object is whole.
					openObject = func(p string) (io.ReadCloser, error) { return os.Open(p) }
					rep = fsckOf(t, r, FsckOptions{})
					for _, p := range rep.Problems {
						if p.Object == ObjectName(ref.Kind, ref.Checksum) {
							t.Errorf("after the read error: %s", p)
						}
					}
					if corrupt == "" && !rep.OK() {
						t.Errorf("after the read error: %q, partial %v", problemNames(rep.Problems), rep.FsckPartial)
					}
				})
			}
		}
	}
}

// TestFsckCountsSharedObjectsOnce: objects shared by commits and
// directories are verified (and reported) once.
func TestFsckCountsSharedObjectsOnce(t *testing.T) {
	r := newRepo(t, ModeBare)
	c1 := commitTo(t, r, "main", "one", sampleFiles("x"))
	c2 := commitTo(t, r, "other", "two", append(sampleFiles("x"), testFile{name: "z", data: "z"}))
	rep := fsckOf(t, r, FsckOptions{})
	// Two commits, two root dirtrees, one shared sub dirtree, one dirmeta,
	// five shared files and z.
	if !rep.OK() || rep.Commits != 2 || rep.Objects != 2+2+2+1+6 {
		t.Fatalf("%+v", rep)
	}
	fc := rootFile(t, r, c1, "a.txt")
	corruptFileObject(t, r, fc)
	rep = fsckOf(t, r, FsckOptions{})
	if len(rep.Problems) != 1 {
		t.Fatalf("shared object reported %d times: %q", len(rep.Problems), problemNames(rep.Problems))
	}
	want := []objects.Checksum{c1, c2}
	if c2.String() < c1.String() {
		want = []objects.Checksum{c2, c1}
	}
	if got := rep.Problems[0].Commits; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("commits %v, want %v", got, want)
	}
	rep = fsckOf(t, r, FsckOptions{Delete: true})
	if len(rep.MarkedPartial) != 2 {
		t.Errorf("--delete marked %v partial, want both commits", rep.MarkedPartial)
	}
}

func TestFsckDanglingRefAndPartial(t *testing.T) {
	r := newRepo(t, ModeArchive)
	c := commitTo(t, r, "main", "one", sampleFiles("x"))
	missing := objects.Sum([]byte("nothing"))
	if err := r.writeRef("heads/ghost", &missing); err != nil {
		t.Fatal(err)
	}
	rep := fsckOf(t, r, FsckOptions{})
	if len(rep.Problems) != 1 || rep.Problems[0].Ref != "ghost" || !errors.Is(rep.Problems[0].Err, ErrNotFound) {
		t.Fatalf("dangling ref: %q", problemNames(rep.Problems))
	}
	if !strings.Contains(rep.Problems[0].String(), missing.String()) {
		t.Errorf("message does not name the missing commit: %s", rep.Problems[0])
	}
	r.writeRef("heads/ghost", nil)
	// A commit a pull left partial (empty marker) may lack objects, but
	// what it has must verify.
	os.Remove(r.ObjectPath(objects.KindFile, rootFile(t, r, c, "a.txt")))
	if err := r.MarkCommitPartial(c); err != nil {
		t.Fatal(err)
	}
	rep = fsckOf(t, r, FsckOptions{})
	if !rep.OK() || len(rep.Partial) != 1 || len(rep.FsckPartial) != 0 || len(rep.MarkedPartial) != 0 {
		t.Fatalf("partial commit: %+v", rep)
	}
	corruptFileObject(t, r, rootFile(t, r, c, "exec"))
	if rep = fsckOf(t, r, FsckOptions{}); len(rep.Problems) != 1 {
		t.Fatalf("corrupt object of a partial commit: %+v", rep)
	}
}

func TestFsckAllFindsUnreachable(t *testing.T) {
	r := newRepo(t, ModeBare)
	commitTo(t, r, "main", "one", sampleFiles("x"))
	tx := begin(t, r)
	h := &objects.FileHeader{Mode: objects.ModeRegular | 0o644, Size: 5}
	c, err := tx.WriteFile(h, strings.NewReader("stray"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	flipByte(t, r.ObjectPath(objects.KindFile, c), 0)
	if rep := fsckOf(t, r, FsckOptions{}); len(rep.Problems) != 0 {
		t.Fatalf("unreachable object reported without --all: %q", problemNames(rep.Problems))
	}
	rep := fsckOf(t, r, FsckOptions{All: true})
	if len(rep.Problems) != 1 || rep.Problems[0].Object != ObjectName(objects.KindFile, c) || len(rep.Problems[0].Commits) != 0 {
		t.Fatalf("--all: %q", problemNames(rep.Problems))
	}
}

func TestFsckCancelled(t *testing.T) {
	r := newRepo(t, ModeBare)
	commitTo(t, r, "main", "one", sampleFiles("x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Fsck(ctx, FsckOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled fsck: %v", err)
	}
}

// TestFsckInterop: strata's fsck accepts repos written by ostree in every
// mode and flags the corruption ostree's fsck flags; each understands the
// partial marker the other's fsck --delete leaves.
func TestFsckInterop(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(src+"/a", []byte("hello"), 0o644)
	os.Symlink("a", src+"/l")
	os.MkdirAll(src+"/d/e", 0o755)
	os.WriteFile(src+"/d/e/f", []byte("deep"), 0o600)
	os.Chmod(src, 0o700) // a second dirmeta
	for _, mode := range []string{"bare", "bare-user", "bare-user-only", "archive"} {
		p := t.TempDir() + "/repo"
		ostreeRun(t, "--repo="+p, "init", "--mode="+mode)
		ostreeRun(t, "--repo="+p, "commit", "-b", "main", "--tree=dir="+src, "--add-detached-metadata-string=sig=x")
		r, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if rep := fsckOf(t, r, FsckOptions{VerifyBackRefs: true, All: true}); !rep.OK() || rep.Commits != 1 || rep.Objects != 10 {
			t.Fatalf("%s: ostree's repo: %+v", mode, rep)
		}
		c, _ := r.ResolveRev("main")
		fc := rootFile(t, r, c, "a")
		corruptFileObject(t, r, fc)
		out, err := exec.Command("ostree", "--repo="+p, "fsck").CombinedOutput()
		if err == nil || !strings.Contains(string(out), fc.String()) {
			t.Fatalf("%s: ostree fsck missed the corruption: %s", mode, out)
		}
		rep := fsckOf(t, r, FsckOptions{})
		if len(rep.Problems) != 1 || rep.Problems[0].Object != ObjectName(objects.KindFile, fc) {
			t.Fatalf("%s: strata fsck: %q (ostree: %s)", mode, problemNames(rep.Problems), out)
		}
		// strata fsck --delete; ostree then sees a commit its fsck made partial.
		q := t.TempDir() + "/copy"
		if out, err := exec.Command("cp", "-a", p, q).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		if rep := fsckOf(t, r, FsckOptions{Delete: true}); len(rep.MarkedPartial) != 1 {
			t.Fatalf("%s: --delete: %+v", mode, rep)
		}
		out, err = exec.Command("ostree", "--repo="+p, "fsck").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "1 partial commits from fsck-detected corruption") {
			t.Errorf("%s: ostree fsck after strata fsck --delete: %v\n%s", mode, err, out)
		}
		// And the other way round.
		exec.Command("ostree", "--repo="+q, "fsck", "--delete").Run()
		rq, err := Open(q)
		if err != nil {
			t.Fatal(err)
		}
		if rep := fsckOf(t, rq, FsckOptions{}); len(rep.FsckPartial) != 1 || rep.OK() {
			t.Errorf("%s: strata fsck after ostree fsck --delete: %+v", mode, rep)
		}
	}
}

// boundCommit stores, on ref heads/main, a copy of a commit whose metadata
// is md.
func boundCommit(t *testing.T, r *Repo, refPath string, md objects.Metadata) objects.Checksum {
	t.Helper()
	tx := begin(t, r)
	c := writeTree(t, tx, objects.Checksum{}, "s", sampleFiles("b"))
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	cm, _ := r.ReadCommit(c)
	cm.Metadata = md
	data, _ := cm.Marshal()
	tx = begin(t, r)
	bound, err := tx.WriteMetadata(objects.KindCommit, data)
	if err != nil {
		t.Fatal(err)
	}
	tx.SetRef(refPath, &bound)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return bound
}

func variantStrings(s ...string) gvariant.Variant {
	return gvariant.Variant{Type: gvariant.MustParseType("as"), Value: s}
}

func variantString(s string) gvariant.Variant {
	return gvariant.Variant{Type: gvariant.MustParseType("s"), Value: s}
}

func TestFsckVerifyBindings(t *testing.T) {
	cases := []struct {
		name       string
		collection string // the repository's core.collection-id
		ref        string
		md         objects.Metadata
		bad        bool
	}{
		{"unbound", "", "heads/main", nil, false},
		{"bound", "", "heads/main", objects.Metadata{{Key: "ostree.ref-binding", Value: variantStrings("x", "main")}}, false},
		{"other-ref", "", "heads/main", objects.Metadata{{Key: "ostree.ref-binding", Value: variantStrings("other")}}, true},
		{"remote", "", "remotes/origin/main", objects.Metadata{{Key: "ostree.ref-binding", Value: variantStrings("main")}}, false},
		{"remote-other", "", "remotes/origin/main", objects.Metadata{{Key: "ostree.ref-binding", Value: variantStrings("origin:main")}}, true},
		{"collection-unbound", "org.example.Os", "heads/main", nil, true},
		{"collection-no-coll-binding", "org.example.Os", "heads/main", objects.Metadata{{Key: "ostree.ref-binding", Value: variantStrings("main")}}, true},
		{"collection", "org.example.Os", "heads/main", objects.Metadata{
			{Key: "ostree.collection-binding", Value: variantString("org.example.Os")}, {Key: "ostree.ref-binding", Value: variantStrings("main")}}, false},
		{"mirror", "", "mirrors/org.example.Os/main", objects.Metadata{
			{Key: "ostree.collection-binding", Value: variantString("org.example.Os")}, {Key: "ostree.ref-binding", Value: variantStrings("main")}}, false},
		{"mirror-other-collection", "", "mirrors/org.example.Os/main", objects.Metadata{
			{Key: "ostree.collection-binding", Value: variantString("org.other")}, {Key: "ostree.ref-binding", Value: variantStrings("main")}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Init(filepath.Join(t.TempDir(), "repo"), ModeArchive, InitOptions{CollectionID: tc.collection})
			if err != nil {
				t.Fatal(err)
			}
			boundCommit(t, r, tc.ref, tc.md)
			if rep := fsckOf(t, r, FsckOptions{}); !rep.OK() {
				t.Fatalf("without --verify-bindings: %q", problemNames(rep.Problems))
			}
			rep := fsckOf(t, r, FsckOptions{VerifyBindings: true})
			if tc.bad != (len(rep.Problems) == 1) || len(rep.Problems) > 1 {
				t.Fatalf("--verify-bindings: %q, want a problem: %v", problemNames(rep.Problems), tc.bad)
			}
			if tc.bad && (rep.Problems[0].Ref == "" || !errors.Is(rep.Problems[0].Err, ErrInvalid) || rep.Problems[0].Deleted) {
				t.Errorf("problem %+v", rep.Problems[0])
			}
		})
	}
}

func TestFsckVerifyBackRefs(t *testing.T) {
	r := newRepo(t, ModeArchive)
	c := boundCommit(t, r, "heads/main", objects.Metadata{{Key: "ostree.ref-binding", Value: variantStrings("main", "stable")}})
	rep := fsckOf(t, r, FsckOptions{VerifyBackRefs: true})
	if len(rep.Problems) != 1 || rep.Problems[0].Object != ObjectName(objects.KindCommit, c) || !strings.Contains(rep.Problems[0].String(), "names ref stable, which does not exist") {
		t.Fatalf("missing bound ref: %q", problemNames(rep.Problems))
	}
	other := commitTo(t, r, "stable", "elsewhere", sampleFiles("s"))
	rep = fsckOf(t, r, FsckOptions{VerifyBackRefs: true})
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].String(), "which points to "+other.String()) {
		t.Fatalf("bound ref elsewhere: %q", problemNames(rep.Problems))
	}
	if err := r.SetRef("heads/stable", &c); err != nil {
		t.Fatal(err)
	}
	if rep = fsckOf(t, r, FsckOptions{VerifyBackRefs: true}); len(rep.Problems) != 0 {
		t.Fatalf("both refs bound: %q", problemNames(rep.Problems))
	}
}

// TestFsckRefusesNonDirectoryDirMeta: a dirmeta whose mode is not a
// directory's (here a regular file's), with a checksum that matches, is
// corrupt for strata's fsck as for ostree's.
func TestFsckRefusesNonDirectoryDirMeta(t *testing.T) {
	for _, mode := range []Mode{ModeArchive, ModeBare} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			tx := begin(t, r)
			good, err := tx.WriteMetadata(objects.KindDirMeta, (&objects.DirMeta{Mode: objects.ModeDir | 0o755}).Marshal())
			if err != nil {
				t.Fatal(err)
			}
			bad, err := tx.WriteMetadata(objects.KindDirMeta, (&objects.DirMeta{Mode: objects.ModeRegular | 0o644}).Marshal())
			if err != nil {
				t.Fatal(err)
			}
			empty, err := tx.WriteMetadata(objects.KindDirTree, (&objects.DirTree{}).Marshal())
			if err != nil {
				t.Fatal(err)
			}
			root := objects.DirTree{Dirs: []objects.TreeDir{{Name: "sub", Tree: empty, Meta: bad}}}
			rt, err := tx.WriteMetadata(objects.KindDirTree, root.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			data, _ := (&objects.Commit{Subject: "bad dirmeta", Timestamp: 1700000000, RootTree: rt, RootMeta: good}).Marshal()
			c, err := tx.WriteMetadata(objects.KindCommit, data)
			if err != nil {
				t.Fatal(err)
			}
			tx.SetRef("heads/main", &c)
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			rep := fsckOf(t, r, FsckOptions{})
			name := ObjectName(objects.KindDirMeta, bad)
			if len(rep.Problems) != 1 || rep.Problems[0].Object != name || !errors.Is(rep.Problems[0].Err, ErrCorrupt) ||
				!strings.Contains(rep.Problems[0].String(), "not a directory") {
				t.Fatalf("problems %q, want %s: not a directory", problemNames(rep.Problems), name)
			}
			if _, err := r.ReadDirMeta(bad); !errors.Is(err, ErrCorrupt) {
				t.Errorf("ReadDirMeta of a file's mode: %v", err)
			}
			// The reference: ostree fsck refuses it too.
			if out, err := exec.Command("ostree", "fsck", "--repo="+r.Path()).CombinedOutput(); err == nil {
				t.Errorf("ostree fsck passed a dirmeta with a file's mode:\n%s", out)
			}
		})
	}
}
