package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/repo"
)

// The tar flags belong to the commit verb, which registers itself in
// commit.go; Go runs the init functions of a package's files in file-name
// order, so it exists by now.
func init() {
	for _, c := range rootCmd.Commands() {
		if c.Name() == "commit" {
			c.Flags().Bool("tar-autocreate-parents", false, "when loading tar archives, create missing parent directories (as ostree does: 0755, owned by the entry's owner)")
			return
		}
	}
	panic("commit_tar.go: the commit command is not registered")
}

// addTarTree overlays a tar archive (--tree=tar=FILE; - is standard input).
func addTarTree(cmd *cobra.Command, t *repo.Txn, m *commit.MTree, file string, f commit.Filter) error {
	var r io.Reader = os.Stdin
	name := "standard input"
	if file != "-" {
		fh, err := os.Open(file)
		if err != nil {
			return err
		}
		defer fh.Close()
		r, name = fh, file
	}
	auto, err := cmd.Flags().GetBool("tar-autocreate-parents")
	if err != nil {
		return err
	}
	rep := newReporter(cmd)
	rep.Phase("commit "+name, "files", 0)
	defer rep.Done()
	if err := commit.AddTar(cmd.Context(), t, m, r, f, commit.TarOptions{AutocreateParents: auto, Reporter: rep}); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
