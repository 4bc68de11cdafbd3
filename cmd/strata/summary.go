package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/summary"
)

func init() {
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
				var md objects.Metadata
				for _, kv := range addMeta {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return fmt.Errorf("--add-metadata: expected KEY=VALUE, got %q", kv)
					}
					val, err := parseVariantLiteral(v)
					if err != nil {
						return fmt.Errorf("--add-metadata %s: %w", k, err)
					}
					md = append(md, objects.MetaEntry{Key: k, Value: val})
				}
				data, err := summary.Generate(r, summary.Options{Metadata: md})
				if err != nil {
					return err
				}
				sig, err := signSummary(data, signType, signKeys, gpgKeys, gpgHome)
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
	rootCmd.AddCommand(cmd)
}
