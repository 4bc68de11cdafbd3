package compose

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
)

// outsideSentinel makes a directory outside every tree of the test with
// one file in it, and returns the directory and a check that it is as it
// was.
func outsideSentinel(t *testing.T) (string, func()) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sentinel"), []byte("untouched\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, func() {
		t.Helper()
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 1 || ents[0].Name() != "sentinel" {
			t.Errorf("outside directory now holds %v (%v)", ents, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "sentinel")); err != nil || string(b) != "untouched\n" {
			t.Errorf("sentinel = %q (%v)", b, err)
		}
	}
}

// checkNothingPublished fails unless the build left no ref, no commit and
// no build directory.
func checkNothingPublished(t *testing.T, r *repo.Repo, branch, cache string, commitsBefore int) {
	t.Helper()
	if c, err := r.ReadRef("heads/" + branch); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ref %s = %s (%v) after a failed build", branch, c, err)
	}
	if n := countCommits(t, r); n != commitsBefore {
		t.Errorf("%d commit objects after a failed build, %d before", n, commitsBefore)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "tmp")); len(ents) != 0 {
		t.Errorf("build directories left in the cache: %v", ents)
	}
}

func countCommits(t *testing.T, r *repo.Repo) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(r.Path(), "objects/*/*.commit"))
	return len(m)
}

// TestHostileFiles: a [[files]] entry that would leave the tree through a
// symlink of the base image (absolute or relative), or whose source is a
// FIFO, a symlink or too large, fails the build with one line naming the
// spec's file, line and key; nothing outside the tree is written, no ref
// and no commit are published.
func TestHostileFiles(t *testing.T) {
	ctx := context.Background()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v1 := composeFixture(t, r, 0o022, false, "")
	outside, checkOutside := outsideSentinel(t)

	// The base: the fixture with symlinks out of the tree planted under
	// /etc/alternatives (as update-alternatives makes them: absolute).
	base := filepath.Join(t.TempDir(), "base")
	if err := checkoutForTest(r, v1, base); err != nil {
		t.Fatal(err)
	}
	alt := filepath.Join(base, "usr/etc/alternatives")
	if err := os.Mkdir(alt, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"abs":      outside,
		"rel":      strings.Repeat("../", 20) + strings.TrimPrefix(outside, "/"),
		"sentinel": filepath.Join(outside, "sentinel"),
	} {
		if err := os.Symlink(target, filepath.Join(alt, name)); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := ParseSpec(filepath.Join(t.TempDir(), "spec.toml"), []byte(fixtureSpec))
	if err != nil {
		t.Fatal(err)
	}
	o := &Options{Repo: r}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if _, err := commitTree(ctx, fs, o, "evil-base", base, 1700000000, []string{"6.1.0-test"}); err != nil {
		t.Fatal(err)
	}

	specDir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(specDir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(specDir, "real"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(specDir, "link")); err != nil {
		t.Fatal(err)
	}
	huge, err := os.Create(filepath.Join(specDir, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	if err := huge.Truncate(maxSourceSize + 1); err != nil {
		t.Fatal(err)
	}
	huge.Close()

	head := "[os]\nname = \"hostile\"\n\n[base]\nref = \"evil-base\"\n\n[[files]]\n"
	cases := []struct{ name, entry, want string }{
		{"through an absolute symlink", "path = \"/etc/alternatives/abs/sentinel\"\ncontent = \"pwned\\n\"\n", "spec.toml:8: files[1].path:"},
		{"new file through an absolute symlink", "path = \"/etc/alternatives/abs/new\"\ncontent = \"pwned\\n\"\n", "spec.toml:8: files[1].path:"},
		{"through a relative symlink", "path = \"/etc/alternatives/rel/new\"\ncontent = \"pwned\\n\"\n", "spec.toml:8: files[1].path:"},
		{"under a symlink to a file", "path = \"/etc/alternatives/sentinel/x\"\ncontent = \"pwned\\n\"\n", "spec.toml:8: files[1].path:"},
		{"source FIFO", "path = \"/etc/a\"\nsource = \"fifo\"\n", "spec.toml:9: files[1].source:"},
		{"source symlink", "path = \"/etc/a\"\nsource = \"link\"\n", "spec.toml:9: files[1].source:"},
		{"source huge", "path = \"/etc/a\"\nsource = \"huge\"\n", "spec.toml:9: files[1].source:"},
		{"source directory", "path = \"/etc/a\"\nsource = \".\"\n", "spec.toml:9: files[1].source:"},
		{"owner not in the image", "path = \"/etc/a\"\ncontent = \"\"\nowner = \"nosuchuser\"\n", "spec.toml:10: files[1].owner:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseSpec(filepath.Join(specDir, "spec.toml"), []byte(head+c.entry))
			if err != nil {
				t.Fatal(err)
			}
			cache := t.TempDir()
			before := countCommits(t, r)
			_, err = Build(ctx, s, Options{Repo: r, CacheDir: cache, StrataBinary: "/bin/busybox"})
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %v, want one line with %q", err, c.want)
			}
			checkOutside()
			checkNothingPublished(t, r, "hostile", cache, before)
		})
	}
	// A symlink as the path itself is replaced, not followed.
	s, err := ParseSpec(filepath.Join(specDir, "spec.toml"), []byte(head+"path = \"/etc/alternatives/sentinel\"\ncontent = \"mine\\n\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(ctx, s, Options{Repo: r, CacheDir: t.TempDir(), StrataBinary: "/bin/busybox"})
	if err != nil {
		t.Fatal(err)
	}
	checkOutside()
	co := filepath.Join(t.TempDir(), "co")
	if err := checkoutForTest(r, res.Commit, co); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(co, "usr/etc/alternatives/sentinel")); err != nil || string(b) != "mine\n" {
		t.Fatalf("replaced symlink = %q (%v)", b, err)
	}
}

// TestLockedDebCorrupt: a cached .deb whose sha256 is not the lock's is
// not used; the mirror's copy is fetched and, when it does not match
// either, the build fails naming the package, with nothing left in the
// cache under that sha256 and no ref or commit published.
func TestLockedDebCorrupt(t *testing.T) {
	ctx := context.Background()
	good := []byte("the real package\n")
	sum := sha256.Sum256(good)
	sha := hex.EncodeToString(sum[:])
	var served []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		served = append(served, req.URL.Path)
		fmt.Fprint(w, "a tampered package\n")
	}))
	defer srv.Close()
	specDir := t.TempDir()
	spec := fmt.Sprintf("[os]\nname = \"locked\"\n\n[base]\nsuite = \"bookworm\"\nmirror = %q\n", srv.URL+"/debian")
	s, err := ParseSpec(filepath.Join(specDir, "locked.toml"), []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	l := &Lock{Version: LockVersion, Base: s.BaseDigest(), SourceDateEpoch: 1700000000, Suite: "bookworm", Packages: []LockPackage{
		{Name: "hello", Version: "1.0-1", Arch: "amd64", SHA256: sha, Size: int64(len(good)), Filename: "pool/main/h/hello/hello_1.0-1_amd64.deb"},
	}}
	if err := l.Write(LockPath(s.Path)); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	c := Cache{Dir: cache}
	if err := os.MkdirAll(filepath.Dir(c.debPath(sha)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.debPath(sha), []byte("a corrupt cached copy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	_, err = Build(ctx, s, Options{Repo: r, CacheDir: cache, StrataBinary: "/bin/busybox", NoBaseCache: true,
		Warner: progress.WarnFunc(func(err error) { warned = append(warned, err.Error()) })})
	if !errors.Is(err, errdefs.ErrCorrupt) || !strings.Contains(err.Error(), "package hello 1.0-1") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err %v, want one line naming package hello 1.0-1 and corrupt", err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "hello 1.0-1") {
		t.Errorf("warnings %q, want the corrupt cached copy of hello", warned)
	}
	if len(served) != 1 || served[0] != "/debian/pool/main/h/hello/hello_1.0-1_amd64.deb" {
		t.Errorf("mirror asked for %v", served)
	}
	if _, err := os.Stat(c.debPath(sha)); !os.IsNotExist(err) {
		t.Errorf("a file is cached under the lock's sha256: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(c.debPath(sha))); len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("left in the package cache: %v", names)
	}
	checkNothingPublished(t, r, "locked", cache, 0)
}

// TestHostileBaseUserDB: a ref base whose /etc/shadow is a symlink out of
// the tree is refused when the spec adds users, naming the file: the
// build machine's file is neither read into the image nor written.
func TestHostileBaseUserDB(t *testing.T) {
	ctx := context.Background()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v1 := composeFixture(t, r, 0o022, false, "")
	outside, checkOutside := outsideSentinel(t)
	base := filepath.Join(t.TempDir(), "base")
	if err := checkoutForTest(r, v1, base); err != nil {
		t.Fatal(err)
	}
	shadow := filepath.Join(base, "usr/etc/shadow")
	if err := os.Remove(shadow); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "sentinel"), shadow); err != nil {
		t.Fatal(err)
	}
	fs, err := ParseSpec(filepath.Join(t.TempDir(), "spec.toml"), []byte(fixtureSpec))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := commitTree(ctx, fs, &Options{Repo: r}, "evil-base", base, 1700000000, []string{"6.1.0-test"}); err != nil {
		t.Fatal(err)
	}
	s, err := ParseSpec(filepath.Join(t.TempDir(), "spec.toml"), []byte("[os]\nname = \"hostile\"\n\n[base]\nref = \"evil-base\"\n\n[[users]]\nname = \"bob\"\nuid = 1000\ngroup = \"users\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	before := countCommits(t, r)
	_, err = Build(ctx, s, Options{Repo: r, CacheDir: cache, StrataBinary: "/bin/busybox"})
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "/etc/shadow") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err %v, want one ErrInvalid line naming /etc/shadow", err)
	}
	checkOutside()
	checkNothingPublished(t, r, "hostile", cache, before)
}
