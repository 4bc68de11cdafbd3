package repo

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
)

func fsckOf(t *testing.T, r *Repo, o FsckOptions) *FsckReport {
	t.Helper()
	rep, err := r.Fsck(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// firstFile returns the checksum of a.txt in commit c's root.
func firstFile(t *testing.T, r *Repo, c objects.Checksum, name string) objects.Checksum {
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
	st, _ := f.Stat()
	if off < 0 {
		off += st.Size()
	}
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestFsckNamesEachCorruption corrupts one object of each kind in turn and
// checks that fsck reports exactly that object, and that --delete removes
// it.
func TestFsckNamesEachCorruption(t *testing.T) {
	for _, mode := range []Mode{ModeBare, ModeArchive, ModeBareUser, ModeBareUserOnly} {
		for _, what := range []string{"file", "large", "dirtree", "dirmeta", "commit", "missing", "truncated", "ostreemeta"} {
			if what == "ostreemeta" && mode != ModeBareUser {
				continue
			}
			t.Run(mode.String()+"/"+what, func(t *testing.T) {
				r := newRepo(t, mode)
				c := commitTo(t, r, "main", "one", sampleFiles("x"))
				if rep := fsckOf(t, r, FsckOptions{}); len(rep.Problems) != 0 || rep.Commits != 1 {
					t.Fatalf("clean repo: %+v", rep)
				}
				cm, _ := r.ReadCommit(c)
				var name string
				var path string
				switch what {
				case "file", "missing", "truncated", "ostreemeta":
					fc := firstFile(t, r, c, "a.txt")
					name, path = ObjectName(objects.KindFile, fc), r.ObjectPath(objects.KindFile, fc)
				case "large":
					fc := firstFile(t, r, c, "large.bin")
					name, path = ObjectName(objects.KindFile, fc), r.ObjectPath(objects.KindFile, fc)
				case "dirtree":
					name, path = ObjectName(objects.KindDirTree, cm.RootTree), r.ObjectPath(objects.KindDirTree, cm.RootTree)
				case "dirmeta":
					name, path = ObjectName(objects.KindDirMeta, cm.RootMeta), r.ObjectPath(objects.KindDirMeta, cm.RootMeta)
				case "commit":
					name, path = ObjectName(objects.KindCommit, c), r.ObjectPath(objects.KindCommit, c)
				}
				switch what {
				case "missing":
					os.Remove(path)
				case "truncated":
					os.Truncate(path, 3)
				case "ostreemeta":
					if err := setXattrs(path, objects.Xattrs{{Name: "user.ostreemeta", Value: []byte("junk")}}, true); err != nil {
						t.Fatal(err)
					}
				case "file", "large":
					fc, _ := objects.ParseChecksum(strings.TrimSuffix(name, ".file"))
					corruptFileObject(t, r, fc)
				default:
					flipByte(t, path, 2)
				}
				rep := fsckOf(t, r, FsckOptions{})
				if len(rep.Problems) != 1 || rep.Problems[0].Object != name {
					t.Fatalf("problems %v, want exactly %s", rep.Problems, name)
				}
				wantErr := ErrCorrupt
				if what == "missing" {
					wantErr = ErrNotFound
				}
				if !errors.Is(rep.Problems[0].Err, wantErr) {
					t.Fatalf("error %v, want %v", rep.Problems[0].Err, wantErr)
				}
				rep = fsckOf(t, r, FsckOptions{Delete: true})
				if what != "missing" {
					if !rep.Problems[0].Deleted {
						t.Fatalf("--delete did not delete: %v", rep.Problems)
					}
					if _, err := os.Lstat(path); !os.IsNotExist(err) {
						t.Fatalf("%s still present after --delete", path)
					}
				}
			})
		}
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
	if len(rep.Problems) != 1 || rep.Problems[0].Object != "heads/ghost" || !errors.Is(rep.Problems[0].Err, ErrNotFound) {
		t.Fatalf("dangling ref: %v", rep.Problems)
	}
	r.writeRef("heads/ghost", nil)
	// A commit marked partial may lack objects.
	os.Remove(r.ObjectPath(objects.KindFile, firstFile(t, r, c, "a.txt")))
	if err := os.WriteFile(r.path+"/state/"+c.String()+".commitpartial", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep = fsckOf(t, r, FsckOptions{})
	if len(rep.Problems) != 0 || len(rep.Partial) != 1 {
		t.Fatalf("partial commit: %+v", rep)
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
		t.Fatalf("unreachable object reported without --all: %v", rep.Problems)
	}
	if rep := fsckOf(t, r, FsckOptions{All: true}); len(rep.Problems) != 1 || rep.Problems[0].Object != ObjectName(objects.KindFile, c) {
		t.Fatalf("--all: %v", rep.Problems)
	}
}

// TestFsckInterop: strata's fsck accepts repos written by ostree in every
// mode, and flags the same corruption ostree's fsck flags.
func TestFsckInterop(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(src+"/a", []byte("hello"), 0o644)
	os.Symlink("a", src+"/l")
	os.MkdirAll(src+"/d/e", 0o755)
	for _, mode := range []string{"bare", "bare-user", "bare-user-only", "archive"} {
		p := t.TempDir() + "/repo"
		for _, args := range [][]string{{"init", "--mode=" + mode}, {"commit", "-b", "main", "--tree=dir=" + src}} {
			if out, err := exec.Command("ostree", append([]string{"--repo=" + p}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("ostree %v: %v %s", args, err, out)
			}
		}
		r, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if rep := fsckOf(t, r, FsckOptions{VerifyBindings: true}); len(rep.Problems) != 0 || rep.Commits != 1 || rep.Objects < 6 {
			t.Fatalf("%s: ostree's repo: %+v", mode, rep)
		}
		c, _ := r.ResolveRev("main")
		fc := firstFile(t, r, c, "a")
		corruptFileObject(t, r, fc)
		out, err := exec.Command("ostree", "--repo="+p, "fsck").CombinedOutput()
		if err == nil {
			t.Fatalf("%s: ostree fsck missed the corruption: %s", mode, out)
		}
		rep := fsckOf(t, r, FsckOptions{})
		if len(rep.Problems) != 1 || !strings.HasPrefix(rep.Problems[0].Object, fc.String()) {
			t.Fatalf("%s: strata fsck: %v (ostree: %s)", mode, rep.Problems, out)
		}
	}
}

func TestFsckVerifyBindings(t *testing.T) {
	r := newRepo(t, ModeArchive)
	tx := begin(t, r)
	c := writeTree(t, tx, objects.Checksum{}, "s", sampleFiles("b"))
	tx.Commit()
	// Rewrite the commit with a binding to another ref.
	cm, _ := r.ReadCommit(c)
	cm.Metadata = objects.Metadata{{Key: "ostree.ref-binding", Value: variantStrings("other")}}
	data, _ := cm.Marshal()
	tx = begin(t, r)
	bound, err := tx.WriteMetadata(objects.KindCommit, data)
	if err != nil {
		t.Fatal(err)
	}
	tx.SetRef("heads/main", &bound)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if rep := fsckOf(t, r, FsckOptions{}); len(rep.Problems) != 0 {
		t.Fatalf("without --verify-bindings: %v", rep.Problems)
	}
	rep := fsckOf(t, r, FsckOptions{VerifyBindings: true})
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Err.Error(), "not bound") {
		t.Fatalf("--verify-bindings: %v", rep.Problems)
	}
}

func variantStrings(s ...string) gvariant.Variant {
	return gvariant.Variant{Type: gvariant.MustParseType("as"), Value: s}
}
