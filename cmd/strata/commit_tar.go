package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/repo"
)

// addTarTree overlays a tar archive (--tree=tar=FILE).
func addTarTree(cmd *cobra.Command, t *repo.Txn, m *commit.MTree, file string, f commit.Filter) error {
	return fmt.Errorf("--tree=tar=%s: tar import is not available in this build", file)
}
