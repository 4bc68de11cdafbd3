package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-os/strata/checkout"
	"github.com/strata-os/strata/container"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/repo"
)

// MetaBaseImageDigest is the commit metadata key that records the manifest
// digest ("sha256:...") of a [base] image, under the name OCI gives the
// same fact as an image annotation; an --oci export carries it as that
// label and annotation too.
const MetaBaseImageDigest = "org.opencontainers.image.base.digest"

// maxStatusSize bounds the dpkg status file read from an image base.
const maxStatusSize = 64 << 20

// baseImageRef is the spec's [base] image; a relative oci: or
// oci-archive: path is taken beside the spec, as [[files]] sources are.
func (s *Spec) baseImageRef() (container.ImageRef, error) {
	ref, err := container.ParseImageRef(s.Base.Image)
	if err != nil {
		return ref, err
	}
	if ref.Transport == container.OCIDir || ref.Transport == container.OCIArchive {
		p, tag := ref.PathTag()
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(s.Path), p)
			ref.Name = p
			if tag != "" {
				ref.Name += ":" + tag
			}
		}
	}
	return ref, nil
}

// imageBase pulls the spec's [base] image into the base cache's
// repository (only the layers it lacks are fetched; every blob verified,
// the signature policy asked first), checks the image's merged tree out
// into root (every file verified against its checksum) and makes it ready
// for the build steps, as a ref base is. It returns the image's manifest
// digest and timestamp (the config's created). With pinned (the lock's
// digest), a registry image is pulled by that digest, and an image of a
// layout or archive must have it: another is refused before its layers
// are fetched.
func imageBase(ctx context.Context, s *Spec, o *Options, work, root, strataBin, pinned string) (string, int64, error) {
	ref, err := s.baseImageRef()
	if err != nil {
		return "", 0, s.errAt("base.image", "%v", err)
	}
	// Errors name the spec's key and the image (Pull's name it already).
	at := fmt.Sprintf("%s:%d: base.image", s.Path, s.pos["base.image"])
	moved := func(got string) error {
		return fmt.Errorf("%s: image %s is %s, %s pins %s: run `strata compose lock %s` to take the new image: %w",
			at, ref, got, LockPath(s.Path), pinned, s.Path, errdefs.ErrInvalid)
	}
	if pinned != "" {
		if ref.Transport == container.Registry {
			ref = pinnedImageRef(ref, pinned)
		} else {
			rs, err := container.Resolve(ctx, ref, o.Pull.Access)
			if err != nil {
				return "", 0, fmt.Errorf("%s: %w", at, err)
			}
			if rs.ManifestDigest != pinned {
				return "", 0, moved(rs.ManifestDigest)
			}
		}
	}
	var r *repo.Repo
	if o.NoBaseCache {
		r, err = repo.Init(filepath.Join(work, "image-repo"), repo.ModeBare, repo.InitOptions{})
	} else {
		r, err = baseRepo(o)
	}
	if err != nil {
		return "", 0, err
	}
	po := o.Pull
	po.Reporter = o.Progress
	res, err := container.Pull(ctx, r, ref, po)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", at, err)
	}
	if pinned != "" && res.ManifestDigest != pinned {
		return "", 0, moved(res.ManifestDigest) // changed since Resolve
	}
	cm, err := r.ReadCommit(res.MergeCommit)
	if err != nil {
		return "", 0, err
	}
	o.Progress.Phase("unpack", "files", 0)
	err = checkout.Checkout(ctx, r, res.MergeCommit, root, checkout.Options{ForceCopy: true, Progress: o.Progress})
	o.Progress.Done()
	if err != nil {
		return "", 0, fmt.Errorf("%s: image %s: %w", at, ref, err)
	}
	if err := checkBaseTree(root); err != nil {
		return "", 0, fmt.Errorf("%s: image %s: %w", at, ref, err)
	}
	if err := unlayout(root); err != nil {
		return "", 0, err
	}
	// The strata being installed replaces the image's, if it has one
	// (none when the tree is only resolved against, for a lock).
	if strataBin != "" {
		if err := installStrata(root, strataBin); err != nil {
			return "", 0, err
		}
	}
	return res.ManifestDigest, int64(cm.Timestamp), nil
}

// pinnedImageRef names a registry image by digest instead of its tag
// ("HOST/NAME:TAG" -> "HOST/NAME@DIGEST").
func pinnedImageRef(ref container.ImageRef, digest string) container.ImageRef {
	name := ref.Name
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	} else if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	return container.ImageRef{Transport: ref.Transport, Name: name + "@" + digest}
}

// lockImage resolves the spec's image base (its manifest and config only)
// and writes SPEC.lock with its manifest digest and created time.
func lockImage(ctx context.Context, s *Spec, a container.Access) (*Lock, error) {
	ref, err := s.baseImageRef()
	if err != nil {
		return nil, s.errAt("base.image", "%v", err)
	}
	rs, err := container.Resolve(ctx, ref, a)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: base.image: %w", s.Path, s.pos["base.image"], err)
	}
	l := &Lock{Version: LockVersion, Base: s.BaseDigest(), Image: rs.ManifestDigest}
	if t, err := time.Parse(time.RFC3339Nano, rs.Created); err == nil {
		l.SourceDateEpoch = t.Unix()
	}
	if err := l.Write(LockPath(s.Path)); err != nil {
		return nil, err
	}
	return l, nil
}

// baseDirs are the directories of a base tree that the build steps write
// into, remove from or move, by path (joined onto the build root). In a
// tree that comes from an image or a ref, each of them, and each of its
// parents, must be a directory or absent: a symlink there (to /, or to
// ../../..) would take those writes out of the tree.
var baseDirs = []string{
	"etc/apt", "etc/default", "etc/ssh", "etc/systemd/system",
	"usr/etc/apt", "usr/etc/default", "usr/etc/ssh", "usr/etc/systemd/system",
	"usr/bin", "usr/lib/bootc/kargs.d", "usr/lib/sysusers.d", "usr/lib/tmpfiles.d",
	"usr/lib/systemd/system", "usr/lib/sysimage/dpkg", "usr/lib/modules",
	"usr/share/factory/var", "usr/share/zoneinfo",
	"var/lib/dpkg", "boot", "dev", "proc", "sys", "run", "tmp", "sysroot",
}

// checkBaseTree refuses a base tree in which a directory the build steps
// write through is a symlink (baseDirs; every kernel directory of
// /usr/lib/modules; anything under /usr/share/factory/var, where /var's
// files are copied). It names the path and the link's target, and wraps
// errdefs.ErrInvalid. A tree made by mmdebstrap or by strata compose has
// none of these.
func checkBaseTree(root string) error {
	refuse := func(rel string) error {
		t, _ := os.Readlink(filepath.Join(root, rel))
		return fmt.Errorf("/%s is a symlink (to %s): the build writes below it, a base must have a directory there: %w", rel, t, errdefs.ErrInvalid)
	}
	checked := map[string]bool{}
	for _, d := range baseDirs {
		parts := strings.Split(d, "/")
		for i := range parts {
			rel := strings.Join(parts[:i+1], "/")
			if checked[rel] {
				continue
			}
			checked[rel] = true
			st, err := os.Lstat(filepath.Join(root, rel))
			if err != nil {
				break // absent: the build makes a directory
			}
			if st.Mode()&fs.ModeSymlink != 0 {
				return refuse(rel)
			}
			if !st.IsDir() {
				return fmt.Errorf("/%s is not a directory: %w", rel, errdefs.ErrInvalid)
			}
		}
	}
	mods, err := os.ReadDir(filepath.Join(root, "usr/lib/modules"))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, m := range mods {
		if m.Type()&fs.ModeSymlink != 0 {
			return refuse("usr/lib/modules/" + m.Name())
		}
	}
	factory := filepath.Join(root, factoryVarDir)
	if _, err := os.Lstat(factory); err != nil {
		return nil
	}
	return filepath.WalkDir(factory, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			rel, _ := filepath.Rel(root, p)
			return refuse(rel)
		}
		return nil
	})
}

// countInstalled counts the packages dpkg's status file under root says
// are installed (0 without one: an image without dpkg). The file is
// resolved beneath root and must be a regular file.
func countInstalled(root string) (int, error) {
	dir, err := os.Open(root)
	if err != nil {
		return 0, err
	}
	defer dir.Close()
	f, err := fsutil.OpenRegularInRoot(int(dir.Fd()), "var/lib/dpkg/status")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("/var/lib/dpkg/status: %w", err)
	}
	defer f.Close()
	b, err := fsutil.ReadAllLimit(f, maxStatusSize)
	if err != nil {
		return 0, fmt.Errorf("/var/lib/dpkg/status: %w", err)
	}
	n := 0
	err = parseControl(bytes.NewReader(b), func(m map[string]string) error {
		if m["Status"] == "install ok installed" {
			n++
		}
		return nil
	})
	return n, err
}
