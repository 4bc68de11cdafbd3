// Package testos gives strata's tests a composed Debian 12 with systemd
// (testos.toml beside this file, built by `strata compose`), built at most
// once per machine and reused: it is cached under $STRATA_CACHE/testos,
// keyed by the spec, its lock and the strata binary installed in it.
// Composing it takes minutes; a cache hit takes milliseconds.
//
//	img, err := testos.Get(ctx, testos.Options{})
//	// img.Repo is a bare repository holding img.Ref (= img.Commit):
//	// pull-local it into your own repository or sysroot; never write to it.
//	v2, err := testos.Derive(ctx, img, "testos-v2", `[[files]]
//	path = "/etc/greenboot/check/required.d/10-fail.sh"
//	content = "#!/bin/sh\nexit 1\n"
//	mode = "0755"`)
//
// Concurrent test processes wait for each other (a lock file).
package testos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/strata-os/strata/compose"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
)

// Image is a composed test OS in a cached repository.
type Image struct {
	Repo    string // bare repository; read only for callers
	Ref     string // e.g. "testos/1"
	Commit  string
	Kernels []string
	Spec    string // the spec it was built from
}

// Options adjust Get.
type Options struct {
	// CacheDir defaults to $STRATA_CACHE, else .cache at the module root.
	CacheDir string
	// StrataBinary is the static strata put into the image; default one
	// built from this source tree (CGO_ENABLED=0, -trimpath) in the cache.
	StrataBinary string
	// Progress and Warner receive the compose's reports.
	Progress progress.Reporter
	Warner   progress.Warner
	// Branch, for Derive, is the branch to commit on (the commit's ref
	// binding) instead of name/version: successive versions of one OS on
	// one branch, as an update server has them. The branch then names
	// the newest derived build; use Image.Commit for an older one.
	Branch string
}

// SourceRoot is the module's root directory (from this file's path).
func SourceRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "../.."))
}

// SpecPath is testos.toml.
func SpecPath() string { return filepath.Join(SourceRoot(), "internal/testos/testos.toml") }

func (o *Options) defaults(ctx context.Context) error {
	if o.CacheDir == "" {
		o.CacheDir = os.Getenv("STRATA_CACHE")
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(SourceRoot(), ".cache")
	}
	abs, err := filepath.Abs(o.CacheDir)
	if err != nil {
		return err
	}
	o.CacheDir = abs
	if o.StrataBinary == "" {
		bin, err := BuildStrata(ctx, filepath.Join(o.CacheDir, "testos"))
		if err != nil {
			return err
		}
		o.StrataBinary = bin
	}
	return nil
}

// BuildStrata builds a static strata from this source tree into dir and
// returns its path.
func BuildStrata(ctx context.Context, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := filepath.Join(dir, fmt.Sprintf("strata-%d", os.Getpid()))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", tmp, "./cmd/strata")
	cmd.Dir = SourceRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("building a static strata: %v: %s", err, b)
	}
	// Named by its digest: a rebuild of the same source replaces the
	// same file (the build is reproducible) instead of adding one.
	sum, err := fsutil.FileSHA256(tmp)
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	out := filepath.Join(dir, "strata-"+sum[:16])
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return out, nil
}

// Get returns the test OS (testos.toml), composing it when the cache has
// no build of this spec, lock and strata binary. The lock is kept in the
// cache (testos/testos.lock) and made on the first build; when the mirror
// no longer has a locked package, the lock is made again.
func Get(ctx context.Context, o Options) (*Image, error) {
	raw, err := os.ReadFile(SpecPath())
	if err != nil {
		return nil, err
	}
	return getSpec(ctx, o, "testos", raw)
}

// GetSpec composes an arbitrary Debian spec (given as TOML text) the way
// Get composes testos.toml, cached under its name.
func GetSpec(ctx context.Context, o Options, name string, spec string) (*Image, error) {
	return getSpec(ctx, o, name, []byte(spec))
}

func getSpec(ctx context.Context, o Options, name string, raw []byte) (*Image, error) {
	if err := o.defaults(ctx); err != nil {
		return nil, err
	}
	dir := filepath.Join(o.CacheDir, "testos")
	if err := os.MkdirAll(filepath.Join(dir, "specs"), 0o755); err != nil {
		return nil, err
	}
	lk, err := fsutil.LockFile(ctx, filepath.Join(dir, "lock"), fsutil.LockOptions{Exclusive: true, Wait: true})
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	specPath := filepath.Join(dir, "specs", name+".toml")
	if b, err := os.ReadFile(specPath); err != nil || string(b) != string(raw) {
		if err := fsutil.WriteFile(specPath, raw, 0o644); err != nil {
			return nil, err
		}
	}
	s, err := compose.LoadSpec(specPath)
	if err != nil {
		return nil, err
	}
	if l, err := compose.ReadLock(compose.LockPath(specPath)); err == nil && l.Base != s.BaseDigest() {
		_ = os.Remove(compose.LockPath(specPath))
	}
	binSum, err := fsutil.FileSHA256(o.StrataBinary)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		img, err := buildCached(ctx, o, dir, s, raw, binSum)
		if err != nil && attempt == 0 && errors.Is(err, errdefs.ErrNotFound) && strings.Contains(err.Error(), "no longer has") {
			// The mirror moved on: lock again.
			_ = os.Remove(compose.LockPath(specPath))
			continue
		}
		return img, err
	}
}

func buildCached(ctx context.Context, o Options, dir string, s *compose.Spec, raw []byte, binSum string) (*Image, error) {
	lockDigest := "none"
	if l, err := compose.ReadLock(compose.LockPath(s.Path)); err == nil {
		lockDigest = l.Digest()
	}
	h := sha256.Sum256([]byte(string(raw) + "\x00" + lockDigest + "\x00" + binSum))
	key := hex.EncodeToString(h[:])[:16]
	out := filepath.Join(dir, s.OS.Name+"-"+key)
	ref := s.OS.Name + "/" + versionOr(s.OS.Version)
	img := &Image{Repo: filepath.Join(out, "repo"), Ref: ref, Spec: s.Path}
	if readMarker(filepath.Join(out, "done"), img) {
		return img, nil
	}
	_ = os.RemoveAll(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	r, err := repo.Init(img.Repo, repo.ModeBare, repo.InitOptions{})
	if err != nil {
		return nil, err
	}
	res, err := compose.Build(ctx, s, compose.Options{
		Repo: r, Branch: ref, CacheDir: o.CacheDir, StrataBinary: o.StrataBinary,
		Progress: o.Progress, Warner: o.Warner,
	})
	if err != nil {
		return nil, err
	}
	if res.LockWritten {
		// The key names the lock: file the build under it.
		l, err := compose.ReadLock(compose.LockPath(s.Path))
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256([]byte(string(raw) + "\x00" + l.Digest() + "\x00" + binSum))
		final := filepath.Join(dir, s.OS.Name+"-"+hex.EncodeToString(h[:])[:16])
		_ = os.RemoveAll(final)
		if err := os.Rename(out, final); err != nil {
			return nil, err
		}
		out = final
		img.Repo = filepath.Join(out, "repo")
	}
	if err := writeMarker(filepath.Join(out, "done"), img, res); err != nil {
		return nil, err
	}
	return img, nil
}

func versionOr(v string) string {
	if v == "" {
		return "0"
	}
	return v
}

// Derive composes a spec whose base is img (its ref), into img's
// repository under ref name/version: extra is TOML appended after the
// generated [os] and [base] tables ([[files]], [[users]], [units], ...).
// Cached like Get.
func Derive(ctx context.Context, img *Image, name, version, extra string, o Options) (*Image, error) {
	if err := o.defaults(ctx); err != nil {
		return nil, err
	}
	dir := filepath.Join(o.CacheDir, "testos")
	lk, err := fsutil.LockFile(ctx, filepath.Join(dir, "lock"), fsutil.LockOptions{Exclusive: true, Wait: true})
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	raw := fmt.Sprintf("[os]\nname = %q\nversion = %q\n\n[base]\nref = %q\n\n%s\n", name, version, img.Ref, extra)
	specPath := filepath.Join(dir, "specs", name+"-"+version+".toml")
	if err := fsutil.WriteFile(specPath, []byte(raw), 0o644); err != nil {
		return nil, err
	}
	binSum, err := fsutil.FileSHA256(o.StrataBinary)
	if err != nil {
		return nil, err
	}
	ref := name + "/" + versionOr(version)
	if o.Branch != "" {
		ref = o.Branch
	}
	h := sha256.Sum256([]byte(raw + "\x00" + img.Commit + "\x00" + binSum + "\x00" + ref))
	marker := filepath.Join(filepath.Dir(img.Repo), "derived-"+hex.EncodeToString(h[:])[:16])
	out := &Image{Repo: img.Repo, Ref: ref, Spec: specPath}
	if readMarker(marker, out) {
		return out, nil
	}
	// A lock left by a build on another base names that base's commit,
	// which compose refuses: the derived spec is locked again.
	if err := os.Remove(strings.TrimSuffix(specPath, ".toml") + ".lock"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	s, err := compose.LoadSpec(specPath)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(img.Repo)
	if err != nil {
		return nil, err
	}
	res, err := compose.Build(ctx, s, compose.Options{
		Repo: r, Branch: ref, CacheDir: o.CacheDir, StrataBinary: o.StrataBinary,
		Progress: o.Progress, Warner: o.Warner,
	})
	if err != nil {
		return nil, err
	}
	if err := writeMarker(marker, out, res); err != nil {
		return nil, err
	}
	return out, nil
}

// readMarker fills img's commit and kernels from the marker of a finished
// build ("COMMIT KVER..."); false when there is none.
func readMarker(p string, img *Image) bool {
	b, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return false
	}
	img.Commit, img.Kernels = f[0], f[1:]
	return true
}

// writeMarker records build res in img and in the marker p.
func writeMarker(p string, img *Image, res *compose.Result) error {
	img.Commit, img.Kernels = res.Commit.String(), res.Kernels
	return fsutil.WriteFile(p, []byte(img.Commit+" "+strings.Join(img.Kernels, " ")+"\n"), 0o644)
}
