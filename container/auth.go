package container

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
)

// MaxAuthFileSize caps a credentials file (containers-auth.json or
// Docker's config.json).
const MaxAuthFileSize = 1 << 20

// ErrUnauthorized is returned when a registry asks for credentials that
// strata does not have, or refuses those it was given.
var ErrUnauthorized = errors.New("authentication required")

// UserAuthFiles lists the files podman and skopeo (containers/image) read
// registry credentials from, in their order: $REGISTRY_AUTH_FILE alone
// when it is set; else $XDG_RUNTIME_DIR/containers/auth.json (without
// XDG_RUNTIME_DIR, /run/containers/$UID/auth.json),
// ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json, and Docker's
// ${DOCKER_CONFIG:-~/.docker}/config.json. The first file that holds
// credentials for a registry gives them.
func UserAuthFiles() []string {
	if p := os.Getenv("REGISTRY_AUTH_FILE"); p != "" {
		return []string{p}
	}
	var files []string
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		files = append(files, filepath.Join(d, "containers/auth.json"))
	} else {
		files = append(files, fmt.Sprintf("/run/containers/%d/auth.json", os.Getuid()))
	}
	home, _ := os.UserHomeDir()
	cfg := os.Getenv("XDG_CONFIG_HOME")
	if cfg == "" && home != "" {
		cfg = filepath.Join(home, ".config")
	}
	if cfg != "" {
		files = append(files, filepath.Join(cfg, "containers/auth.json"))
	}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		files = append(files, filepath.Join(d, "config.json"))
	} else if home != "" {
		files = append(files, filepath.Join(home, ".docker/config.json"))
	}
	return files
}

// SystemAuthFiles lists where ostree-ext (bootc, rpm-ostree) looks for the
// credentials of the system's image pulls, beneath root ("/" on a live
// system): for root /run/ostree/auth.json, /etc/ostree/auth.json,
// /usr/lib/ostree/auth.json; for another user
// $XDG_RUNTIME_DIR/ostree/auth.json and
// ${XDG_CONFIG_HOME:-~/.config}/ostree/auth.json. Only the first that
// exists is read, and none means anonymous access: unlike podman, the
// user's container credentials are never consulted.
func SystemAuthFiles(root string) []string {
	var files []string
	if os.Getuid() == 0 {
		files = []string{"/run/ostree/auth.json", "/etc/ostree/auth.json", "/usr/lib/ostree/auth.json"}
	} else {
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			files = append(files, filepath.Join(d, "ostree/auth.json"))
		}
		cfg := os.Getenv("XDG_CONFIG_HOME")
		if home, _ := os.UserHomeDir(); cfg == "" && home != "" {
			cfg = filepath.Join(home, ".config")
		}
		if cfg != "" {
			files = append(files, filepath.Join(cfg, "ostree/auth.json"))
		}
	}
	for i := range files {
		files[i] = filepath.Join(root, files[i])
	}
	return files
}

// Keychain reads registry credentials from containers-auth.json(5) files
// (Docker's config.json has the same "auths" map). It is an
// authn.Keychain: go-containerregistry asks it for each registry.
//
// For an image HOST/A/B/NAME the keys HOST/A/B/NAME, HOST/A/B, HOST/A and
// HOST are tried in each file, in order (Docker's "https://HOST/v1/" keys
// count as HOST, docker.io as index.docker.io); the first match wins.
//
// A file's "credHelpers" map names a credential helper per registry
// (host[:port]), as containers/image reads it: when the file names one
// for the image's registry, docker-credential-NAME is run (found on PATH,
// see runCredentialHelper) and its answer replaces the file's "auths" for
// that registry; when the helper holds nothing for the registry, the next
// file is searched (the same file's "auths" are not). Docker's global
// "credsStore" is not read (containers/image does not read it either).
type Keychain struct {
	files    []string
	required bool     // a missing file is an error (--authfile)
	searched []string // where credentials were looked for, for messages

	mu     sync.Mutex
	loaded map[string]*authFile
	empty  map[string][]string // registry -> helpers that held nothing for it
}

// authFile is one parsed credentials file.
type authFile struct {
	auths   map[string]authEntry // normalized key -> entry
	helpers map[string]string    // normalized registry -> helper NAME
}

type authEntry struct {
	Auth          string `json:"auth"`
	IdentityToken string `json:"identitytoken"`
}

// NewKeychain reads credentials from files in order, skipping those that
// do not exist.
func NewKeychain(files ...string) *Keychain {
	return &Keychain{files: files, searched: files}
}

// AuthFileKeychain reads credentials from path only (--authfile); a
// missing file is an error.
func AuthFileKeychain(path string) *Keychain {
	return &Keychain{files: []string{path}, required: true, searched: []string{path}}
}

// SystemKeychain is ostree-ext's choice for the system's pulls: the first
// of SystemAuthFiles(root) that exists, else anonymous access.
func SystemKeychain(root string) *Keychain {
	all := SystemAuthFiles(root)
	for _, f := range all {
		if _, err := os.Stat(f); err == nil {
			return &Keychain{files: []string{f}, required: true, searched: []string{f}}
		}
	}
	return &Keychain{searched: all} // anonymous
}

// Files returns the files k reads, in order.
func (k *Keychain) Files() []string { return k.files }

// noCredentials says where credentials for host were looked for in vain.
func noCredentials(kc authn.Keychain, host string) string {
	k, ok := kc.(*Keychain)
	if !ok || len(k.searched) == 0 {
		return "no credentials were given"
	}
	msg := "there are no credentials for it in " + strings.Join(k.searched, ", ")
	k.mu.Lock()
	defer k.mu.Unlock()
	if h := k.empty[host]; len(h) > 0 {
		msg += " (" + strings.Join(h, ", ") + " held none)"
	}
	return msg
}

// fileAuth is credentials and where they came from: a file, or a
// credential helper named by a file.
type fileAuth struct {
	authn.Authenticator
	file string
}

// Resolve is ResolveContext without a deadline of the caller's (each
// credential helper still has CredentialHelperTimeout).
func (k *Keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext returns the credentials for r (a name.Repository or a
// name.Registry), or authn.Anonymous when no file (and no helper a file
// names) holds any. ctx bounds the credential helpers run.
func (k *Keychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	keys := authKeys(r)
	host := r.RegistryStr()
	for _, f := range k.files {
		af, err := k.load(f)
		if err != nil {
			return nil, err
		}
		if h, ok := af.helpers[host]; ok {
			cfg, found, err := runCredentialHelper(ctx, h, host, f)
			if err != nil {
				return nil, err
			}
			if found {
				return fileAuth{authn.FromConfig(cfg), fmt.Sprintf("docker-credential-%s (credHelpers in %s)", h, f)}, nil
			}
			k.noteEmpty(host, "docker-credential-"+h)
			continue // credHelpers shadows the file's auths for host
		}
		for _, key := range keys {
			e, ok := af.auths[key]
			if !ok || (e.Auth == "" && e.IdentityToken == "") {
				continue
			}
			cfg := authn.AuthConfig{IdentityToken: e.IdentityToken}
			if e.Auth != "" {
				raw, err := base64.StdEncoding.DecodeString(e.Auth)
				user, pass, found := strings.Cut(string(raw), ":")
				if err != nil || !found {
					return nil, fmt.Errorf("%w: credentials file %s: the \"auth\" of %q is not base64 of USER:PASSWORD", errdefs.ErrInvalid, f, key)
				}
				cfg.Username, cfg.Password = user, pass
			}
			return fileAuth{authn.FromConfig(cfg), f}, nil
		}
	}
	return authn.Anonymous, nil
}

// noteEmpty records that helper held no credentials for host.
func (k *Keychain) noteEmpty(host, helper string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.empty == nil {
		k.empty = map[string][]string{}
	}
	for _, h := range k.empty[host] {
		if h == helper {
			return
		}
	}
	k.empty[host] = append(k.empty[host], helper)
}

// load reads and parses one file once.
func (k *Keychain) load(f string) (*authFile, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if a, ok := k.loaded[f]; ok {
		return a, nil
	}
	data, err := fsutil.ReadFileLimit(f, MaxAuthFileSize)
	if errors.Is(err, os.ErrNotExist) && !k.required {
		data, err = []byte("{}"), nil
	}
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	af, err := parseAuthFile(f, data)
	if err != nil {
		return nil, err
	}
	if k.loaded == nil {
		k.loaded = map[string]*authFile{}
	}
	k.loaded[f] = af
	return af, nil
}

// parseAuthFile parses containers-auth.json data read from f.
func parseAuthFile(f string, data []byte) (*authFile, error) {
	var doc struct {
		Auths       map[string]authEntry `json:"auths"`
		CredHelpers map[string]string    `json:"credHelpers"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: credentials file %s is not a containers-auth.json file: %w", errdefs.ErrInvalid, f, err)
	}
	af := &authFile{auths: map[string]authEntry{}, helpers: map[string]string{}}
	for key, e := range doc.Auths {
		af.auths[normalizeAuthKey(key)] = e
	}
	for key, h := range doc.CredHelpers {
		if !validHelperName(h) {
			return nil, fmt.Errorf("%w: credentials file %s: the credential helper %q of %q is not a name (letters, digits, '-', '_', '.')", errdefs.ErrInvalid, f, h, key)
		}
		host := normalizeAuthKey(key)
		if strings.Contains(host, "/") {
			// containers/image looks helpers up by registry only.
			return nil, fmt.Errorf("%w: credentials file %s: the credHelpers key %q is not a registry (host[:port])", errdefs.ErrInvalid, f, key)
		}
		af.helpers[host] = h
	}
	return af, nil
}

// normalizeAuthKey turns Docker's "https://HOST/v1/" keys into HOST, as
// containers/image does, and docker.io's names into one.
func normalizeAuthKey(key string) string {
	if rest, ok := strings.CutPrefix(key, "https://"); ok {
		key, _, _ = strings.Cut(rest, "/")
	} else if rest, ok := strings.CutPrefix(key, "http://"); ok {
		key, _, _ = strings.Cut(rest, "/")
	}
	host, path, _ := strings.Cut(key, "/")
	switch host {
	case "docker.io", "registry-1.docker.io":
		host = name.DefaultRegistry
	}
	if path == "" {
		return host
	}
	return host + "/" + path
}

// authKeys lists the keys to try for r, most specific first.
func authKeys(r authn.Resource) []string {
	host := r.RegistryStr()
	var keys []string
	if repo, ok := r.(name.Repository); ok {
		p := repo.RepositoryStr()
		for p != "" {
			keys = append(keys, host+"/"+p)
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				break
			}
			p = p[:i]
		}
	}
	return append(keys, host)
}
