package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/pull"
	"github.com/strata-os/strata/remote"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sign"
	"github.com/strata-os/strata/summary"
)

// remoteConfig returns the repository's remote configuration (remotes.d
// read for the system repository of --sysroot, see remote.ForRepo).
func remoteConfig(r *repo.Repo) (*remote.Config, bool, error) {
	return remote.ForRepo(r, globals.sysroot)
}

// openRemotes opens the repository named by the global flags and its
// remote configuration.
func openRemotes() (*repo.Repo, *remote.Config, error) {
	r, err := openRepo()
	if err != nil {
		return nil, nil, err
	}
	cfg, _, err := remoteConfig(r)
	if err != nil {
		return nil, nil, err
	}
	return r, cfg, nil
}

// lookupRemote opens the repository, its remote configuration and the
// remote name; with quoted, a missing remote is reported as ostree words
// it (`remote "NAME" not found`).
func lookupRemote(name string, quoted bool) (*repo.Repo, *remote.Config, *remote.Remote, error) {
	r, cfg, err := openRemotes()
	if err != nil {
		return nil, nil, nil, err
	}
	rm, err := cfg.Get(name)
	if err != nil {
		if quoted && isNotFound(err) {
			return nil, nil, nil, fmt.Errorf("remote %q not found", name)
		}
		return nil, nil, nil, err
	}
	return r, cfg, rm, nil
}

func init() { rootCmd.AddCommand(newRemoteCmd()) }

func newRemoteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remote",
		Short: "Manage remote repositories",
	}
	cmd.AddCommand(newRemoteAddCmd(), newRemoteDeleteCmd(), newRemoteShowURLCmd(), newRemoteListCmd(),
		newRemoteRefsCmd(), newRemoteSummaryCmd(), newRemoteGPGImportCmd())
	return cmd
}

func newRemoteAddCmd() *cobra.Command {
	var (
		sets                                []string
		noGPG, noSign, ifNotExists          bool
		signVerify                          []string
		gpgImport, contentURL, collectionID string
	)
	cmd := &cobra.Command{
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
			sv, err := remote.SignVerifyOptions(signVerify)
			if err != nil {
				return err
			}
			opts = append(opts, sv...)
			if collectionID != "" {
				opts = append(opts, remote.Option{Key: "collection-id", Value: collectionID})
			}
			// A key file that cannot be read is refused before the
			// remote is written.
			var keys []byte
			switch gpgImport {
			case "":
			case "-":
				keys, err = readStdinKeys(cmd.InOrStdin())
			default:
				keys, err = fsutil.ReadFileLimit(gpgImport, maxKeyringSize)
			}
			if err != nil {
				return fmt.Errorf("gpg import: %w", err)
			}
			// So is one that holds no keys.
			if gpgImport != "" {
				if _, _, err := sign.MergeKeys(nil, keys, nil); err != nil {
					return fmt.Errorf("gpg import from %s: %w", gpgImport, err)
				}
			}
			if _, err := cfg.Add(args[0], args[1], remote.AddOptions{Options: opts, IfNotExists: ifNotExists, InRemotesDir: toDir}); err != nil {
				return err
			}
			if gpgImport == "" {
				return nil
			}
			rm, err := cfg.Get(args[0])
			if err != nil {
				return err
			}
			data := keys
			n, err := importRemoteKeys(cfg, rm, [][]byte{data}, nil)
			if err != nil {
				return fmt.Errorf("gpg import from %s: %w", gpgImport, err)
			}
			printImported(cmd.OutOrStdout(), n, args[0])
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&sets, "set", nil, "set config option KEY=VALUE for the remote (repeatable)")
	fl.BoolVar(&noGPG, "no-gpg-verify", false, "disable GPG verification")
	fl.BoolVar(&noSign, "no-sign-verify", false, "disable signature verification (GPG too)")
	fl.StringArrayVar(&signVerify, "sign-verify", nil, "verify signatures using ed25519=inline:PUBKEY or ed25519=file:PATH")
	fl.BoolVar(&ifNotExists, "if-not-exists", false, "do nothing if the remote exists")
	fl.StringVar(&gpgImport, "gpg-import", "", "import GPG keys from FILE")
	fl.StringVar(&contentURL, "contenturl", "", "use URL when fetching content")
	fl.StringVar(&collectionID, "collection-id", "", "collection ID of the remote")
	return cmd
}

// importRemoteKeys merges the OpenPGP keys of srcs (only those keyIDs
// name, when any) into rm's keyring and returns how many were imported.
func importRemoteKeys(cfg *remote.Config, rm *remote.Remote, srcs [][]byte, keyIDs []string) (int, error) {
	ring, err := cfg.ReadKeyring(rm)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, src := range srcs {
		merged, n, err := sign.MergeKeys(ring, src, keyIDs)
		if err != nil {
			return 0, err
		}
		ring, total = merged, total+n
	}
	return total, cfg.WriteKeyring(rm, ring)
}

// readStdinKeys reads keys from standard input, at most maxKeyringSize
// bytes, as a key file is read.
func readStdinKeys(in io.Reader) ([]byte, error) {
	keys, err := io.ReadAll(io.LimitReader(in, maxKeyringSize+1))
	if err != nil {
		return nil, fmt.Errorf("standard input: %w", err)
	}
	if len(keys) > maxKeyringSize {
		return nil, fmt.Errorf("standard input: %w (%d bytes)", fsutil.ErrTooLarge, maxKeyringSize)
	}
	return keys, nil
}

// printImported prints ostree's line after a GPG key import.
func printImported(w io.Writer, n int, name string) {
	s := "s"
	if n == 1 {
		s = ""
	}
	fmt.Fprintf(w, "Imported %d GPG key%s to remote \"%s\"\n", n, s, name)
}

func newRemoteDeleteCmd() *cobra.Command {
	var ifExists bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a remote repository",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, cfg, err := openRemotes()
			if err != nil {
				return err
			}
			return cfg.Delete(args[0], ifExists)
		},
	}
	cmd.Flags().BoolVar(&ifExists, "if-exists", false, "do nothing if the remote does not exist")
	return cmd
}

func newRemoteShowURLCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show-url NAME",
		Short: "Show a remote repository's URL",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, rm, err := lookupRemote(args[0], false)
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
	}
}

func newRemoteListCmd() *cobra.Command {
	var showURLs bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List remote repository names",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, cfg, err := openRemotes()
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
	cmd.Flags().BoolVarP(&showURLs, "show-urls", "u", false, "show remote URLs in list")
	return cmd
}

// remoteSummary fetches a remote's summary and verifies it as the remote's
// gpg-verify-summary and sign-verify-summary say.
func remoteSummary(cmd *cobra.Command, name string) (*remote.Remote, *summary.Summary, []byte, error) {
	_, cfg, rm, err := lookupRemote(name, true)
	if err != nil {
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

func newRemoteRefsCmd() *cobra.Command {
	var refsJSON bool
	cmd := &cobra.Command{
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
	cmd.Flags().BoolVar(&refsJSON, "json", false, "print the refs as JSON, with their commits")
	return cmd
}

func newRemoteSummaryCmd() *cobra.Command {
	var raw bool
	cmd := &cobra.Command{
		Use:   "summary NAME",
		Short: "Show a remote repository's summary",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, s, data, err := remoteSummary(cmd, args[0])
			if err != nil {
				return err
			}
			return printSummary(cmd.OutOrStdout(), s, data, raw)
		},
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "show raw variant data")
	return cmd
}

func newRemoteGPGImportCmd() *cobra.Command {
	var (
		keyrings []string
		stdin    bool
	)
	cmd := &cobra.Command{
		Use:   "gpg-import NAME [KEY-ID...]",
		Short: "Import GPG keys into a remote's keyring",
		Long: `Import OpenPGP public keys from keyring files (-k) or standard input
(--stdin) into the keyring that verifies NAME's commits; with KEY-IDs, only
those keys (8- or 16-digit IDs or fingerprints).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, cfg, rm, err := lookupRemote(args[0], false)
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
				data, err := readStdinKeys(cmd.InOrStdin())
				if err != nil {
					return fmt.Errorf("gpg-import: %w", err)
				}
				srcs = append(srcs, data)
			}
			if len(srcs) == 0 {
				return fmt.Errorf("gpg-import: give keys with --keyring=FILE or --stdin (reading gpg's own keyring is not supported)")
			}
			n, err := importRemoteKeys(cfg, rm, srcs, args[1:])
			if err != nil {
				return fmt.Errorf("gpg-import: %w", err)
			}
			printImported(cmd.OutOrStdout(), n, rm.Name)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&keyrings, "keyring", "k", nil, "import keys from a keyring file (repeatable)")
	cmd.Flags().BoolVar(&stdin, "stdin", false, "import keys from standard input")
	return cmd
}
