package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/sign"
	"github.com/strata-os/strata/summary"
)

func init() { rootCmd.AddCommand(newSummaryCmd()) }

func newSummaryCmd() *cobra.Command {
	var (
		update, view, raw bool
		addMeta           []string
		signKeys          []string
		signType          string
		gpgKeys           []string
		gpgHome           string
	)
	cmd := &cobra.Command{
		Use:   "summary",
		Short: "Manage the summary metadata",
		Long: `Regenerate (-u) or show (--view, --raw) the repository's summary file,
the index of refs that clients fetch first. -u writes the same bytes as
'ostree summary -u' (static deltas and the ostree-metadata commit of
collection repos are not written). With --sign (ed25519) or --gpg-sign
a summary.sig is written beside it; otherwise any old summary.sig is removed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			switch {
			case update:
				md, err := parseMetadata("--add-metadata", addMeta, true)
				if err != nil {
					return err
				}
				data, err := summary.Generate(r, summary.Options{Metadata: md})
				if err != nil {
					return err
				}
				ss, err := sign.Signers(cmd.Context(), sign.SignerSpec{Type: signType, Ed25519: signKeys, GPGKeyIDs: gpgKeys, GPGHomedir: gpgHome})
				if err != nil {
					return err
				}
				sig, err := sign.SignData(cmd.Context(), data, ss)
				if err != nil {
					return err
				}
				return summary.Publish(r, data, sig)
			case view, raw:
				data, err := os.ReadFile(filepath.Join(r.Path(), summary.FileName))
				if err != nil {
					return fmt.Errorf("read summary: %w", err)
				}
				s, err := summary.Parse(data)
				if err != nil {
					return err
				}
				return printSummary(cmd.OutOrStdout(), s, data, raw)
			}
			return fmt.Errorf("no option specified; use -u to update summary")
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&update, "update", "u", false, "update the summary")
	fl.BoolVar(&view, "view", false, "view the local summary file")
	fl.BoolVar(&raw, "raw", false, "view the raw bytes of the summary file")
	fl.StringArrayVarP(&addMeta, "add-metadata", "m", nil, "additional metadata field KEY=VALUE (VALUE in GVariant text format)")
	fl.StringArrayVar(&signKeys, "sign", nil, "sign the summary with this ed25519 secret key (base64; repeatable)")
	fl.StringVar(&signType, "sign-type", "ed25519", "signature type to use")
	fl.StringArrayVar(&gpgKeys, "gpg-sign", nil, "GPG key ID to sign the summary with (repeatable)")
	fl.StringVar(&gpgHome, "gpg-homedir", "", gpgHomedirHelp)
	return cmd
}
