package remote

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/strata-os/strata/repo"
)

// ForRepo returns r's remote configuration as OSTree finds it: the
// remotes.d directory (/etc/ostree/remotes.d under the sysroot) is read
// only for the system repository (SYSROOT/ostree/repo, or
// /sysroot/ostree/repo), and addToDir tells whether new remotes go there
// (core.add-remotes-config-dir; default: for the system repository).
func ForRepo(r *repo.Repo, sysroot string) (cfg *Config, addToDir bool, err error) {
	if sysroot == "" {
		sysroot = "/"
	}
	abs, _ := filepath.Abs(r.Path())
	sys, _ := filepath.Abs(filepath.Join(sysroot, "ostree/repo"))
	isSystem := abs == sys || abs == "/sysroot/ostree/repo"
	addToDir, err = r.Config().GetBool("core", "add-remotes-config-dir", isSystem)
	if err != nil {
		return nil, false, err
	}
	dir := ""
	if isSystem {
		root := sysroot
		if abs == "/sysroot/ostree/repo" && abs != sys {
			root = "/"
		}
		dir = filepath.Join(root, "etc/ostree/remotes.d")
	}
	return New(r, dir), addToDir && dir != "", nil
}

// SignVerifyOptions translates `remote add --sign-verify` arguments,
// KEYTYPE=inline:KEY or KEYTYPE=file:PATH, into the remote's options:
// verification-KEYTYPE-key or verification-KEYTYPE-file for each, then
// sign-verify listing the types. Only ed25519 is implemented.
func SignVerifyOptions(specs []string) ([]Option, error) {
	var opts []Option
	var types []string
	for _, spec := range specs {
		typ, rest, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("--sign-verify: failed to parse KEYTYPE=[inline|file]:DATA in %q", spec)
		}
		if typ != "ed25519" {
			return nil, fmt.Errorf("--sign-verify: signature type %q is not implemented (only ed25519)", typ)
		}
		ref, data, ok := strings.Cut(rest, ":")
		if !ok {
			return nil, fmt.Errorf("--sign-verify: failed to parse KEYTYPE=[inline|file]:DATA in %q", spec)
		}
		switch ref {
		case "inline":
			opts = append(opts, Option{Key: "verification-" + typ + "-key", Value: data})
		case "file":
			opts = append(opts, Option{Key: "verification-" + typ + "-file", Value: data})
		default:
			return nil, fmt.Errorf("--sign-verify: invalid key reference %q, expected inline|file", ref)
		}
		types = append(types, typ)
	}
	if len(types) > 0 {
		opts = append(opts, Option{Key: "sign-verify", Value: strings.Join(types, ",")})
	}
	return opts, nil
}
