package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

func init() { rootCmd.AddCommand(newLogCmd()) }

func newLogCmd() *cobra.Command {
	var raw, asJSON bool
	cmd := &cobra.Command{
		Use:   "log REV",
		Short: "Show the history of a ref or commit, newest first",
		Long: "Show a commit and its parents, newest first, as `ostree log` does. A parent\n" +
			"that is not stored (a shallow pull) ends the history with a note.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, c, err := openRev(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			all := []commitJSON{}
			for first := true; ; first = false {
				cm, err := r.ReadCommit(c)
				if !first && errors.Is(err, repo.ErrNotFound) {
					if !asJSON {
						fmt.Fprintln(out, "<< History beyond this commit not fetched >>")
					}
					break
				}
				if err != nil {
					return err
				}
				switch {
				case asJSON:
					all = append(all, toCommitJSON(c, cm))
				case raw:
					if err := printRaw(out, r, objects.KindCommit, c, true); err != nil {
						return err
					}
				default:
					printCommit(out, c, cm)
				}
				if cm.Parent.IsZero() {
					break
				}
				c = cm.Parent
			}
			if asJSON {
				return writeJSON(out, all)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "show raw variant data")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the commits as a JSON array (see docs/json.md)")
	return cmd
}
