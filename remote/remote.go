// Package remote reads and writes remote configuration as OSTree keeps it:
// a `[remote "NAME"]` group in the repository's config file, or one
// NAME.conf file per remote in a remotes.d directory (/etc/ostree/remotes.d
// for the system repository). Options are OSTree's keys: url, contenturl,
// branches, gpg-verify, gpg-verify-summary, sign-verify,
// sign-verify-summary, verification-ed25519-key, verification-ed25519-file,
// gpgkeypath, collection-id, tls-*, proxy.
package remote

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/repo"
)

// nameRE is OSTree's remote name syntax (a ref fragment).
var nameRE = regexp.MustCompile(`^[\p{L}\p{N}_][-.\p{L}\p{N}_]*$`)

// ValidateName checks a remote name.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: invalid remote name %q", repo.ErrInvalid, name)
	}
	return nil
}

// Group returns the keyfile group that holds a remote's options.
func Group(name string) string { return `remote "` + name + `"` }

// Remote is one configured remote. Its options are read-only here; change
// them with Config.Add.
type Remote struct {
	Name string
	// File is the remotes.d file the remote comes from, or "" for the
	// repository's config.
	File string
	kf   *repo.KeyFile
}

// Get returns an option's value.
func (r *Remote) Get(key string) (string, bool) { return r.kf.Get(Group(r.Name), key) }

// GetDefault returns an option's value or def.
func (r *Remote) GetDefault(key, def string) string {
	return r.kf.GetDefault(Group(r.Name), key, def)
}

// GetBool parses a boolean option.
func (r *Remote) GetBool(key string, def bool) (bool, error) {
	v, err := r.kf.GetBool(Group(r.Name), key, def)
	if err != nil {
		return def, fmt.Errorf("remote %s: %w", r.Name, err)
	}
	return v, nil
}

// GetList returns a list option, split on ';' (and ',' as OSTree also
// accepts for some keys).
func (r *Remote) GetList(key string) []string {
	v, ok := r.Get(key)
	if !ok {
		return nil
	}
	var out []string
	for _, p := range strings.FieldsFunc(v, func(c rune) bool { return c == ';' || c == ',' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Keys lists the remote's option names in file order.
func (r *Remote) Keys() []string { return r.kf.Keys(Group(r.Name)) }

// URL returns the remote's url option.
func (r *Remote) URL() (string, error) {
	u, ok := r.Get("url")
	if !ok || u == "" {
		return "", fmt.Errorf("%w: remote %s has no url", repo.ErrInvalid, r.Name)
	}
	return u, nil
}

// GPGVerify reports whether commits must carry a valid OpenPGP signature
// (gpg-verify, default true as in OSTree).
func (r *Remote) GPGVerify() (bool, error) { return r.GetBool("gpg-verify", true) }

// GPGVerifySummary reports gpg-verify-summary (default false).
func (r *Remote) GPGVerifySummary() (bool, error) { return r.GetBool("gpg-verify-summary", false) }

// KeyringName is the file, in the repository or the remotes.d directory,
// holding the OpenPGP keys imported for the remote.
func (r *Remote) KeyringName() string { return r.Name + ".trustedkeys.gpg" }

// Config is the remote configuration of one repository.
type Config struct {
	r          *repo.Repo
	remotesDir string
}

// New returns r's remote configuration. remotesDir is the remotes.d
// directory to read (and, when addToDir is true, to add new remotes to);
// "" reads the repository config only, as OSTree does for a repository that
// is not the system one.
func New(r *repo.Repo, remotesDir string) *Config {
	return &Config{r: r, remotesDir: remotesDir}
}

// RemotesDir returns the remotes.d directory, or "".
func (c *Config) RemotesDir() string { return c.remotesDir }

// List returns every remote, sorted by name. A remote defined twice (in the
// config and in remotes.d, or in two files) is an error, as in OSTree.
func (c *Config) List() ([]*Remote, error) {
	kf := c.r.Config()
	var out []*Remote
	seen := map[string]string{}
	add := func(kf *repo.KeyFile, file string) error {
		for _, g := range kf.Groups() {
			name, ok := strings.CutPrefix(g, `remote "`)
			if !ok || !strings.HasSuffix(name, `"`) || len(name) < 2 {
				continue
			}
			name = strings.TrimSuffix(name, `"`)
			if prev, dup := seen[name]; dup {
				return fmt.Errorf("multiple specifications found for remote %q (%s and %s)", name, where(prev), where(file))
			}
			seen[name] = file
			out = append(out, &Remote{Name: name, File: file, kf: kf})
		}
		return nil
	}
	if err := add(kf, ""); err != nil {
		return nil, err
	}
	if c.remotesDir != "" {
		ents, err := os.ReadDir(c.remotesDir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remotes: %w", err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".conf") {
				continue
			}
			p := filepath.Join(c.remotesDir, e.Name())
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("remotes: %w", err)
			}
			f, err := repo.ParseKeyFile(string(data))
			if err != nil {
				return nil, fmt.Errorf("remotes: %s: %w", p, err)
			}
			if err := add(f, p); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func where(file string) string {
	if file == "" {
		return "the repo config"
	}
	return file
}

// Get returns the named remote; the error wraps repo.ErrNotFound when
// there is none.
func (c *Config) Get(name string) (*Remote, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	all, err := c.List()
	if err != nil {
		return nil, err
	}
	for _, r := range all {
		if r.Name == name {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: remote %q", repo.ErrNotFound, name)
}

// Option is one KEY=VALUE to set on a new remote, in order.
type Option struct{ Key, Value string }

// AddOptions describe a new remote.
type AddOptions struct {
	// Options are written in order after url (ostree order: branches,
	// contenturl, --set values, gpg-verify, verification keys, sign-verify,
	// collection-id).
	Options []Option
	// IfNotExists makes adding an existing remote a no-op.
	IfNotExists bool
	// InRemotesDir writes the remote to remotesDir/NAME.conf instead of the
	// repository config (OSTree does so for the system repository).
	InRemotesDir bool
}

// Add creates a remote. It fails with repo.ErrExists when the remote
// exists, unless IfNotExists. Reports whether it added anything.
func (c *Config) Add(name, url string, o AddOptions) (bool, error) {
	if err := ValidateName(name); err != nil {
		return false, err
	}
	if url == "" {
		return false, fmt.Errorf("%w: remote %s: empty url", repo.ErrInvalid, name)
	}
	if r, err := c.Get(name); err == nil {
		if o.IfNotExists {
			return false, nil
		}
		return false, fmt.Errorf("%w: remote configuration for %q already exists: %s", repo.ErrExists, name, inConfig(r.File))
	} else if !errors.Is(err, repo.ErrNotFound) {
		return false, err
	}
	for _, opt := range o.Options {
		if opt.Key == "" || strings.ContainsAny(opt.Key, "=[]\n") {
			return false, fmt.Errorf("%w: remote %s: invalid option name %q", repo.ErrInvalid, name, opt.Key)
		}
	}
	set := func(kf *repo.KeyFile) {
		g := Group(name)
		kf.Set(g, "url", url)
		for _, opt := range o.Options {
			kf.Set(g, opt.Key, opt.Value)
		}
	}
	if o.InRemotesDir && c.remotesDir != "" {
		if err := fsutil.MkdirAllSync(c.remotesDir, 0o755); err != nil {
			return false, fmt.Errorf("remote add %s: %w", name, err)
		}
		kf := &repo.KeyFile{}
		set(kf)
		p := filepath.Join(c.remotesDir, name+".conf")
		return true, fsutil.WriteFile(p, []byte(kf.String()), 0o644)
	}
	kf, err := repo.ParseKeyFile(c.r.Config().String())
	if err != nil {
		return false, err
	}
	// GLib separates groups with a blank line.
	if s := kf.String(); s != "" && !strings.HasSuffix(s, "\n\n") {
		kf = mustParse(s + "\n")
	}
	set(kf)
	return true, c.r.WriteConfig(kf)
}

func mustParse(s string) *repo.KeyFile {
	kf, err := repo.ParseKeyFile(s)
	if err != nil {
		panic(err)
	}
	return kf
}

func inConfig(file string) string {
	if file == "" {
		return "(in config)"
	}
	return file
}

// Delete removes a remote's configuration and its imported keyring. With
// ifExists, deleting a missing remote is not an error. Refs fetched from the
// remote are kept, as OSTree keeps them.
func (c *Config) Delete(name string, ifExists bool) error {
	r, err := c.Get(name)
	if err != nil {
		if ifExists && errors.Is(err, repo.ErrNotFound) {
			return nil
		}
		return err
	}
	if r.File != "" {
		if err := os.Remove(r.File); err != nil {
			return fmt.Errorf("remote delete %s: %w", name, err)
		}
		if err := fsutil.SyncDir(filepath.Dir(r.File)); err != nil {
			return err
		}
	} else {
		kf, err := repo.ParseKeyFile(c.r.Config().String())
		if err != nil {
			return err
		}
		kf.DeleteGroup(Group(name))
		if err := c.r.WriteConfig(kf); err != nil {
			return err
		}
	}
	kr := filepath.Join(c.r.Path(), r.KeyringName())
	if err := os.Remove(kr); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remote delete %s: %w", name, err)
	}
	return nil
}

// ReadKeyring returns the remote's imported OpenPGP keyring, looked up as
// OSTree does: in the repository, then in the remotes.d directory; nil
// when there is none.
func (c *Config) ReadKeyring(r *Remote) ([]byte, error) {
	dirs := []string{c.r.Path()}
	if c.remotesDir != "" {
		dirs = append(dirs, c.remotesDir)
	}
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join(d, r.KeyringName()))
		if err == nil {
			return data, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return nil, nil
}

// WriteKeyring durably replaces the remote's keyring in the repository.
func (c *Config) WriteKeyring(r *Remote, data []byte) error {
	return fsutil.WriteFile(filepath.Join(c.r.Path(), r.KeyringName()), data, 0o644)
}

// Repo returns the repository whose remotes c configures.
func (c *Config) Repo() *repo.Repo { return c.r }
