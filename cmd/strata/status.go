package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/health"
)

func init() { rootCmd.AddCommand(newStatusCmd()) }

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the booted, staged and rollback deployments",
		Long: `Show the deployments of the system (--sysroot): the booted one, the staged
one that becomes the default at shutdown, and the one "strata rollback"
returns to, with version, commit time, checksum and pin. --json prints the
document described in docs/json.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			doc := statusDoc(s)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), doc)
			}
			printStatus(cmd.OutOrStdout(), doc)
			// The health check's last failure (strata health check).
			// It is shown while the deployment that failed is still there:
			// the boot after a failure is the previous deployment's, whose
			// own healthy run keeps the failure (State.LastFailure).
			if st, err := health.ReadState(os.Getenv("STRATA_HEALTH_STATE")); err == nil {
				if f := st.Failure(); f != nil && hasDeployment(doc, f.Deployment) {
					fmt.Fprintf(cmd.OutOrStdout(), "\nHealth:   deployment %s failed the required check %s at %s; its boot entry was marked bad\n", f.Deployment, f.FailedCheck, f.Time)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON (docs/json.md)")
	return cmd
}

// printStatus prints the porcelain status: one block per role.
func printStatus(w io.Writer, doc statusJSON) {
	if len(doc.Deployments) == 0 {
		fmt.Fprintln(w, "No deployments.")
		return
	}
	type role struct {
		name string
		d    *deploymentJSON
	}
	roles := []role{{"Staged", doc.Staged}, {"Booted", doc.Booted}}
	if doc.Booted == nil {
		// Not booted into this sysroot: show what would boot.
		for i := range doc.Deployments {
			if !doc.Deployments[i].Staged {
				roles = append(roles, role{"Default", &doc.Deployments[i]})
				break
			}
		}
	}
	roles = append(roles, role{"Pending", doc.Pending}, role{"Rollback", doc.Rollback})
	shown := map[int]bool{}
	first := true
	for _, r := range roles {
		if r.d == nil || shown[r.d.Index] {
			continue
		}
		shown[r.d.Index] = true
		if !first {
			fmt.Fprintln(w)
		}
		first = false
		printDeploymentBlock(w, r.name, r.d)
	}
	if n := len(doc.Deployments) - len(shown); n > 0 {
		fmt.Fprintf(w, "\n%d other deployment(s); see strata admin status\n", n)
	}
}

func printDeploymentBlock(w io.Writer, role string, d *deploymentJSON) {
	title := d.Stateroot
	if d.Version != "" {
		title += " " + d.Version
	}
	fmt.Fprintf(w, "%-9s %s\n", role+":", title)
	fmt.Fprintf(w, "          Commit:    %s\n", d.Checksum)
	if d.Date != "" {
		fmt.Fprintf(w, "          Timestamp: %s\n", time.Unix(int64(d.Timestamp), 0).UTC().Format(time.RFC3339))
	}
	if d.OriginRefspec != "" {
		fmt.Fprintf(w, "          Origin:    %s\n", d.OriginRefspec)
	}
	if d.Image != "" {
		fmt.Fprintf(w, "          Image:     %s\n", d.Image)
	}
	if d.ImageDigest != "" {
		fmt.Fprintf(w, "          Digest:    %s\n", d.ImageDigest)
	}
	if d.Pinned {
		fmt.Fprintln(w, "          Pinned:    yes")
	}
	if d.BootTriesLeft != nil {
		fmt.Fprintf(w, "          Boot:      not yet confirmed (%d tries left)\n", *d.BootTriesLeft)
	}
}

// hasDeployment reports whether doc lists the deployment $csum.$serial.
func hasDeployment(doc statusJSON, name string) bool {
	for _, d := range doc.Deployments {
		if fmt.Sprintf("%s.%d", d.Checksum, d.Serial) == name {
			return true
		}
	}
	return false
}
