package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/pull"
	"github.com/strata-os/strata/remote"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sign"
	"github.com/strata-os/strata/summary"
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
			if gpgImport != "" && gpgImport != "-" {
				// A key file that cannot be read is refused before the
				// remote is written.
				if _, err := fsutil.ReadFileLimit(gpgImport, maxKeyringSize); err != nil {
					return fmt.Errorf("gpg import: %w", err)
				}
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

// remoteSummary fetches a remote's summary and verifies it as the remote's
// gpg-verify-summary and sign-verify-summary say.
func remoteSummary(cmd *cobra.Command, name string) (*remote.Remote, *summary.Summary, []byte, error) {
	r, err := openRepo()
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, _, err := remoteConfig(r)
	if err != nil {
		return nil, nil, nil, err
	}
	rm, err := cfg.Get(name)
	if err != nil {
		if isNotFound(err) {
			return nil, nil, nil, fmt.Errorf("remote %q not found", name)
		}
		return nil, nil, nil, err
	}
	u, err := rm.URL()
	if err != nil {
		return nil, nil, nil, err
	}
	fo, err := pull.FetchOptions(rm)
	if err != nil {
		return nil, nil, nil, err
	}
	src, err := pull.OpenSource(u, "", "", fo)
	if err != nil {
		return nil, nil, nil, err
	}
	policy, err := pull.SummaryPolicyFor(cfg, rm)
	if err != nil {
		return nil, nil, nil, err
	}
	s, data, err := pull.FetchSummary(cmd.Context(), src, policy)
	if err != nil {
		if isNotFound(err) {
			return nil, nil, nil, fmt.Errorf("remote refs not available; server has no summary file: %w", err)
		}
		return nil, nil, nil, err
	}
	return rm, s, data, nil
}

func init() {
	var remoteCmd *cobra.Command
	for _, c := range rootCmd.Commands() {
		if c.Name() == "remote" {
			remoteCmd = c
		}
	}

	var refsJSON bool
	refs := &cobra.Command{
		Use:   "refs NAME",
		Short: "List the refs of a remote repository (from its summary)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rm, s, _, err := remoteSummary(cmd, args[0])
			if err != nil {
				return err
			}
			if refsJSON {
				out := []refJSON{}
				for _, ref := range s.Refs {
					out = append(out, refJSON{Name: rm.Name + ":" + ref.Name, Checksum: ref.Checksum.String()})
				}
				for _, c := range s.Collections {
					for _, ref := range c.Refs {
						out = append(out, refJSON{Name: ref.Name, CollectionID: c.ID, Checksum: ref.Checksum.String()})
					}
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			for _, ref := range s.Refs {
				fmt.Fprintf(cmd.OutOrStdout(), "%s:%s\n", rm.Name, ref.Name)
			}
			return nil
		},
	}
	refs.Flags().BoolVar(&refsJSON, "json", false, "print the refs as JSON, with their commits")
	remoteCmd.AddCommand(refs)

	var raw bool
	sumCmd := &cobra.Command{
		Use:   "summary NAME",
		Short: "Show a remote repository's summary",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, s, data, err := remoteSummary(cmd, args[0])
			if err != nil {
				return err
			}
			if raw {
				v, err := gvariant.Unmarshal(summary.GVType, data)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), gvariant.Print(summary.GVType, objects.Byteswap(gvariant.Variant{Type: summary.GVType, Value: v}).Value))
				return nil
			}
			summary.View(cmd.OutOrStdout(), s)
			return nil
		},
	}
	sumCmd.Flags().BoolVar(&raw, "raw", false, "show raw variant data")
	remoteCmd.AddCommand(sumCmd)

	var (
		keyrings []string
		stdin    bool
	)
	gpgImport := &cobra.Command{
		Use:   "gpg-import NAME [KEY-ID...]",
		Short: "Import GPG keys into a remote's keyring",
		Long: `Import OpenPGP public keys from keyring files (-k) or standard input
(--stdin) into the keyring that verifies NAME's commits; with KEY-IDs, only
those keys (8- or 16-digit IDs or fingerprints).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			cfg, _, err := remoteConfig(r)
			if err != nil {
				return err
			}
			rm, err := cfg.Get(args[0])
			if err != nil {
				return err
			}
			var srcs [][]byte
			for _, k := range keyrings {
				data, err := fsutil.ReadFileLimit(k, maxKeyringSize)
				if err != nil {
					return fmt.Errorf("gpg-import: %w", err)
				}
				srcs = append(srcs, data)
			}
			if stdin {
				data, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return fmt.Errorf("gpg-import: standard input: %w", err)
				}
				srcs = append(srcs, data)
			}
			if len(srcs) == 0 {
				return fmt.Errorf("gpg-import: give keys with --keyring=FILE or --stdin (reading gpg's own keyring is not supported)")
			}
			ring, err := cfg.ReadKeyring(rm)
			if err != nil {
				return err
			}
			total := 0
			for _, src := range srcs {
				merged, n, err := sign.MergeKeys(ring, src, args[1:])
				if err != nil {
					return fmt.Errorf("gpg-import: %w", err)
				}
				ring, total = merged, total+n
			}
			if err := cfg.WriteKeyring(rm, ring); err != nil {
				return err
			}
			s := "s"
			if total == 1 {
				s = ""
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Imported %d GPG key%s to remote \"%s\"\n", total, s, rm.Name)
			return nil
		},
	}
	gpgImport.Flags().StringArrayVarP(&keyrings, "keyring", "k", nil, "import keys from a keyring file (repeatable)")
	gpgImport.Flags().BoolVar(&stdin, "stdin", false, "import keys from standard input")
	remoteCmd.AddCommand(gpgImport)
}
