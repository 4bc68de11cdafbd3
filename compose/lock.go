package compose

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
)

// LockVersion is the format version of lock files this package writes.
const LockVersion = 1

var imageDigestRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Lock pins every package of a Debian base, or the manifest digest of an
// image base: SPEC.lock beside the spec.
type Lock struct {
	Version int `toml:"version"`
	// Base is the digest of the spec's [base] (suite, variant, packages,
	// components; or image) the lock was resolved for.
	Base string `toml:"base"`
	// Image is the manifest digest ("sha256:...") of an image base.
	Image string `toml:"image,omitempty"`
	// BaseCommit is the commit of a ref base whose dpkg status the
	// packages were resolved against (packages on a ref base).
	BaseCommit string `toml:"base-commit,omitempty"`
	// SourceDateEpoch is the build's clock (seconds): every maintainer
	// script sees it, and the commit's timestamp is it.
	SourceDateEpoch int64         `toml:"source-date-epoch"`
	Suite           string        `toml:"suite"`
	Packages        []LockPackage `toml:"package"`
}

// LockPackage is one .deb.
type LockPackage struct {
	Name     string `toml:"name"`
	Version  string `toml:"version"`
	Arch     string `toml:"arch"`
	SHA256   string `toml:"sha256"`
	Size     int64  `toml:"size"`
	Filename string `toml:"filename"` // pool path on the mirror
	Priority string `toml:"priority,omitempty"`
}

// LockPath is where the lock of spec path lives: SPEC.lock beside it
// (demo.toml -> demo.lock).
func LockPath(specPath string) string {
	return strings.TrimSuffix(specPath, filepath.Ext(specPath)) + ".lock"
}

// BaseDigest is the digest of what a lock depends on in the spec.
func (s *Spec) BaseDigest() string {
	b := s.Base
	pk := append([]string(nil), b.Packages...)
	sort.Strings(pk)
	co := append([]string(nil), b.Components...)
	sort.Strings(co)
	if b.Image != "" || b.Ref != "" {
		in := "image=" + b.Image + "\n"
		if b.Ref != "" {
			in = "ref=" + b.Ref + "\n"
		}
		if len(pk) > 0 {
			in += fmt.Sprintf("packages=%s\ncomponents=%s\n", strings.Join(pk, ","), strings.Join(co, ","))
		}
		h := sha256.Sum256([]byte(in))
		return hex.EncodeToString(h[:])
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("suite=%s\nvariant=%s\npackages=%s\ncomponents=%s\n",
		b.Suite, s.variant(), strings.Join(pk, ","), strings.Join(co, ","))))
	return hex.EncodeToString(h[:])
}

func (s *Spec) variant() string {
	if s.Base.Variant == "" {
		return "minbase"
	}
	return s.Base.Variant
}

func (s *Spec) components() []string {
	if len(s.Base.Components) == 0 {
		return []string{"main"}
	}
	return s.Base.Components
}

// ReadLock reads a lock file; a missing file wraps errdefs.ErrNotFound.
func ReadLock(path string) (*Lock, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("lock %s: %w", path, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var l Lock
	if err := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields().Decode(&l); err != nil {
		return nil, fmt.Errorf("lock %s: %v: %w", path, err, errdefs.ErrInvalid)
	}
	if l.Version != LockVersion {
		return nil, fmt.Errorf("lock %s: version %d, this strata reads %d: %w", path, l.Version, LockVersion, errdefs.ErrInvalid)
	}
	if l.BaseCommit != "" {
		if _, err := objects.ParseChecksum(l.BaseCommit); err != nil {
			return nil, fmt.Errorf("lock %s: base-commit %q: want a commit checksum: %w", path, l.BaseCommit, errdefs.ErrInvalid)
		}
	}
	if l.Image != "" && !imageDigestRe.MatchString(l.Image) {
		return nil, fmt.Errorf("lock %s: image %q: want sha256:HEX: %w", path, l.Image, errdefs.ErrInvalid)
	}
	for _, p := range l.Packages {
		if !pkgRe.MatchString(p.Name) || len(p.SHA256) != 64 || strings.Contains(p.Filename, "..") || strings.HasPrefix(p.Filename, "/") || p.Filename == "" {
			return nil, fmt.Errorf("lock %s: package %q: bad name, sha256 or filename: %w", path, p.Name, errdefs.ErrInvalid)
		}
		if _, err := hex.DecodeString(p.SHA256); err != nil {
			return nil, fmt.Errorf("lock %s: package %q: sha256: %w", path, p.Name, errdefs.ErrInvalid)
		}
	}
	return &l, nil
}

// Write writes the lock durably.
func (l *Lock) Write(path string) error {
	sort.Slice(l.Packages, func(i, j int) bool { return l.Packages[i].Name < l.Packages[j].Name })
	b, err := toml.Marshal(l)
	if err != nil {
		return err
	}
	hdr := "# Written by `strata compose lock`: every package of the base, pinned by sha256.\n"
	switch {
	case l.Image != "" && len(l.Packages) > 0:
		hdr = "# Written by `strata compose lock`: the base image, pinned by its manifest digest, and every package installed on it, by sha256.\n"
	case l.BaseCommit != "":
		hdr = "# Written by `strata compose lock`: the base commit, and every package installed on it, pinned by sha256.\n"
	case l.Image != "":
		hdr = "# Written by `strata compose lock`: the base image, pinned by its manifest digest.\n"
	}
	return fsutil.WriteFile(path, append([]byte(hdr), b...), 0o644)
}

// Digest identifies the locked package set.
func (l *Lock) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "v%d %s %d %s\n", l.Version, l.Base, l.SourceDateEpoch, l.Suite)
	if l.Image != "" {
		fmt.Fprintf(h, "image %s\n", l.Image)
	}
	if l.BaseCommit != "" {
		fmt.Fprintf(h, "base-commit %s\n", l.BaseCommit)
	}
	for _, p := range l.Packages {
		fmt.Fprintf(h, "%s %s %s %s %s\n", p.Name, p.Version, p.Arch, p.SHA256, p.Priority)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// debFileName is the name apt gives a downloaded .deb.
func debFileName(name, version, arch string) string {
	return fmt.Sprintf("%s_%s_%s.deb", name, strings.ReplaceAll(version, ":", "%3a"), arch)
}

// Cache is the package cache: $STRATA_CACHE/debs/SHA256.deb.
type Cache struct{ Dir string }

func (c Cache) debPath(sha string) string { return filepath.Join(c.Dir, "debs", sha+".deb") }

// byNameDir holds hard links to cached .debs under apt's file names, to
// seed apt's cache in mirror runs (apt verifies them against the index).
func (c Cache) byNameDir() string { return filepath.Join(c.Dir, "debs", "by-name") }

func (c Cache) linkByName(p LockPackage) {
	dir := c.byNameDir()
	if os.MkdirAll(dir, 0o755) != nil {
		return
	}
	dst := filepath.Join(dir, debFileName(p.Name, p.Version, p.Arch))
	_ = os.Remove(dst)
	_ = os.Link(c.debPath(p.SHA256), dst)
}

// addFile copies src into the cache if its sha256 is want.
func (c Cache) addFile(src, want string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.add(f, want, src)
}

func (c Cache) add(r io.Reader, want, what string) error {
	dst := c.debPath(want)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFileFunc(dst, 0o644, func(w io.Writer) error {
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, h), r); err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return fmt.Errorf("%s: sha256 %s, want %s: %w", what, got, want, errdefs.ErrCorrupt)
		}
		return nil
	})
}

// verify checks the cached file of p against its sha256.
func (c Cache) verify(p LockPackage) error {
	got, err := fsutil.FileSHA256(c.debPath(p.SHA256))
	if err != nil {
		return err
	}
	if got != p.SHA256 {
		return fmt.Errorf("cached %s of %s %s: sha256 %s, want %s: %w", c.debPath(p.SHA256), p.Name, p.Version, got, p.SHA256, errdefs.ErrCorrupt)
	}
	return nil
}

// fetch downloads p from mirror into the cache, verifying its sha256
// before it is published there.
func (c Cache) fetch(ctx context.Context, mirror string, p LockPackage) error {
	url := strings.TrimSuffix(mirror, "/") + "/" + p.Filename
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s %s: %w", p.Name, p.Version, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s %s from %s: %s (the mirror no longer has this version: run `strata compose lock` again, or use a mirror that keeps it): %w",
			p.Name, p.Version, url, resp.Status, errdefs.ErrNotFound)
	}
	if err := c.add(io.LimitReader(resp.Body, p.Size+1), p.SHA256, url); err != nil {
		return fmt.Errorf("package %s %s: %w", p.Name, p.Version, err)
	}
	c.linkByName(p)
	return nil
}

// parseControl parses deb822 stanzas (dpkg status, Packages indexes).
func parseControl(r io.Reader, each func(map[string]string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	cur := map[string]string{}
	key := ""
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		err := each(cur)
		cur = map[string]string{}
		return err
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if key != "" {
				cur[key] += "\n" + line
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key = k
		cur[k] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return flush()
}

type pkgKey struct{ name, version, arch string }

// readIndexes reads the package indexes apt downloaded and verified
// against the mirror's signed Release into dir (*_Packages).
func readIndexes(dir string) (map[pkgKey]map[string]string, error) {
	index := map[pkgKey]map[string]string{}
	lists, _ := filepath.Glob(filepath.Join(dir, "*_Packages"))
	if len(lists) == 0 {
		return nil, fmt.Errorf("no package index in %s: %w", dir, errdefs.ErrNotFound)
	}
	for _, p := range lists {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		err = parseControl(f, func(m map[string]string) error {
			index[pkgKey{m["Package"], m["Version"], m["Architecture"]}] = m
			return nil
		})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return index, nil
}

// lockFromTree makes the lock of a tree mmdebstrap built from the mirror
// with its downloads and package lists kept: the installed packages (dpkg
// status), each matched to its .deb (var/cache/apt/archives) whose sha256
// must be the one of the mirror's signed index (var/lib/apt/lists). The
// .debs are added to the cache.
func lockFromTree(root string, c Cache, l *Lock) error {
	index, err := readIndexes(filepath.Join(root, "var/lib/apt/lists"))
	if err != nil {
		return err
	}
	st, err := os.Open(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		return err
	}
	defer st.Close()
	var pkgs []LockPackage
	err = parseControl(st, func(m map[string]string) error {
		if m["Status"] != "install ok installed" {
			return nil
		}
		k := pkgKey{m["Package"], m["Version"], m["Architecture"]}
		ix, ok := index[k]
		if !ok {
			return fmt.Errorf("installed %s %s (%s) is in no package index of the mirror: %w", k.name, k.version, k.arch, errdefs.ErrNotFound)
		}
		deb := filepath.Join(root, "var/cache/apt/archives", debFileName(k.name, k.version, k.arch))
		size, _ := strconv.ParseInt(ix["Size"], 10, 64)
		p := LockPackage{Name: k.name, Version: k.version, Arch: k.arch, SHA256: ix["SHA256"], Size: size, Filename: ix["Filename"], Priority: ix["Priority"]}
		if err := c.addFile(deb, p.SHA256); err != nil {
			return fmt.Errorf("package %s %s: %w", k.name, k.version, err)
		}
		c.linkByName(p)
		pkgs = append(pkgs, p)
		return nil
	})
	if err != nil {
		return err
	}
	l.Packages = pkgs
	return nil
}
