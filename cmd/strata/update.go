package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/fleetlock"
	"github.com/strata-os/strata/sysroot"
	"github.com/strata-os/strata/updates"
)

func init() { rootCmd.AddCommand(newUpdateCmd()) }

type updateFlags struct {
	configDirs []string
	state      string
	machineID  string
}

func newUpdateCmd() *cobra.Command {
	f := &updateFlags{}
	cmd := &cobra.Command{
		Use:   "update",
		Short: "The update agent: strategies, phased rollout, FleetLock",
		Long: `The update agent that strata-update.timer runs. Strategy files are
Zincati's TOML fragments, read from /usr/lib/strata/updates.d,
/etc/strata/updates.d and /run/strata/updates.d (docs/updates.md).
Not supported: Cincinnati servers ([cincinnati] base_url), automatic
downgrades ([updates] allow_downgrade).`,
	}
	cmd.PersistentFlags().StringArrayVar(&f.configDirs, "config-dir", nil, "strategy fragment directories, lowest priority first (default: "+fmt.Sprint(updates.DefaultConfigDirs)+")")
	cmd.PersistentFlags().StringVar(&f.state, "state", updates.DefaultStatePath, "the agent's state file")
	cmd.PersistentFlags().StringVar(&f.machineID, "machine-id", "/etc/machine-id", "the machine-id file the node id and wariness derive from")
	cmd.AddCommand(newUpdateStatusCmd(f), newUpdateRunCmd(f))
	return cmd
}

func (f *updateFlags) config() (*updates.Config, error) {
	dirs := f.configDirs
	if len(dirs) == 0 {
		dirs = updates.DefaultConfigDirs
	}
	return updates.LoadConfig(dirs)
}

func (f *updateFlags) nodeID(c *updates.Config) (string, error) {
	if c.NodeUUID != "" {
		return c.NodeUUID, nil
	}
	b, err := os.ReadFile(f.machineID)
	if err != nil {
		return "", err
	}
	return updates.NodeUUID(string(b))
}

func newUpdateStatusCmd(f *updateFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Say what the update agent waits for, and why",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.config()
			if err != nil {
				return err
			}
			st, err := updates.LoadState(f.state)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{
					"strategy": c.Strategy, "enabled": c.Enabled, "config_files": c.Files,
					"fleet_lock": map[string]string{"base_url": c.BaseURL, "group": c.Group},
					"last_run":   st.Status, "failed": st.Failed, "lock_held_for": st.LockFor,
				})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Strategy: %s", c.Strategy)
			switch c.Strategy {
			case updates.StrategyFleetLock:
				fmt.Fprintf(w, " (%s, group %s)", c.BaseURL, c.Group)
			case updates.StrategyPeriodic:
				for i, win := range c.Windows {
					sep := ", "
					if i == 0 {
						sep = " ("
					}
					fmt.Fprintf(w, "%s%s", sep, win)
				}
				fmt.Fprintf(w, " %s)", c.Location)
			}
			fmt.Fprintln(w)
			if !c.Enabled {
				fmt.Fprintln(w, "Disabled by [updates] enabled = false")
			}
			s := st.Status
			if s.Time.IsZero() {
				fmt.Fprintln(w, "Last run: never")
				return nil
			}
			fmt.Fprintf(w, "Last run: %s\n", s.Time.Format(time.RFC3339))
			fmt.Fprintf(w, "Node: %s (group %s, rollout wariness %.3f)\n", s.NodeID, s.Group, s.Wariness)
			fmt.Fprintf(w, "State: %s: %s\n", s.Phase, s.Reason)
			if !s.Until.IsZero() {
				fmt.Fprintf(w, "Next step: %s\n", s.Until.Format(time.RFC3339))
			}
			if st.LockFor != "" {
				fmt.Fprintf(w, "Fleet lock: held to reboot into %s\n", st.LockFor)
			}
			if st.LockKept != "" {
				fmt.Fprintf(w, "Fleet lock: kept after the failed update to %s; release it with `strata fleetlock release %s`\n", st.LockKept, s.NodeID)
			}
			failed := make([]string, 0, len(st.Failed))
			for c := range st.Failed {
				failed = append(failed, c)
			}
			sort.Strings(failed)
			for _, c := range failed {
				fmt.Fprintf(w, "Not taken again: %s (%s)\n", c, st.Failed[c])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the configuration and the last decision as JSON")
	return cmd
}

func newUpdateRunCmd(f *updateFlags) *cobra.Command {
	var maxWait time.Duration
	cmd := &cobra.Command{
		Use:   "run [--max-wait=DURATION]",
		Short: "Check, stage and reboot into an update under the configured strategy",
		Long: `What strata-update.service runs after a healthy boot: release the fleet
lock if this boot is the update it was taken for (keep it if the machine
came back on another version), check the booted deployment's origin for
an update, skip withdrawn commits and commits that failed here before,
wait for this machine's turn in a phased rollout, stage the update, then
reboot at once (immediate), in the next maintenance window (periodic) or
once a FleetLock slot is held (fleet_lock; an unreachable server is
retried with backoff, never bypassed). It sleeps between steps up to
--max-wait, then exits; the timer runs it again. An image origin is
pulled with bootc's credentials (the first of /run/ostree/auth.json,
/etc/ostree/auth.json, /usr/lib/ostree/auth.json; none: anonymous) and
/etc/containers/registries.conf (blocked, insecure).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.config()
			if err != nil {
				return err
			}
			id, err := f.nodeID(c)
			if err != nil {
				return err
			}
			access, err := (&accessFlags{system: true}).get()
			if err != nil {
				return err
			}
			a := &updates.Agent{
				Config: c, StatePath: f.state, NodeID: id,
				System: &updates.SysrootSystem{Open: func() (*sysroot.Sysroot, error) { return openSysroot(cmd) }, Puller: upgradePuller(cmd), Access: access},
			}
			if c.Strategy == updates.StrategyFleetLock {
				a.Locker = &fleetlock.Client{BaseURL: c.BaseURL, ID: id, Group: c.Group}
			}
			if err := os.MkdirAll(filepath.Dir(f.state), 0o755); err != nil {
				return err
			}
			s, err := a.Run(cmd.Context(), maxWait)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", s.Phase, s.Reason)
			return nil
		},
	}
	cmd.Flags().DurationVar(&maxWait, "max-wait", 7*24*time.Hour, "sleep at most this long for a window, a rollout turn or a retry before exiting")
	return cmd
}
