package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/repo"
)

func init() { rootCmd.AddCommand(newFsckCmd()) }

func newFsckCmd() *cobra.Command {
	var o repo.FsckOptions
	var quiet bool
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check the repository for consistency",
		Long: `Verify that every ref points to a stored commit and that every commit and
every object it reaches is present, well-formed and hashes to its name.
File contents are hashed in parallel. Every problem is reported (fsck
never stops at the first); the exit status is non-zero if there is any.

A commit whose tree misses objects, or loses corrupt ones to --delete, is
marked partial so that pulling it again repairs it; until then it counts
as an error. Commits left partial by an interrupted pull may miss objects.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if !quiet {
				fmt.Fprintln(out, "Validating refs...")
				fmt.Fprintln(out, "Enumerating commits...")
			}
			o.Progress = newReporter(cmd)
			rep, err := r.Fsck(cmd.Context(), o)
			if err != nil {
				return err
			}
			verified := rep.Commits - len(rep.Partial)
			if !quiet {
				fmt.Fprintf(out, "Verifying content integrity of %d commit objects...\n", verified)
			}
			for _, p := range rep.Problems {
				fmt.Fprintln(errOut, "error: "+p.String())
			}
			for _, c := range rep.MarkedPartial {
				fmt.Fprintf(errOut, "Marking commit as partial: %s\n", c)
			}
			if n := len(rep.Partial) - len(rep.FsckPartial); n > 0 {
				fmt.Fprintf(out, "%d partial commits: missing objects not reported\n", n)
			}
			switch {
			case len(rep.Problems) > 0:
				return fmt.Errorf("repository corruption encountered: %d problems in %d objects of %d commits", len(rep.Problems), rep.Objects, rep.Commits)
			case len(rep.FsckPartial) > 0:
				return fmt.Errorf("%d partial commits from fsck-detected corruption (pull them again to repair)", len(rep.FsckPartial))
			}
			fmt.Fprintf(out, "object fsck of %d commits completed successfully - no errors found.\n", verified)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&quiet, "quiet", "q", false, "only print error messages")
	fl.BoolVar(&o.Delete, "delete", false, "remove corrupted objects")
	fl.BoolVarP(&o.All, "all", "a", false, "also verify objects no commit reaches")
	fl.BoolVar(&o.VerifyBindings, "verify-bindings", false, "verify ref bindings")
	fl.BoolVar(&o.VerifyBackRefs, "verify-back-refs", false, "verify back-references (implies --verify-bindings)")
	return cmd
}
