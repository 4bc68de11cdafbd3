package main

import (
	"fmt"
	"github.com/strata-os/strata/fsutil"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sign"
)

// gpgHomedirHelp says which secret keys --gpg-homedir can provide.
const gpgHomedirHelp = "GPG home directory (or exported secret key file) to find the signing key in: secring.gpg or *.asc/*.key/*.sec/*.pgp key files are read directly; GnuPG 2.1+ keys (private-keys-v1.d) through gpg --export-secret-keys when gpg is installed; passphrase-protected keys are not supported"

func init() { rootCmd.AddCommand(newGPGSignCmd()) }

func newGPGSignCmd() *cobra.Command {
	var (
		del, verify   bool
		homedir       string
		remoteName    string
		extraKeyrings []string
	)
	cmd := &cobra.Command{
		Use:   "gpg-sign COMMIT KEY-ID...",
		Short: "Sign a commit with GPG keys, or verify or delete its GPG signatures",
		Long: `Add an OpenPGP signature by each KEY-ID to COMMIT's detached metadata
(ostree.gpgsigs), as 'ostree gpg-sign' does. A commit already signed by a
key is refused for that key.

Secret keys come from --gpg-homedir (default $GNUPGHOME or ~/.gnupg):
strata reads secring.gpg (GnuPG 1.x/2.0) and exported key files named
*.asc, *.key, *.sec or *.pgp in it (or --gpg-homedir may name such a file).
GnuPG 2.1 and later keep secret keys in private-keys-v1.d, which strata
does not read: for those it runs 'gpg --homedir DIR --export-secret-keys
KEY-ID' when gpg is installed. Passphrase-protected keys are not
supported.

With --delete, remove the signatures made by any KEY-ID (the ID of the key
that made the signature: a subkey's when a subkey signed).

With --verify (a strata extension), check COMMIT's GPG signatures and
print the signing key on success. Keys are those OSTree would use: with
--remote, that remote's keyring ($repo/$remote.trustedkeys.gpg, else
remotes.d) and gpgkeypath, else the global keyrings; without, every
remote keyring in the repository and the global keyrings
(/usr/share/ostree/trusted.gpg.d, or $OSTREE_GPG_HOME). --gpg-homedir adds
the *.gpg keyrings of a directory and --keyring a keyring file.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, c, err := openRev(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			keys := args[1:]
			switch {
			case verify:
				if len(keys) > 0 {
					return fmt.Errorf("--verify takes no KEY-ID")
				}
				v, err := gpgVerifier(r, remoteName, homedir, extraKeyrings)
				if err != nil {
					return err
				}
				return printVerified(cmd, r, c, v)
			case len(keys) == 0:
				return fmt.Errorf("need at least one GPG KEY-ID to sign with")
			case del:
				n, err := sign.DeleteGPGSignatures(ctx, r, c, keys)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Signatures deleted: %d\n", n)
				return nil
			}
			for _, k := range keys {
				s, err := sign.NewGPGSigner(ctx, k, homedir)
				if err != nil {
					return err
				}
				if err := sign.GPGSignCommit(ctx, r, c, s); err != nil {
					return err
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&del, "delete", "d", false, "delete signatures having any of the GPG KEY-IDs")
	fl.StringVar(&homedir, "gpg-homedir", "", gpgHomedirHelp+" (with --verify: a directory of *.gpg keyrings)")
	fl.BoolVar(&verify, "verify", false, "verify COMMIT's GPG signatures instead of signing")
	fl.StringVar(&remoteName, "remote", "", "with --verify: trust the keys of this remote")
	fl.StringArrayVar(&extraKeyrings, "keyring", nil, "with --verify: also trust the keys in this keyring file (repeatable)")
	return cmd
}

// gpgVerifier loads the OpenPGP keys OSTree would trust to verify a
// commit of r: remoteName's (or, with "", every remote's and the global
// ones), plus the *.gpg keyrings of keyringDir and the files extra.
func gpgVerifier(r *repo.Repo, remoteName, keyringDir string, extra []string) (*sign.GPGVerifier, error) {
	k := sign.GPGKeyrings{RepoPath: r.Path(), KeyringDir: keyringDir}
	if remoteName != "" {
		_, cfg, rem, err := lookupRemote(remoteName, false)
		if err != nil {
			return nil, err
		}
		k.Remote = remoteName
		k.RemotesDir = cfg.RemotesDir()
		k.KeyPaths = rem.GetList("gpgkeypath")
	}
	v, err := sign.LoadGPGVerifier(k)
	if err != nil {
		return nil, err
	}
	for _, f := range extra {
		data, err := fsutil.ReadFileLimit(f, maxKeyringSize)
		if err != nil {
			return nil, fmt.Errorf("--keyring: %w", err)
		}
		if err := v.AddKeyring(data, f); err != nil {
			return nil, err
		}
	}
	return v, nil
}
