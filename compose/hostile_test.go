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

// snapshotDir records every entry under dir: its type and mode, and a
// file's content or a link's target.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		v := info.Mode().String()
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			v += " -> " + l
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		snap[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// outsideMarker is in every file of the build machine that a hostile
// base links to: it must not reach the composed image.
const outsideMarker = "outsidemarker"

// TestHostileBaseLinks: a ref base whose tree has a symlink leading out
// of it at a path that compose's configure and layout steps write,
// create, rename, remove or read (a directory on the way, or the file
// itself) either fails the build with one line naming the path, or the
// build writes beneath the tree; the directory outside is untouched
// (every entry, mode and byte) and none of its content is read into the
// image. Each directory link points to a copy of what the tree had
// there (as a base linking /usr to the build machine's /usr would), so
// every write through it would find its directory; each file link
// points to a file whose content would show in the image if it were
// read. Both absolute and relative ("../../..") links.
func TestHostileBaseLinks(t *testing.T) {
	ctx := context.Background()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeBare, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v1 := composeFixture(t, r, 0o022, false, "")
	fs, err := ParseSpec(filepath.Join(t.TempDir(), "spec.toml"), []byte(fixtureSpec))
	if err != nil {
		t.Fatal(err)
	}
	// The spec applies everything a ref base takes: a file, a group
	// and a user (sysusers.d, tmpfiles.d), the host name and locale,
	// kernel arguments, os-release, strata and its units, the layout.
	const full = "[os]\nname = \"hostile\"\nversion = \"2\"\n\n[base]\nref = \"evil-base\"\n\n" +
		"[[files]]\npath = \"/etc/motd2\"\ncontent = \"v2\\n\"\n\n" +
		"[[groups]]\nname = \"web\"\ngid = 991\n\n[[users]]\nname = \"web\"\nuid = 991\nhome = \"/var/lib/web\"\n\n" +
		"[kernel]\nargs = [\"quiet\"]\n\n[etc]\nhostname = \"box\"\nlocale = \"C.UTF-8\"\n"
	// Without users the user database is only read (owners of the
	// tmpfiles.d lines, [[files]] owners), not checked to be a file.
	const noUsers = "[os]\nname = \"hostile\"\n\n[base]\nref = \"evil-base\"\n\n[[files]]\npath = \"/etc/motd2\"\ncontent = \"v2\\n\"\nowner = \"root\"\n"
	// Nothing but the base: only what compose always does.
	const minimal = "[os]\nname = \"hostile\"\n\n[base]\nref = \"evil-base\"\n"
	kernel := []string{"boot/vmlinuz-6.1.0-test", "boot/initrd.img-6.1.0-test"}
	cases := []struct {
		name  string
		link  string   // made a symlink out of the tree
		leaf  string   // a file link: the outside file's content ("": a directory link to a copy of what was there)
		spec  string   // default full
		plant []string // files planted in the base first
		outer []string // files put into the outside directory
	}{
		{name: "usr", link: "usr"},
		{name: "usr/etc", link: "usr/etc", spec: minimal},
		{name: "usr/bin (strata binary)", link: "usr/bin"},
		{name: "usr/lib", link: "usr/lib"},
		{name: "usr/lib/sysimage (dpkg database)", link: "usr/lib/sysimage"},
		{name: "usr/lib/systemd (units)", link: "usr/lib/systemd"},
		{name: "usr/lib/bootc (kargs.d)", link: "usr/lib/bootc"},
		{name: "usr/lib/modules/KVER (kernel placement)", link: "usr/lib/modules/6.1.0-test", plant: kernel},
		{name: "usr/share/factory (var files)", link: "usr/share/factory", plant: []string{"var/lib/foo/new"}, outer: []string{"var/lib/foo/new"}},
		{name: "usr/etc/ssh (host keys)", link: "usr/etc/ssh", outer: []string{"ssh_host_ed25519_key"}},
		{name: "boot", link: "boot", outer: []string{"vmlinuz-6.1.0-test", "initrd.img-6.1.0-test", "config-6.1.0-test"}},
		{name: "tmp", link: "tmp", outer: []string{"x"}},
		{name: "run", link: "run", outer: []string{"x"}},
		{name: "var", link: "var", outer: []string{"lib/foo/state"}},
		{name: "leaf usr/lib/os-release", link: "usr/lib/os-release", leaf: "ID=debian\nOUTSIDEMARKER=1\n"},
		{name: "leaf usr/etc/passwd", link: "usr/etc/passwd", leaf: outsideMarker + ":x:0:0::/:/bin/sh\n", spec: noUsers},
		{name: "leaf usr/etc/group", link: "usr/etc/group", leaf: outsideMarker + ":x:0:\n", spec: noUsers},
		{name: "leaf tmpfiles.d var file", link: tmpfilesVar, leaf: "C /var/" + outsideMarker + " - - - -\n"},
		// The cases below were already refused (a link as the last
		// directory) or replaced (a link as the file itself) before
		// the writes went through the tree's os.Root; kept so they
		// stay so.
		{name: "usr/lib/sysusers.d", link: "usr/lib/sysusers.d"},
		{name: "usr/lib/tmpfiles.d", link: "usr/lib/tmpfiles.d"},
		{name: "usr/etc/default (locale)", link: "usr/etc/default"},
		{name: "leaf usr/etc/hostname", link: "usr/etc/hostname", leaf: outsideMarker + "\n"},
		{name: "leaf usr/bin/strata", link: "usr/bin/strata", leaf: outsideMarker + "\n"},
		{name: "leaf kargs.d file", link: kargsFile, leaf: outsideMarker + "\n"},
		{name: "leaf sysusers.d file", link: sysusersFile, leaf: outsideMarker + "\n"},
		{name: "leaf unit file", link: unitDir + "/strata-finalize-staged.service", leaf: outsideMarker + "\n"},
	}
	for _, c := range cases {
		for _, relative := range []bool{false, true} {
			name := c.name + " absolute"
			if relative {
				name = c.name + " relative"
			}
			t.Run(name, func(t *testing.T) {
				outside := t.TempDir()
				base := filepath.Join(t.TempDir(), "base")
				if err := checkoutForTest(r, v1, base); err != nil {
					t.Fatal(err)
				}
				for _, p := range c.plant {
					if err := os.MkdirAll(filepath.Dir(filepath.Join(base, p)), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(base, p), []byte("planted\n"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				at := filepath.Join(base, c.link)
				target := filepath.Join(outside, "t")
				if c.leaf != "" {
					if err := os.WriteFile(target, []byte(c.leaf), 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.Remove(at); err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
				} else if _, err := os.Lstat(at); err == nil {
					// What the tree had there, each file's content
					// replaced: a rewrite with the same bytes would
					// not show.
					if err := os.Rename(at, target); err != nil {
						t.Fatal(err)
					}
					err := filepath.WalkDir(target, func(p string, d os.DirEntry, err error) error {
						if err != nil || !d.Type().IsRegular() {
							return err
						}
						// A new file: the checkout hard-links the
						// repository's objects.
						if err := os.Remove(p); err != nil {
							return err
						}
						return os.WriteFile(p, []byte(outsideMarker+" "+p+"\n"), 0o600)
					})
					if err != nil {
						t.Fatal(err)
					}
				} else if err := os.Mkdir(target, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, p := range c.outer {
					q := filepath.Join(target, p)
					if err := os.MkdirAll(filepath.Dir(q), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(q, []byte(outsideMarker+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(filepath.Join(outside, "sentinel"), []byte(outsideMarker+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				link := target
				if relative {
					link = strings.Repeat("../", strings.Count(c.link, "/")+20) + strings.TrimPrefix(target, "/")
				}
				if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(link, at); err != nil {
					t.Fatal(err)
				}
				if _, err := commitTree(ctx, fs, &Options{Repo: r}, "evil-base", base, 1700000000, nil); err != nil {
					t.Fatal(err)
				}
				before := snapshotDir(t, outside)
				spec := c.spec
				if spec == "" {
					spec = full
				}
				s, err := ParseSpec(filepath.Join(t.TempDir(), "spec.toml"), []byte(spec))
				if err != nil {
					t.Fatal(err)
				}
				cache := t.TempDir()
				commits := countCommits(t, r)
				res, err := Build(ctx, s, Options{Repo: r, CacheDir: cache, StrataBinary: "/bin/busybox"})
				after := snapshotDir(t, outside)
				for p, v := range before {
					if after[p] != v {
						t.Errorf("outside %s was %q, now %q", p, v, after[p])
					}
				}
				for p, v := range after {
					if _, ok := before[p]; !ok {
						t.Errorf("outside %s appeared: %q", p, v)
					}
				}
				if err != nil {
					if !strings.Contains(err.Error(), strings.TrimPrefix(c.link, "usr/")) || strings.Contains(err.Error(), "\n") {
						t.Errorf("err %v: want one line naming %s", err, c.link)
					}
					checkNothingPublished(t, r, "hostile", cache, commits)
					return
				}
				// Built: what it wrote is in the tree, and nothing of
				// the outside reached the image.
				co := filepath.Join(t.TempDir(), "co")
				if err := checkoutForTest(r, res.Commit, co); err != nil {
					t.Fatal(err)
				}
				err = filepath.WalkDir(co, func(p string, d os.DirEntry, err error) error {
					if err != nil || !d.Type().IsRegular() {
						return err
					}
					b, err := os.ReadFile(p)
					if err == nil && strings.Contains(strings.ToLower(string(b)), outsideMarker) {
						t.Errorf("the image's %s holds the outside file's content: %q", strings.TrimPrefix(p, co), b)
					}
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := r.SetRef("heads/hostile", nil); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
