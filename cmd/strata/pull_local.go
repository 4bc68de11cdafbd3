package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/pull"
	"github.com/strata-os/strata/repo"
)

func init() { rootCmd.AddCommand(newPullLocalCmd()) }

func newPullLocalCmd() *cobra.Command {
	var (
		f                    pullFlags
		remoteName           string
		gpgVerify, gpgSumVer bool
	)
	cmd := &cobra.Command{
		Use:   "pull-local SRC_REPO [REF...]",
		Short: "Copy data from a local repository",
		Long: `Import REFs (default: every ref under refs/heads) and their commits' trees
from the repository at SRC_REPO, of any mode, into this one. Refs are
written as local refs, or as REMOTE:REF with --remote. Every object is
verified against its checksum (--untrusted is always in effect). With
--gpg-verify (and --gpg-verify-summary) the commits (and the summary) must
carry signatures that --remote's configuration trusts.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options()
			if err != nil {
				return err
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			srcRepo, err := repo.Open(args[0])
			if err != nil {
				return err
			}
			src := pull.NewLocalSource(srcRepo)
			o.Refs = args[1:]
			if len(o.Refs) == 0 {
				if o.Refs, err = src.ListHeads(); err != nil {
					return err
				}
				if len(o.Refs) == 0 {
					return fmt.Errorf("%s has no refs to pull", args[0])
				}
			}
			if (gpgVerify || gpgSumVer) && remoteName == "" {
				return fmt.Errorf("--gpg-verify and --gpg-verify-summary need --remote")
			}
			if gpgVerify || gpgSumVer {
				_, cfg, rm, err := lookupRemote(remoteName, false)
				if err != nil {
					return err
				}
				p, err := pull.PolicyFor(cfg, rm)
				if err != nil {
					return err
				}
				if gpgVerify {
					o.Policy.GPG, o.Policy.Sign = p.GPG, p.Sign
				}
				if gpgSumVer {
					o.Policy.SummaryGPG, o.Policy.SummarySign = p.SummaryGPG, p.SummarySign
				}
				o.Policy.CollectionID = p.CollectionID
			}
			o.Remote = remoteName
			o.Policy.DisableBindings = f.disableBindings
			return runPull(cmd, r, src, o, &f)
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&remoteName, "remote", "", "add REMOTE to refspec")
	fl.BoolVar(&gpgVerify, "gpg-verify", false, "verify commit signatures as --remote's configuration says (gpg-verify, sign-verify)")
	fl.BoolVar(&gpgSumVer, "gpg-verify-summary", false, "verify the summary's signatures as --remote's configuration says")
	return cmd
}
