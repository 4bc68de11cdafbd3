package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sign"
)

func init() { rootCmd.AddCommand(newSignCommitCmd()) }

func newSignCommitCmd() *cobra.Command {
	var (
		verify, del       bool
		signType, keyFile string
		keysDir           string
	)
	cmd := &cobra.Command{
		Use:   "sign COMMIT [KEY...]",
		Short: "Sign a commit, or verify or delete its signatures",
		Long: `Sign COMMIT with each ed25519 secret KEY (base64, as 'ostree sign' takes it)
or with the secret keys in --keys-file, one per line. With --verify, check
that COMMIT has a signature by one of the public KEYs (or the keys in
--keys-file, or the system's trusted.ed25519 files). With --delete, remove
the signatures made by the given keys (secret or public).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if signType != "ed25519" {
				return fmt.Errorf("signature type %q is not implemented (only ed25519)", signType)
			}
			r, c, err := openRev(args[0])
			if err != nil {
				return err
			}
			keys := args[1:]
			ctx := cmd.Context()
			switch {
			case verify:
				v, err := sign.LoadEd25519Verifier(keys, keyFile, keysDir)
				if err != nil {
					return err
				}
				return printVerified(cmd, r, c, v)
			case del:
				return sign.DeleteEd25519Signatures(ctx, r, c, keys)
			}
			secrets, err := sign.Ed25519Secrets(keys, keyFile)
			if err != nil {
				return err
			}
			if len(secrets) == 0 {
				return fmt.Errorf("need at least one KEY to sign with")
			}
			for _, sk := range secrets {
				if err := sign.SignCommit(ctx, r, c, sign.Ed25519Signer{Key: sk}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&verify, "verify", false, "verify signatures")
	fl.BoolVarP(&del, "delete", "d", false, "delete signatures made by any of the KEYs")
	fl.StringVarP(&signType, "sign-type", "s", "ed25519", "signature type")
	fl.StringVar(&keyFile, "keys-file", "", "read keys from FILE (secret keys to sign, public keys to verify)")
	fl.StringVar(&keysDir, "keys-dir", "", "directory with trusted.ed25519(.d) and revoked.ed25519(.d), instead of /etc/ostree and /usr/share/ostree")
	return cmd
}

// printVerified checks commit c's signatures with v and prints what
// verified it.
func printVerified(cmd *cobra.Command, r *repo.Repo, c objects.Checksum, v sign.Verifier) error {
	msg, err := sign.VerifyCommit(r, c, []sign.Verifier{v})
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), msg)
	return nil
}
