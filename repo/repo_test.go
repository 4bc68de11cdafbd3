package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/strata-os/strata/objects"
)

var allModes = []Mode{ModeBare, ModeBareUser, ModeBareUserOnly, ModeArchive}

// newRepo initialises an empty repository in a fresh temporary directory.
func newRepo(t testing.TB, mode Mode) *Repo {
	t.Helper()
	r, err := Init(filepath.Join(t.TempDir(), "repo"), mode, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testFile is one entry of a small tree written by writeTree.
type testFile struct {
	name, data string
	mode       uint32 // 0: regular 0644
	target     string // symlink target
}

// writeTree writes files (flat, plus one subdirectory "sub" holding the
// same files) and a commit with the given parent, and returns the commit.
// It does not commit the transaction.
func writeTree(t testing.TB, tx *Txn, parent objects.Checksum, subject string, files []testFile) objects.Checksum {
	t.Helper()
	var dt objects.DirTree
	for _, f := range files {
		h := &objects.FileHeader{Mode: objects.ModeRegular | 0o644, Size: uint64(len(f.data))}
		var content io.Reader = strings.NewReader(f.data)
		if f.mode != 0 {
			h.Mode = f.mode
		}
		if f.target != "" {
			h.Mode, h.Target, h.Size, content = objects.ModeSymlink|0o777, f.target, 0, nil
		}
		c, err := tx.WriteFile(h, content)
		if err != nil {
			t.Fatalf("WriteFile %s: %v", f.name, err)
		}
		dt.Files = append(dt.Files, objects.TreeFile{Name: f.name, Checksum: c})
	}
	dt.Sort()
	meta := (&objects.DirMeta{Mode: objects.ModeDir | 0o755}).Marshal()
	dm, err := tx.WriteMetadata(objects.KindDirMeta, meta)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := tx.WriteMetadata(objects.KindDirTree, dt.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	root := dt
	root.Dirs = []objects.TreeDir{{Name: "sub", Tree: sub, Meta: dm}}
	rt, err := tx.WriteMetadata(objects.KindDirTree, root.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	cm := objects.Commit{Parent: parent, Subject: subject, Timestamp: 1700000000, RootTree: rt, RootMeta: dm}
	data, err := cm.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tx.WriteMetadata(objects.KindCommit, data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// commitTo writes a tree as a new commit on heads/branch (its parent is
// the branch's current commit) and commits the transaction.
func commitTo(t testing.TB, r *Repo, branch, subject string, files []testFile) objects.Checksum {
	t.Helper()
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	parent, _ := r.ReadRef("heads/" + branch)
	c := writeTree(t, tx, parent, subject, files)
	if err := tx.SetRef("heads/"+branch, &c); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return c
}

// sampleFiles is a small tree with an empty file, a large file (streamed
// path), a symlink and a mode with special bits.
func sampleFiles(tag string) []testFile {
	return []testFile{
		{name: "a.txt", data: "alpha " + tag},
		{name: "empty", data: ""},
		{name: "large.bin", data: strings.Repeat("large "+tag, (smallFile+100)/(6+len(tag))+1)},
		{name: "link", target: "a.txt"},
		{name: "exec", data: "#!/bin/sh\n" + tag, mode: objects.ModeRegular | 0o755},
	}
}

// checkIntegrity asserts the repository invariants a crash or a failure
// must preserve: every object in objects/ verifies, every ref names a
// commit whose whole tree (and parent chain, where present) is stored and
// verifies, no staging directory of a finished transaction is left, and no
// temporary file is left under refs/.
func checkIntegrity(t testing.TB, r *Repo) {
	t.Helper()
	for _, err := range integrityErrors(r) {
		t.Error(err)
	}
}

func integrityErrors(r *Repo) []error {
	var errs []error
	err := r.ListObjects(func(o ObjectRef) error {
		if err := verifyObject(r, o); err != nil {
			errs = append(errs, err)
		}
		return nil
	}, func(p string) { errs = append(errs, fmt.Errorf("stray file in objects/: %s", p)) })
	if err != nil {
		errs = append(errs, err)
	}
	refs, err := r.ListRefs()
	if err != nil {
		errs = append(errs, err)
	}
	for _, ref := range refs {
		if err := walkCommit(r, ref.Checksum); err != nil {
			errs = append(errs, fmt.Errorf("ref %s: %w", ref.Name, err))
		}
	}
	filepath.WalkDir(filepath.Join(r.path, "refs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			errs = append(errs, fmt.Errorf("temporary file left: %s", p))
		}
		return nil
	})
	return errs
}

func verifyObject(r *Repo, o ObjectRef) error {
	switch o.Kind {
	case objects.KindFile:
		_, rc, err := r.OpenFileVerified(o.Checksum)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(io.Discard, rc)
		return err
	case objects.KindCommitMeta:
		_, err := r.ReadCommitMeta(o.Checksum)
		return err
	}
	_, err := r.ReadMetadata(o.Kind, o.Checksum)
	return err
}

// walkCommit checks that a commit, its tree and its ancestors are stored.
func walkCommit(r *Repo, c objects.Checksum) error {
	for !c.IsZero() {
		cm, err := r.ReadCommit(c)
		if err != nil {
			return err
		}
		if err := walkTree(r, cm.RootTree, cm.RootMeta); err != nil {
			return fmt.Errorf("commit %s: %w", c, err)
		}
		c = cm.Parent
	}
	return nil
}

func walkTree(r *Repo, tree, meta objects.Checksum) error {
	if _, err := r.ReadDirMeta(meta); err != nil {
		return err
	}
	dt, err := r.ReadDirTree(tree)
	if err != nil {
		return err
	}
	for _, f := range dt.Files {
		ok, err := r.HasObject(objects.KindFile, f.Checksum)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: file %s (%s)", ErrNotFound, f.Name, f.Checksum)
		}
	}
	for _, d := range dt.Dirs {
		if err := walkTree(r, d.Tree, d.Meta); err != nil {
			return fmt.Errorf("%s/: %w", d.Name, err)
		}
	}
	return nil
}

// tmpEntries lists what tmp/ holds besides the cache directory.
func tmpEntries(t testing.TB, r *Repo) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(r.path, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != "cache" {
			out = append(out, e.Name())
		}
	}
	return out
}

// objectSet lists the stored objects.
func objectSet(t testing.TB, r *Repo) []string {
	t.Helper()
	var out []string
	if err := r.ListObjects(func(o ObjectRef) error {
		out = append(out, ObjectName(o.Kind, o.Checksum))
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestInitWritesOstreeConfig(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRepo(t, mode)
			if r.Mode() != mode {
				t.Errorf("Mode = %v", r.Mode())
			}
			data, err := os.ReadFile(filepath.Join(r.Path(), "config"))
			if err != nil {
				t.Fatal(err)
			}
			name := mode.String()
			if mode == ModeArchive {
				name = "archive-z2"
			}
			if want := "[core]\nrepo_version=1\nmode=" + name + "\n"; string(data) != want {
				t.Errorf("config = %q, want %q", data, want)
			}
			for _, d := range []string{"objects", "refs/heads", "refs/remotes", "refs/mirrors", "tmp", "state", "extensions"} {
				if st, err := os.Stat(filepath.Join(r.Path(), d)); err != nil || !st.IsDir() {
					t.Errorf("%s/ missing: %v", d, err)
				}
			}
			// The real ostree reads it.
			out, err := exec.Command("ostree", "--repo="+r.Path(), "refs").CombinedOutput()
			if err != nil {
				t.Errorf("ostree refs on a strata repo: %v: %s", err, out)
			}
		})
	}
}

func TestInitCollectionID(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"), ModeArchive, InitOptions{CollectionID: "org.example.Os"})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.CollectionID(); got != "org.example.Os" {
		t.Errorf("CollectionID = %q", got)
	}
	r2, err := Open(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got := r2.CollectionID(); got != "org.example.Os" {
		t.Errorf("after Open: CollectionID = %q", got)
	}
}

func TestReinit(t *testing.T) {
	r := newRepo(t, ModeBareUser)
	c := commitTo(t, r, "main", "one", sampleFiles("x"))
	again, err := Init(r.Path(), ModeBareUser, InitOptions{})
	if err != nil {
		t.Fatalf("re-init with the same mode: %v", err)
	}
	if got, err := again.ReadRef("heads/main"); err != nil || got != c {
		t.Errorf("re-init lost the ref: %v %v", got, err)
	}
	for _, m := range []Mode{ModeBare, ModeBareUserOnly, ModeArchive} {
		if _, err := Init(r.Path(), m, InitOptions{}); !errors.Is(err, ErrExists) {
			t.Errorf("re-init as %v: err = %v, want ErrExists", m, err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(r.Path(), "config"))
	if !strings.Contains(string(data), "mode=bare-user\n") {
		t.Errorf("a refused re-init changed the config: %q", data)
	}
}

func TestOpenOstreeRepo(t *testing.T) {
	for _, mode := range allModes {
		dir := filepath.Join(t.TempDir(), "repo")
		if out, err := exec.Command("ostree", "init", "--repo="+dir, "--mode="+mode.String()).CombinedOutput(); err != nil {
			t.Fatalf("ostree init: %v: %s", err, out)
		}
		r, err := Open(dir)
		if err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		if r.Mode() != mode {
			t.Errorf("ostree %v repo opened as %v", mode, r.Mode())
		}
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name    string
		config  string // "" with noConfig
		mutate  func(dir string) error
		want    error  // sentinel, or nil to only require an error
		wantMsg string // substring of the message
	}{
		{name: "missing config", mutate: func(d string) error { return os.Remove(filepath.Join(d, "config")) }, want: ErrNotFound, wantMsg: "missing config"},
		{name: "garbage", config: "this is not a key file\n", wantMsg: "config"},
		{name: "bad group header", config: "[core\nrepo_version=1\n", wantMsg: "config"},
		{name: "no repo_version", config: "[core]\nmode=bare\n", wantMsg: "repo_version"},
		{name: "repo_version 2", config: "[core]\nrepo_version=2\nmode=bare\n", wantMsg: `unsupported repo_version "2"`},
		{name: "unknown mode", config: "[core]\nrepo_version=1\nmode=zip\n", want: ErrInvalid, wantMsg: "zip"},
		{name: "bad fsync", config: "[core]\nrepo_version=1\nmode=bare\nfsync=maybe\n", wantMsg: "fsync"},
		{name: "bad zlib level", config: "[core]\nrepo_version=1\nmode=archive-z2\nzlib-level=10\n", wantMsg: "zlib-level"},
		{name: "bad min free", config: "[core]\nrepo_version=1\nmode=bare\nmin-free-space-percent=101\n", wantMsg: "min-free-space-percent"},
		{name: "no objects dir", mutate: func(d string) error { return os.RemoveAll(filepath.Join(d, "objects")) }, want: ErrCorrupt, wantMsg: "objects"},
		{name: "objects is a file", mutate: func(d string) error {
			if err := os.RemoveAll(filepath.Join(d, "objects")); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(d, "objects"), nil, 0o644)
		}, want: ErrCorrupt, wantMsg: "objects"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t, ModeBare)
			if tc.config != "" {
				if err := os.WriteFile(filepath.Join(r.Path(), "config"), []byte(tc.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.mutate != nil {
				if err := tc.mutate(r.Path()); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Open(r.Path())
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), r.Path()) {
				t.Errorf("err = %q, want it to name %q and the repo", err, tc.wantMsg)
			}
		})
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nothing-here")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open of a missing dir: %v", err)
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		ok   bool
	}{
		{"bare", ModeBare, true}, {"bare-user", ModeBareUser, true}, {"bare-user-only", ModeBareUserOnly, true},
		{"archive", ModeArchive, true}, {"archive-z2", ModeArchive, true},
		{"", 0, false}, {"Bare", 0, false}, {"bare-split-xattrs", 0, false},
	} {
		got, err := ParseMode(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseMode(%q) = %v, %v", tc.in, got, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseMode(%q) error %v is not ErrInvalid", tc.in, err)
		}
	}
}

func TestObjectPath(t *testing.T) {
	c := objects.Sum([]byte("x"))
	h := c.String()
	for _, tc := range []struct {
		mode Mode
		kind objects.Kind
		want string
	}{
		{ModeBare, objects.KindFile, h[:2] + "/" + h[2:] + ".file"},
		{ModeArchive, objects.KindFile, h[:2] + "/" + h[2:] + ".filez"},
		{ModeArchive, objects.KindDirTree, h[:2] + "/" + h[2:] + ".dirtree"},
		{ModeBareUser, objects.KindCommit, h[:2] + "/" + h[2:] + ".commit"},
		{ModeBareUserOnly, objects.KindCommitMeta, h[:2] + "/" + h[2:] + ".commitmeta"},
	} {
		r := &Repo{path: "/r", mode: tc.mode}
		if got := r.ObjectPath(tc.kind, c); got != "/r/objects/"+tc.want {
			t.Errorf("%v %v: %s", tc.mode, tc.kind, got)
		}
	}
}

// TestReadsOstreeObjects reads, in every mode, each object the real ostree
// wrote for a tree, with verification.
func TestReadsOstreeObjects(t *testing.T) {
	src := t.TempDir()
	for _, f := range sampleFiles("ostree") {
		p := filepath.Join(src, f.name)
		var err error
		if f.target != "" {
			err = os.Symlink(f.target, p)
		} else {
			err = os.WriteFile(p, []byte(f.data), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			for _, args := range [][]string{
				{"init", "--repo=" + dir, "--mode=" + mode.String()},
				{"commit", "--repo=" + dir, "-b", "main", "--tree=dir=" + src},
			} {
				if out, err := exec.Command("ostree", args...).CombinedOutput(); err != nil {
					t.Fatalf("ostree %v: %v: %s", args, err, out)
				}
			}
			r, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			checkIntegrity(t, r)
			if n := len(objectSet(t, r)); n < 7 {
				t.Errorf("only %d objects listed", n)
			}
			c, err := r.ResolveRev("main")
			if err != nil {
				t.Fatal(err)
			}
			cm, err := r.ReadCommit(c)
			if err != nil {
				t.Fatal(err)
			}
			dt, err := r.ReadDirTree(cm.RootTree)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range dt.Files {
				h, rc, err := r.OpenFileVerified(f.Checksum)
				if err != nil {
					t.Fatal(err)
				}
				data, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatalf("%s: %v", f.Name, err)
				}
				for _, sf := range sampleFiles("ostree") {
					if sf.name == f.Name && (sf.target != h.Target || !bytes.Equal(data, []byte(sf.data))) {
						t.Errorf("%s: read back %d bytes, target %q", f.Name, len(data), h.Target)
					}
				}
			}
		})
	}
}
