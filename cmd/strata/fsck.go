package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/repo"
)

func init() {
	var o repo.FsckOptions
	var quiet bool
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check the repository for consistency",
		Long: `Verify that every ref points to a stored commit and that every commit and
every object it reaches is present, well-formed and hashes to its name.
File contents are hashed in parallel. Commits marked partial (an
interrupted pull) may miss objects without that being an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !quiet {
				fmt.Fprintln(out, "Validating refs...")
				fmt.Fprintln(out, "Enumerating commits...")
			}
			o.Progress = newReporter(cmd)
			rep, err := r.Fsck(cmd.Context(), o)
			if err != nil {
				return err
			}
			if !quiet {
				fmt.Fprintf(out, "Verifying content integrity of %d commit objects...\n", rep.Commits)
			}
			if n := len(rep.Partial); n > 0 {
				fmt.Fprintf(out, "%d partial commit(s): missing objects not reported\n", n)
			}
			for _, p := range rep.Problems {
				line := "error: " + p.String()
				if p.Deleted {
					line += " (deleted)"
				}
				fmt.Fprintln(cmd.ErrOrStderr(), line)
			}
			if n := len(rep.Problems); n > 0 {
				return fmt.Errorf("fsck found %d problem(s) in %d objects of %d commits", n, rep.Objects, rep.Commits)
			}
			if !quiet {
				fmt.Fprintf(out, "object fsck of %d commits completed successfully - no errors found.\n", rep.Commits)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&quiet, "quiet", "q", false, "only print errors")
	fl.BoolVar(&o.Delete, "delete", false, "remove corrupted objects")
	fl.BoolVar(&o.All, "all", false, "also verify objects no commit reaches")
	fl.BoolVar(&o.VerifyBindings, "verify-bindings", false, "verify that each ref's commit is bound to it")
	rootCmd.AddCommand(cmd)
}
