// Package repo is an OSTree-compatible content-addressed repository: object
// storage in the four repo modes, refs, the config keyfile, the repo lock,
// transactions, fsck and prune. It is the only code that writes under
// objects/ and refs/.
package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
)

// Sentinel errors, wrapped with the object or ref they concern.
var (
	ErrNotFound = errdefs.ErrNotFound
	ErrExists   = errdefs.ErrExists
	ErrInvalid  = errdefs.ErrInvalid
	// ErrCorrupt is errdefs.ErrCorrupt: a stored object failed verification.
	ErrCorrupt = errdefs.ErrCorrupt
)

// Mode is a repository storage mode.
type Mode int

// Repository modes, as OSTree names them.
const (
	ModeBare Mode = iota
	ModeBareUser
	ModeBareUserOnly
	ModeArchive
)

func (m Mode) String() string {
	switch m {
	case ModeBare:
		return "bare"
	case ModeBareUser:
		return "bare-user"
	case ModeBareUserOnly:
		return "bare-user-only"
	case ModeArchive:
		return "archive"
	}
	return fmt.Sprintf("mode%d", int(m))
}

// configName is how the mode is written in the config file (OSTree writes
// archive-z2 for archive).
func (m Mode) configName() string {
	if m == ModeArchive {
		return "archive-z2"
	}
	return m.String()
}

// ParseMode parses a mode name; "archive-z2" is accepted for archive.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "bare":
		return ModeBare, nil
	case "bare-user":
		return ModeBareUser, nil
	case "bare-user-only":
		return ModeBareUserOnly, nil
	case "archive", "archive-z2":
		return ModeArchive, nil
	}
	return 0, fmt.Errorf("%w: unknown repo mode %q (want bare, bare-user, bare-user-only or archive)", ErrInvalid, s)
}

// IsBare reports whether file objects are stored uncompressed, checkout-ready.
func (m Mode) IsBare() bool { return m != ModeArchive }

// Repo is an open repository.
type Repo struct {
	path    string
	mode    Mode
	cfg     *KeyFile
	fsync   bool
	zlevel  int
	minFree int // percent of the filesystem to keep free
}

// Path returns the repository's directory.
func (r *Repo) Path() string { return r.path }

// Mode returns the repository's storage mode.
func (r *Repo) Mode() Mode { return r.mode }

// Config returns the parsed config keyfile. Changes are saved by WriteConfig.
func (r *Repo) Config() *KeyFile { return r.cfg }

// WriteConfig durably replaces the config file.
func (r *Repo) WriteConfig(kf *KeyFile) error {
	if err := fsutil.WriteFile(filepath.Join(r.path, "config"), []byte(kf.String()), 0o644); err != nil {
		return err
	}
	r.cfg = kf
	return nil
}

// InitOptions are optional settings for Init.
type InitOptions struct {
	CollectionID string
}

// Init creates a repository at path, as `ostree init` does, or opens the
// existing one when it is already initialised with the same mode.
func Init(path string, mode Mode, opts InitOptions) (*Repo, error) {
	if data, err := fsutil.ReadFileLimit(filepath.Join(path, "config"), maxConfigSize); err == nil {
		r, err := Open(path)
		if err != nil {
			return nil, err
		}
		if r.mode != mode {
			return nil, fmt.Errorf("%w: repo %s exists with mode %s (config %d bytes)", ErrExists, path, r.mode, len(data))
		}
		return r, nil
	}
	for _, d := range []string{"", "objects", "refs", "refs/heads", "refs/remotes", "refs/mirrors", "tmp", "tmp/cache", "state", "extensions"} {
		if err := os.MkdirAll(filepath.Join(path, d), 0o755); err != nil {
			return nil, fmt.Errorf("init %s: %w", path, err)
		}
	}
	kf := &KeyFile{}
	kf.Set("core", "repo_version", strconv.Itoa(FormatVersion))
	kf.Set("core", "mode", mode.configName())
	if opts.CollectionID != "" {
		kf.Set("core", "collection-id", opts.CollectionID)
	}
	// The config is written last: its presence marks a complete repo.
	if err := fsutil.WriteFile(filepath.Join(path, "config"), []byte(kf.String()), 0o644); err != nil {
		return nil, err
	}
	return Open(path)
}

// FormatVersion is the repository format (core.repo_version) strata reads
// and writes: OSTree's, which has been 1 since its first release.
const FormatVersion = 1

// maxConfigSize bounds the config file read.
const maxConfigSize = 1 << 20

// Open opens an existing repository. Its config must be a regular file
// of at most 1 MiB.
func Open(path string) (*Repo, error) {
	data, err := fsutil.ReadFileLimit(filepath.Join(path, "config"), maxConfigSize)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: no repository at %s (missing config)", ErrNotFound, path)
		}
		return nil, fmt.Errorf("open repo %s: %w", path, err)
	}
	kf, err := ParseKeyFile(string(data))
	if err != nil {
		return nil, fmt.Errorf("repo %s: config: %w", path, err)
	}
	if v := kf.GetDefault("core", "repo_version", ""); v != strconv.Itoa(FormatVersion) {
		return nil, fmt.Errorf("repo %s: unsupported repo_version %q", path, v)
	}
	mode, err := ParseMode(kf.GetDefault("core", "mode", "bare"))
	if err != nil {
		return nil, fmt.Errorf("repo %s: %w", path, err)
	}
	r := &Repo{path: path, mode: mode, cfg: kf, zlevel: 6, minFree: 3}
	if r.fsync, err = kf.GetBool("core", "fsync", true); err != nil {
		return nil, fmt.Errorf("repo %s: %w", path, err)
	}
	if v, ok := kf.Get("core", "zlib-level"); ok {
		if _, err := fmt.Sscanf(v, "%d", &r.zlevel); err != nil || r.zlevel < 1 || r.zlevel > 9 {
			return nil, fmt.Errorf("repo %s: invalid core.zlib-level %q", path, v)
		}
	}
	if v, ok := kf.Get("core", "min-free-space-percent"); ok {
		if _, err := fmt.Sscanf(v, "%d", &r.minFree); err != nil || r.minFree < 0 || r.minFree > 99 {
			return nil, fmt.Errorf("repo %s: invalid core.min-free-space-percent %q", path, v)
		}
	}
	for _, d := range []string{"objects", "refs/heads", "tmp"} {
		if st, err := os.Stat(filepath.Join(path, d)); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%w: repo %s lacks %s/", ErrCorrupt, path, d)
		}
	}
	return r, nil
}

// CollectionID returns core.collection-id, or "".
func (r *Repo) CollectionID() string { return r.cfg.GetDefault("core", "collection-id", "") }

// objectRel returns the path of an object relative to the objects directory.
func (r *Repo) objectRel(kind objects.Kind, c objects.Checksum) string {
	h := c.String()
	ext := kind.String()
	if kind == objects.KindFile && r.mode == ModeArchive {
		ext = "filez"
	}
	return h[:2] + "/" + h[2:] + "." + ext
}

// ObjectPath returns the absolute path where an object is stored.
func (r *Repo) ObjectPath(kind objects.Kind, c objects.Checksum) string {
	return filepath.Join(r.path, "objects", r.objectRel(kind, c))
}

// HasObject reports whether the object is stored.
func (r *Repo) HasObject(kind objects.Kind, c objects.Checksum) (bool, error) {
	_, err := os.Lstat(r.ObjectPath(kind, c))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// ObjectName formats an object as OSTree names it: "CHECKSUM.KIND".
func ObjectName(kind objects.Kind, c objects.Checksum) string {
	return c.String() + "." + kind.String()
}
