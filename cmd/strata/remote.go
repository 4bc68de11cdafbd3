package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/remote"
	"github.com/strata-os/strata/repo"
)

// remoteConfig returns the repository's remote configuration. As in
// OSTree, the remotes.d directory (/etc/ostree/remotes.d under the sysroot)
// is read only for the system repository (SYSROOT/ostree/repo), and new
// remotes go there when core.add-remotes-config-dir says so (default: for
// the system repository).
func remoteConfig(r *repo.Repo) (*remote.Config, bool, error) {
	abs, _ := filepath.Abs(r.Path())
	sys, _ := filepath.Abs(filepath.Join(globals.sysroot, "ostree/repo"))
	isSystem := abs == sys || abs == "/sysroot/ostree/repo"
	addToDir, err := r.Config().GetBool("core", "add-remotes-config-dir", isSystem)
	if err != nil {
		return nil, false, err
	}
	dir := ""
	if isSystem {
		root := globals.sysroot
		if abs == "/sysroot/ostree/repo" && abs != sys {
			root = "/"
		}
		dir = filepath.Join(root, "etc/ostree/remotes.d")
	}
	return remote.New(r, dir), addToDir && dir != "", nil
}

func init() {
	remoteCmd := &cobra.Command{
		Use:   "remote",
		Short: "Manage remote repositories",
	}
	rootCmd.AddCommand(remoteCmd)

	var (
		sets                                []string
		noGPG, noSign, ifNotExists          bool
		signVerify                          []string
		gpgImport, contentURL, collectionID string
	)
	add := &cobra.Command{
		Use:   "add NAME URL [BRANCH...]",
		Short: "Add a remote repository",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			cfg, toDir, err := remoteConfig(r)
			if err != nil {
				return err
			}
			var opts []remote.Option
			if len(args) > 2 {
				opts = append(opts, remote.Option{Key: "branches", Value: strings.Join(args[2:], ";") + ";"})
			}
			if contentURL != "" {
				opts = append(opts, remote.Option{Key: "contenturl", Value: contentURL})
			}
			for _, kv := range sets {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--set: expected KEY=VALUE, got %q", kv)
				}
				opts = append(opts, remote.Option{Key: k, Value: v})
			}
			if noGPG || noSign {
				opts = append(opts, remote.Option{Key: "gpg-verify", Value: "false"})
			}
			if noSign {
				if len(signVerify) > 0 {
					return fmt.Errorf("cannot specify both --sign-verify and --no-sign-verify")
				}
				opts = append(opts, remote.Option{Key: "sign-verify", Value: "false"})
			}
			var types []string
			for _, spec := range signVerify {
				typ, rest, ok := strings.Cut(spec, "=")
				if !ok {
					return fmt.Errorf("--sign-verify: failed to parse KEYTYPE=[inline|file]:DATA in %q", spec)
				}
				if typ != "ed25519" {
					return fmt.Errorf("--sign-verify: signature type %q is not implemented (only ed25519)", typ)
				}
				ref, data, ok := strings.Cut(rest, ":")
				if !ok {
					return fmt.Errorf("--sign-verify: failed to parse KEYTYPE=[inline|file]:DATA in %q", spec)
				}
				switch ref {
				case "inline":
					opts = append(opts, remote.Option{Key: "verification-" + typ + "-key", Value: data})
				case "file":
					opts = append(opts, remote.Option{Key: "verification-" + typ + "-file", Value: data})
				default:
					return fmt.Errorf("--sign-verify: invalid key reference %q, expected inline|file", ref)
				}
				types = append(types, typ)
			}
			if len(types) > 0 {
				opts = append(opts, remote.Option{Key: "sign-verify", Value: strings.Join(types, ",")})
			}
			if collectionID != "" {
				opts = append(opts, remote.Option{Key: "collection-id", Value: collectionID})
			}
			if _, err := cfg.Add(args[0], args[1], remote.AddOptions{Options: opts, IfNotExists: ifNotExists, InRemotesDir: toDir}); err != nil {
				return err
			}
			if gpgImport != "" {
				n, err := importGPGKeys(cfg, args[0], gpgImport)
				if err != nil {
					return err
				}
				s := "s"
				if n == 1 {
					s = ""
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Imported %d GPG key%s to remote \"%s\"\n", n, s, args[0])
			}
			return nil
		},
	}
	fl := add.Flags()
	fl.StringArrayVar(&sets, "set", nil, "set config option KEY=VALUE for the remote (repeatable)")
	fl.BoolVar(&noGPG, "no-gpg-verify", false, "disable GPG verification")
	fl.BoolVar(&noSign, "no-sign-verify", false, "disable signature verification (GPG too)")
	fl.StringArrayVar(&signVerify, "sign-verify", nil, "verify signatures using ed25519=inline:PUBKEY or ed25519=file:PATH")
	fl.BoolVar(&ifNotExists, "if-not-exists", false, "do nothing if the remote exists")
	fl.StringVar(&gpgImport, "gpg-import", "", "import GPG keys from FILE")
	fl.StringVar(&contentURL, "contenturl", "", "use URL when fetching content")
	fl.StringVar(&collectionID, "collection-id", "", "collection ID of the remote")
	remoteCmd.AddCommand(add)

	var ifExists bool
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a remote repository",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			cfg, _, err := remoteConfig(r)
			if err != nil {
				return err
			}
			return cfg.Delete(args[0], ifExists)
		},
	}
	del.Flags().BoolVar(&ifExists, "if-exists", false, "do nothing if the remote does not exist")
	remoteCmd.AddCommand(del)

	remoteCmd.AddCommand(&cobra.Command{
		Use:   "show-url NAME",
		Short: "Show a remote repository's URL",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rm, err := getRemote(args[0])
			if err != nil {
				return err
			}
			u, err := rm.URL()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), u)
			return nil
		},
	})

	var showURLs bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List remote repository names",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			cfg, _, err := remoteConfig(r)
			if err != nil {
				return err
			}
			all, err := cfg.List()
			if err != nil {
				return err
			}
			width := 0
			for _, rm := range all {
				width = max(width, len(rm.Name))
			}
			for _, rm := range all {
				if showURLs {
					u, _ := rm.Get("url")
					fmt.Fprintf(cmd.OutOrStdout(), "%-*s  %s\n", width, rm.Name, u)
				} else {
					fmt.Fprintln(cmd.OutOrStdout(), rm.Name)
				}
			}
			return nil
		},
	}
	list.Flags().BoolVarP(&showURLs, "show-urls", "u", false, "show remote URLs in list")
	remoteCmd.AddCommand(list)
}

// getRemote opens the repository and looks up a remote.
func getRemote(name string) (*remote.Remote, error) {
	r, err := openRepo()
	if err != nil {
		return nil, err
	}
	cfg, _, err := remoteConfig(r)
	if err != nil {
		return nil, err
	}
	return cfg.Get(name)
}

// importGPGKeys is replaced once OpenPGP support lands.
var importGPGKeys = func(cfg *remote.Config, name, file string) (int, error) {
	return 0, fmt.Errorf("--gpg-import: OpenPGP keys are not supported yet")
}
