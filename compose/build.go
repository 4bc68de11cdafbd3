// Package compose builds a bootable OSTree commit from one TOML spec
// (docs/compose.md): a Debian base made by mmdebstrap from locked
// packages (or an existing ref), the spec's files, users, groups, units and
// kernel arguments applied, the tree laid out for an image-based boot and
// normalized so that the same spec and lock give the same commit checksum
// wherever and whenever they are built.
package compose

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/checkout"
	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/container"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/tree"
)

// Options adjust Build and Lock. The zero value works for Lock; Build
// needs Repo.
type Options struct {
	// Repo receives the commit.
	Repo *repo.Repo
	// Branch is the ref to commit to; default the spec's os.name.
	Branch string
	// CacheDir holds downloaded packages (debs/) and build directories
	// (tmp/); default $STRATA_CACHE, else .cache.
	CacheDir string
	// StrataBinary is the static strata installed into the image and its
	// initramfs; default the running executable.
	StrataBinary string
	// HostRoot is where apt's configuration is read ("/" by default).
	HostRoot string
	// Keep keeps the build directory (for debugging).
	Keep bool
	// NoBaseCache neither reads nor writes the base cache: mmdebstrap
	// always runs (reproducibility checks).
	NoBaseCache bool
	// Pull tunes the pull of a [base] image: its Policy (nil: images are
	// taken unverified), RegistriesD, Jobs, Retries, Access (credentials
	// and registries.conf, also used to push an OCI export to a
	// registry). Its Reporter is Progress.
	Pull container.PullOptions
	// OCI, when its Transport is set, is where the commit is exported
	// after it was written, as an encapsulated image (oci:, oci-archive:
	// or a registry); OCIMaxLayers bounds its layers (default 64).
	OCI          container.ImageRef
	OCIMaxLayers int
	// OCIPrevious, when set, is an earlier export whose layout the OCI
	// export keeps (container.EncapsulateOptions.Previous).
	OCIPrevious *container.ImageRef
	Progress    progress.Reporter
	Warner      progress.Warner

	// baseImageDigest is the manifest digest of the [base] image, set by
	// Build for commitTree.
	baseImageDigest string
}

func (o *Options) defaults() error {
	if o.CacheDir == "" {
		o.CacheDir = os.Getenv("STRATA_CACHE")
	}
	if o.CacheDir == "" {
		o.CacheDir = ".cache"
	}
	abs, err := filepath.Abs(o.CacheDir)
	if err != nil {
		return err
	}
	o.CacheDir = abs
	if o.HostRoot == "" {
		o.HostRoot = "/"
	}
	o.Progress = progress.OrNop(o.Progress)
	o.Warner = progress.WarnerOrNop(o.Warner)
	return nil
}

// Result is what Build made.
type Result struct {
	Commit      objects.Checksum
	Branch      string
	Packages    int
	Files       int64
	Bytes       int64
	Kernels     []string
	LockWritten bool // the spec had no lock: Build resolved and wrote one
	// BaseImageDigest is the manifest digest of the [base] image ("" for
	// another base), recorded in the commit as MetaBaseImageDigest.
	BaseImageDigest string
	// Image is the export to Options.OCI (nil without one).
	Image    *container.EncapsulateResult
	Duration time.Duration
}

// Summary is the one-line report of a build: ref, packages, files, size,
// commit checksum, time.
func (r *Result) Summary() string {
	return fmt.Sprintf("%s: %d packages, %d files, %.1f MiB, commit %s, %s",
		r.Branch, r.Packages, r.Files, float64(r.Bytes)/(1<<20), r.Commit, r.Duration.Round(100*time.Millisecond))
}

// mirrorFor returns the mirror URL and its sources.list line for suite
// (the spec's, or a ref or image base's own).
func mirrorFor(s *Spec, o *Options, suite string) (string, string, error) {
	if s.Base.Mirror != "" {
		return s.Base.Mirror, fmt.Sprintf("deb %s %s %s", s.Base.Mirror, suite, strings.Join(s.components(), " ")), nil
	}
	m, err := FindMirror(o.HostRoot, suite)
	if err != nil {
		return "", "", err
	}
	opt := ""
	if m.SignedBy != "" && !strings.Contains(m.SignedBy, "\n") {
		opt = "[signed-by=" + m.SignedBy + "] "
	}
	return m.URI, fmt.Sprintf("deb %s%s %s %s", opt, m.URI, suite, strings.Join(s.components(), " ")), nil
}

// workDir makes a fresh build directory under the cache.
func workDir(o *Options) (string, error) {
	base := filepath.Join(o.CacheDir, "tmp")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(base, "compose-")
	if err != nil {
		return "", err
	}
	// apt downloads and reads file: repositories as _apt: it must be able
	// to enter the build directory.
	return dir, os.Chmod(dir, 0o755)
}

func strataBinary(o *Options) (string, error) {
	p := o.StrataBinary
	if p == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", err
		}
		p = exe
	}
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("strata binary %s: %w", p, err)
	}
	defer f.Close()
	for _, ph := range f.Progs {
		if ph.Type == elf.PT_INTERP {
			return "", fmt.Errorf("strata binary %s is dynamically linked; the initramfs needs a static one (CGO_ENABLED=0 go build ./cmd/strata): %w", p, errdefs.ErrInvalid)
		}
	}
	return p, nil
}

// stageScripts writes what every mmdebstrap run of the spec takes into
// work: the hook directory (strata and its initramfs hooks) and, when
// [ids] pins ids, the script that creates those users and groups first
// ("" when none).
func stageScripts(s *Spec, work, strataBin string, epoch int64) (hooks, pins string, err error) {
	hooks = filepath.Join(work, "hooks")
	if err := stageHookDir(hooks, strataBin, s.Kernel.InitramfsModules); err != nil {
		return "", "", err
	}
	if len(s.IDs.Users)+len(s.IDs.Groups) > 0 {
		pins = filepath.Join(work, "pins.sh")
		if err := pinScript(pins, s.IDs, epoch); err != nil {
			return "", "", err
		}
	}
	return hooks, pins, nil
}

// resolveFromMirror runs mmdebstrap against the mirror into root with the
// downloads kept, and returns the lock of what it installed (its .debs
// added to the cache).
func resolveFromMirror(ctx context.Context, s *Spec, o *Options, work, root string, epoch int64, strataBin string) (*Lock, error) {
	_, line, err := mirrorFor(s, o, s.Base.Suite)
	if err != nil {
		return nil, err
	}
	o.Progress.Phase("resolve", "steps", 0)
	o.Progress.Done()
	hooks, pins, err := stageScripts(s, work, strataBin, epoch)
	if err != nil {
		return nil, err
	}
	m := &mmdebstrapRun{spec: s, target: root, source: line, keep: true, seed: Cache{Dir: o.CacheDir}.byNameDir(), hookDir: hooks, pins: pins, epoch: epoch, log: filepath.Join(work, "mmdebstrap.log"), rep: o.Progress}
	if err := m.run(ctx); err != nil {
		return nil, err
	}
	l := &Lock{Version: LockVersion, Base: s.BaseDigest(), SourceDateEpoch: epoch, Suite: s.Base.Suite}
	if err := lockFromTree(root, Cache{Dir: o.CacheDir}, l); err != nil {
		return nil, err
	}
	return l, nil
}

// LockSpec resolves the spec's Debian base against the mirror and writes
// SPEC.lock (every package with its version, sha256 and pool path); the
// packages land in the cache. It runs a full mmdebstrap.
func LockSpec(ctx context.Context, s *Spec, o Options) (*Lock, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if s.hasLayer() {
		return lockLayer(ctx, s, &o)
	}
	if s.Base.Image != "" {
		return lockImage(ctx, s, o.Pull.Access)
	}
	if s.Base.Suite == "" {
		return nil, fmt.Errorf("%s: only a Debian base (suite) or an image base has something to lock: %w", s.Path, errdefs.ErrInvalid)
	}
	bin, err := strataBinary(&o)
	if err != nil {
		return nil, err
	}
	work, err := workDir(&o)
	if err != nil {
		return nil, err
	}
	if !o.Keep {
		defer os.RemoveAll(work)
	}
	epoch := time.Now().Unix()
	if s.OS.SourceDateEpoch != nil {
		epoch = *s.OS.SourceDateEpoch
	}
	l, err := resolveFromMirror(ctx, s, &o, work, filepath.Join(work, "root"), epoch, bin)
	if err != nil {
		return nil, err
	}
	if err := l.Write(LockPath(s.Path)); err != nil {
		return nil, err
	}
	return l, nil
}

// fetchLocked makes sure every locked package is in the cache, verified.
func fetchLocked(ctx context.Context, s *Spec, o *Options, l *Lock) error {
	c := Cache{Dir: o.CacheDir}
	var missing []LockPackage
	for _, p := range l.Packages {
		if err := c.verify(p); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				// A corrupt cached file is replaced by a verified download.
				o.Warner.Warn(err)
				_ = os.Remove(c.debPath(p.SHA256))
			}
			missing = append(missing, p)
		}
	}
	o.Progress.Phase("fetch", "packages", int64(len(missing)))
	defer o.Progress.Done()
	if len(missing) == 0 {
		return nil
	}
	suite := l.Suite
	if suite == "" {
		suite = s.Base.Suite
	}
	mirror, _, err := mirrorFor(s, o, suite)
	if err != nil {
		return err
	}
	for _, p := range missing {
		if err := c.fetch(ctx, mirror, p); err != nil {
			return err
		}
		o.Progress.Add(1)
	}
	return nil
}

// Build composes the spec into a commit on o.Branch of o.Repo. A Debian
// base installs exactly the packages of SPEC.lock; without a lock it is
// resolved against the mirror first and the lock written (as
// `compose lock` does).
func Build(ctx context.Context, s *Spec, o Options) (*Result, error) {
	start := time.Now()
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.Repo == nil {
		return nil, fmt.Errorf("compose: no repository: %w", errdefs.ErrInvalid)
	}
	res := &Result{Branch: o.Branch}
	if res.Branch == "" {
		res.Branch = s.OS.Name
	}
	if _, err := repo.RefPath(res.Branch); err != nil {
		return nil, err
	}
	switch o.OCI.Transport {
	case "", container.OCIDir, container.OCIArchive, container.Registry:
	default:
		return nil, fmt.Errorf("--oci %s: want oci:DIR[:TAG], oci-archive:FILE[:TAG] or registry:NAME: %w", o.OCI, errdefs.ErrInvalid)
	}
	bin, err := strataBinary(&o)
	if err != nil {
		return nil, err
	}
	work, err := workDir(&o)
	if err != nil {
		return nil, err
	}
	if !o.Keep {
		defer os.RemoveAll(work)
	}
	root := filepath.Join(work, "root")
	var epoch int64
	var lock *Lock
	switch {
	case s.Base.Image != "":
		lp := LockPath(s.Path)
		pinned := ""
		switch lock, err = ReadLock(lp); {
		case errors.Is(err, errdefs.ErrNotFound):
		case err != nil:
			return nil, err
		case lock.Base != s.BaseDigest() || lock.Image == "":
			return nil, fmt.Errorf("%s was made for another [base] (image changed): run `strata compose lock %s`: %w", lp, s.Path, errdefs.ErrInvalid)
		default:
			pinned = lock.Image
		}
		if res.BaseImageDigest, epoch, err = imageBase(ctx, s, &o, work, root, bin, pinned); err != nil {
			return nil, err
		}
		if pinned == "" {
			l := &Lock{Version: LockVersion, Base: s.BaseDigest(), Image: res.BaseImageDigest, SourceDateEpoch: epoch}
			if s.hasLayer() {
				if l, err = resolveLayer(ctx, s, &o, work, root, scriptEpoch(s, epoch)); err != nil {
					return nil, err
				}
				l.Image, l.SourceDateEpoch = res.BaseImageDigest, epoch
			}
			if err := l.Write(lp); err != nil {
				return nil, err
			}
			res.LockWritten = true
			lock = l
		}
		o.baseImageDigest = res.BaseImageDigest
	case s.Base.Ref != "":
		base, ep, err := refBase(ctx, s, &o, root)
		if err != nil {
			return nil, err
		}
		epoch = ep
		// The strata being installed replaces the base's.
		if err := installStrata(root, bin); err != nil {
			return nil, err
		}
		if !s.hasLayer() {
			break
		}
		lp := LockPath(s.Path)
		switch lock, err = ReadLock(lp); {
		case errors.Is(err, errdefs.ErrNotFound):
			if lock, err = resolveLayer(ctx, s, &o, work, root, scriptEpoch(s, epoch)); err != nil {
				return nil, err
			}
			lock.BaseCommit = base.String()
			if err := lock.Write(lp); err != nil {
				return nil, err
			}
			res.LockWritten = true
		case err != nil:
			return nil, err
		case lock.Base != s.BaseDigest():
			return nil, fmt.Errorf("%s was made for another [base] (ref, packages or components changed): run `strata compose lock %s`: %w", lp, s.Path, errdefs.ErrInvalid)
		case lock.BaseCommit != base.String():
			return nil, fmt.Errorf("%s was resolved against base commit %s, [base] ref %q is now %s: run `strata compose lock %s`: %w", lp, lock.BaseCommit, s.Base.Ref, base, s.Path, errdefs.ErrInvalid)
		}
	default:
		lp := LockPath(s.Path)
		lock, err = ReadLock(lp)
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
			epoch = time.Now().Unix()
			if s.OS.SourceDateEpoch != nil {
				epoch = *s.OS.SourceDateEpoch
			}
			if lock, err = resolveFromMirror(ctx, s, &o, work, root, epoch, bin); err != nil {
				return nil, err
			}
			if err := lock.Write(lp); err != nil {
				return nil, err
			}
			res.LockWritten = true
		case err != nil:
			return nil, err
		default:
			if lock.Base != s.BaseDigest() || lock.Suite != s.Base.Suite {
				return nil, fmt.Errorf("%s was made for another [base] (suite, variant, packages or components changed): run `strata compose lock %s`: %w", lp, s.Path, errdefs.ErrInvalid)
			}
			epoch = lock.SourceDateEpoch
			if s.OS.SourceDateEpoch != nil {
				epoch = *s.OS.SourceDateEpoch
			}
			o.Progress.Phase("resolve", "packages", int64(len(lock.Packages)))
			o.Progress.Add(int64(len(lock.Packages)))
			o.Progress.Done()
			if err := fetchLocked(ctx, s, &o, lock); err != nil {
				return nil, err
			}
			key, err := baseKey(s, lock, bin, epoch)
			if err != nil {
				return nil, err
			}
			hit := false
			if !o.NoBaseCache {
				if hit, err = restoreBase(ctx, &o, key, root); err != nil {
					return nil, err
				}
			}
			if !hit {
				if err := buildLocked(ctx, s, &o, lock, work, root, epoch, bin); err != nil {
					return nil, err
				}
				if !o.NoBaseCache {
					if err := storeBase(ctx, &o, key, root); err != nil {
						o.Warner.Warn(fmt.Errorf("caching the base tree: %w", err))
					}
				}
			}
		}
		if err := checkInstalled(filepath.Join(root, "var/lib/dpkg/status"), lock); err != nil {
			return nil, err
		}
		res.Packages = len(lock.Packages)
	}
	epoch = scriptEpoch(s, epoch)
	if s.Base.Suite == "" {
		if s.hasLayer() {
			if err := fetchLocked(ctx, s, &o, lock); err != nil {
				return nil, err
			}
			if err := installLayer(ctx, s, &o, lock, root, epoch); err != nil {
				return nil, err
			}
		}
		if res.Packages, err = countInstalled(root); err != nil {
			return nil, err
		}
	}
	o.Progress.Phase("configure", "steps", 6)
	err = configure(ctx, s, root, epoch)
	o.Progress.Done()
	if err != nil {
		return nil, err
	}
	o.Progress.Phase("normalize", "files", 0)
	lay, err := layout(root, o.Warner)
	if err != nil {
		o.Progress.Done()
		return nil, err
	}
	res.Kernels = lay.Kernels
	st, err := Normalize(root, s.Etc.Hostname != "")
	o.Progress.Done()
	if err != nil {
		return nil, err
	}
	res.Files, res.Bytes = st.Files, st.Bytes
	if err := checkIDs(o.Repo, res.Branch, root); err != nil {
		return nil, err
	}
	o.Progress.Phase("commit", "files", st.Files)
	csum, err := commitTree(ctx, s, &o, res.Branch, root, epoch, lay.Kernels)
	o.Progress.Done()
	if err != nil {
		return nil, err
	}
	res.Commit = csum
	if o.OCI.Transport != "" {
		o.Progress.Phase("export", "steps", 0)
		res.Image, err = container.Encapsulate(ctx, o.Repo, csum, o.OCI, container.EncapsulateOptions{MaxLayers: o.OCIMaxLayers, Labels: exportLabels(&o), Access: o.Pull.Access, Previous: o.OCIPrevious})
		o.Progress.Done()
		if err != nil {
			return nil, fmt.Errorf("commit %s is on %s; exporting it to %s: %w", csum, res.Branch, o.OCI, err)
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// scriptEpoch is the build clock: the base's (lock, image or ref commit),
// unless the spec sets [os] source-date-epoch.
func scriptEpoch(s *Spec, base int64) int64 {
	if s.OS.SourceDateEpoch != nil {
		return *s.OS.SourceDateEpoch
	}
	return base
}

// refBase checks the spec's [base] ref out of o.Repo into root (every
// file verified) and turns it back into the build's shape (unlayout). It
// returns the commit and its timestamp.
func refBase(ctx context.Context, s *Spec, o *Options, root string) (objects.Checksum, int64, error) {
	o.Progress.Phase("unpack", "files", 0)
	defer o.Progress.Done()
	base, err := o.Repo.ResolveRev(s.Base.Ref)
	if err != nil {
		return base, 0, fmt.Errorf("%s: [base] ref %q: %w", s.Path, s.Base.Ref, err)
	}
	cm, err := o.Repo.ReadCommit(base)
	if err != nil {
		return base, 0, err
	}
	if err := checkout.Checkout(ctx, o.Repo, base, root, checkout.Options{ForceCopy: true, Progress: o.Progress}); err != nil {
		return base, 0, err
	}
	if err := checkBaseTree(root); err != nil {
		return base, 0, fmt.Errorf("%s: [base] ref %q: %w", s.Path, s.Base.Ref, err)
	}
	return base, int64(cm.Timestamp), unlayout(root)
}

// lockLayer resolves the packages of a spec with a ref or image base
// against that base's tree (checked out into a build directory) and the
// mirror, and writes SPEC.lock: the base (commit, or image digest) and
// every .deb installed on top.
func lockLayer(ctx context.Context, s *Spec, o *Options) (*Lock, error) {
	if s.Base.Ref != "" && o.Repo == nil {
		return nil, fmt.Errorf("%s: packages on [base] ref %q are resolved against that ref: give --repo: %w", s.Path, s.Base.Ref, errdefs.ErrInvalid)
	}
	work, err := workDir(o)
	if err != nil {
		return nil, err
	}
	if !o.Keep {
		defer os.RemoveAll(work)
	}
	root := filepath.Join(work, "root")
	var (
		epoch  int64
		base   objects.Checksum
		digest string
	)
	if s.Base.Ref != "" {
		base, epoch, err = refBase(ctx, s, o, root)
	} else {
		digest, epoch, err = imageBase(ctx, s, o, work, root, "", "")
	}
	if err != nil {
		return nil, err
	}
	l, err := resolveLayer(ctx, s, o, work, root, scriptEpoch(s, epoch))
	if err != nil {
		return nil, err
	}
	l.SourceDateEpoch, l.Image = epoch, digest
	if s.Base.Ref != "" {
		l.BaseCommit = base.String()
	}
	if err := l.Write(LockPath(s.Path)); err != nil {
		return nil, err
	}
	return l, nil
}

// exportLabels are the labels an --oci export adds to encapsulate's own.
func exportLabels(o *Options) map[string]string {
	if o.baseImageDigest == "" {
		return nil
	}
	return map[string]string{MetaBaseImageDigest: o.baseImageDigest}
}

// buildLocked runs mmdebstrap against a local repository of exactly the
// locked packages.
func buildLocked(ctx context.Context, s *Spec, o *Options, l *Lock, work, root string, epoch int64, strataBin string) error {
	// The local repository lives at a fixed path inside the work directory;
	// nothing of its path reaches the image (apt's sources are rewritten,
	// its lists dropped with /var).
	local := filepath.Join(work, "repo")
	if err := localRepo(ctx, local, Cache{Dir: o.CacheDir}, l); err != nil {
		return err
	}
	hooks, pins, err := stageScripts(s, work, strataBin, epoch)
	if err != nil {
		return err
	}
	// mmdebstrap installs most packages with apt inside the chroot, where
	// the repository must be at the same path as on the host: its
	// file-mirror-automount hook bind-mounts it there and unmounts it at
	// the end. The path is under /run (a link to the repository), which
	// mmdebstrap and the layout empty, so no directory of the build
	// machine is left in the tree.
	link := "/run/strata-" + filepath.Base(work)
	_ = os.Remove(link)
	if err := os.Symlink(local, link); err != nil {
		return fmt.Errorf("local repository: %w", err)
	}
	defer os.Remove(link)
	// The hook unmounts it at the end of a successful run; after a failed
	// one it is still mounted in the root: detach it (no error when not).
	defer func() { _ = unix.Unmount(filepath.Join(root, link), unix.MNT_DETACH) }()
	m := &mmdebstrapRun{spec: s, target: root, source: "deb [trusted=yes] file://" + link + " ./", hookDir: hooks, pins: pins, epoch: epoch,
		log: filepath.Join(work, "mmdebstrap.log"), rep: o.Progress, hookDirs: []string{"/usr/share/mmdebstrap/hooks/file-mirror-automount"}}
	return m.run(ctx)
}

// configure applies the spec to the root (still in the usual layout: /etc
// at the top).
func configure(ctx context.Context, s *Spec, root string, epoch int64) error {
	t, err := openTree(root)
	if err != nil {
		return err
	}
	defer t.Close()
	if err := applyUsers(t, s, epoch); err != nil {
		return err
	}
	if err := applyFiles(t, s); err != nil {
		return err
	}
	if err := applyEtc(t, s); err != nil {
		return err
	}
	if err := writeKargs(t, s); err != nil {
		return err
	}
	units, err := installUnits(t)
	if err != nil {
		return err
	}
	// The tree's own systemctl runs in a chroot of it: the links it
	// makes resolve inside the tree.
	if _, err := t.Stat("usr/bin/systemctl"); err != nil && !os.IsNotExist(err) {
		return err
	} else if err == nil {
		if err := systemctl(ctx, root, epoch, "enable", append(units, s.Units.Enable...)); err != nil {
			return err
		}
		if err := systemctl(ctx, root, epoch, "disable", s.Units.Disable); err != nil {
			return err
		}
		if err := systemctl(ctx, root, epoch, "mask", s.Units.Mask); err != nil {
			return err
		}
	} else if len(s.Units.Enable)+len(s.Units.Disable)+len(s.Units.Mask) > 0 {
		return s.errAt("units", "the image has no systemd (/usr/bin/systemctl)")
	}
	return nil
}

// checkIDs fails when a user or group that the branch's current commit has
// got another id in this build (ids that packages allocate must be pinned
// in [ids]).
func checkIDs(r *repo.Repo, branch, root string) error {
	prev, err := r.ReadRef("heads/" + branch)
	if err != nil {
		return nil // no previous commit
	}
	cm, err := r.ReadCommit(prev)
	if err != nil {
		return err
	}
	prevTree := tree.RepoTree(r, cm.RootTree, cm.RootMeta)
	read := func(p string) ([]byte, error) {
		e, err := tree.Lookup(r, prevTree, p)
		if err != nil {
			return nil, err
		}
		_, rc, err := r.OpenFileVerified(e.File)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	pw, err1 := read("/usr/etc/passwd")
	gr, err2 := read("/usr/etc/group")
	if err1 != nil || err2 != nil {
		return nil // the previous commit is no composed image
	}
	old := parseIDs(pw, gr)
	t, err := openTree(root)
	if err != nil {
		return err
	}
	defer t.Close()
	cur, err := readIDs(t, "usr/etc")
	if err != nil {
		return err
	}
	var bad []string
	for n, ids := range cur.users {
		if o, ok := old.users[n]; ok && o[0] != ids[0] {
			bad = append(bad, fmt.Sprintf("user %s has uid %d, %d in %s", n, ids[0], o[0], prev))
		}
	}
	for n, id := range cur.groups {
		if o, ok := old.groups[n]; ok && o != id {
			bad = append(bad, fmt.Sprintf("group %s has gid %d, %d in %s", n, id, o, prev))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return fmt.Errorf("ids changed from the previous commit of %s (pin them in [ids]): %s: %w", branch, strings.Join(bad, "; "), errdefs.ErrInvalid)
	}
	return nil
}

func commitTree(ctx context.Context, s *Spec, o *Options, branch, root string, epoch int64, kernels []string) (objects.Checksum, error) {
	t, err := o.Repo.Begin(ctx)
	if err != nil {
		return objects.Checksum{}, err
	}
	defer t.Abort()
	m := commit.NewMTree(nil)
	if err := commit.AddDir(ctx, t, m, root, commit.Filter{}, o.Progress); err != nil {
		return objects.Checksum{}, err
	}
	var md objects.Metadata
	str := gvariant.MustParseType("s")
	if s.OS.Version != "" {
		md.Set("version", gvariant.Variant{Type: str, Value: s.OS.Version})
	}
	if o.baseImageDigest != "" {
		md.Set(MetaBaseImageDigest, gvariant.Variant{Type: str, Value: o.baseImageDigest})
	}
	// Bootable as `ostree commit --bootable` marks it (same keys, values
	// and order), with the kernel found as ostree finds it.
	// A tree without a kernel (no linux-image in the spec) is committed
	// without them.
	kver, err := commit.KernelVersion(o.Repo, m)
	switch {
	case err == nil:
		md = commit.BootableMetadata(md, kver)
	case !errdefs.IsNotFound(err):
		return objects.Checksum{}, fmt.Errorf("the composed tree is not bootable: %w", err)
	}
	var none objects.Checksum
	subject := s.OS.Name
	if s.OS.Version != "" {
		subject += " " + s.OS.Version
	}
	res, err := commit.Write(ctx, t, m, commit.Options{
		Branch:    branch,
		Subject:   subject,
		Timestamp: time.Unix(epoch, 0).UTC(),
		Parent:    &none,
		Metadata:  md,
	})
	if err != nil {
		return objects.Checksum{}, err
	}
	if err := t.Commit(); err != nil {
		return objects.Checksum{}, err
	}
	return res.Checksum, nil
}
