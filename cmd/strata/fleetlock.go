package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fleetlock"
)

func init() { rootCmd.AddCommand(newFleetlockCmd()) }

func newFleetlockCmd() *cobra.Command {
	var endpoints []string
	cmd := &cobra.Command{
		Use:   "fleetlock",
		Short: "Serve and inspect FleetLock reboot slots kept in etcd",
		Long: `FleetLock coordinates reboots across a fleet (the protocol of Zincati,
coreos/airlock and poseidon/fleetlock). The slots of each group live in
etcd under airlock's key com.coreos.airlock/groups/GROUP/v1/semaphore, as
airlock's JSON, so strata's server and airlock can serve the same fleet.
Not supported: TLS client certificates for etcd, metrics.`,
	}
	cmd.PersistentFlags().StringSliceVar(&endpoints, "etcd-endpoints", nil, "etcd client URLs, comma-separated (required)")
	dial := func(cmd *cobra.Command) (*fleetlock.Etcd, error) {
		if len(endpoints) == 0 {
			return nil, fmt.Errorf("%w: --etcd-endpoints is required", errdefs.ErrInvalid)
		}
		return fleetlock.DialEtcd(cmd.Context(), endpoints)
	}
	cmd.AddCommand(newFleetlockServeCmd(dial), newFleetlockStatusCmd(dial), newFleetlockReleaseCmd(dial))
	return cmd
}

type etcdDialer func(*cobra.Command) (*fleetlock.Etcd, error)

func parseGroups(specs []string) (map[string]uint64, error) {
	groups := map[string]uint64{}
	for _, g := range specs {
		name, n, ok := strings.Cut(g, "=")
		slots, err := strconv.ParseUint(n, 10, 32)
		if !ok || err != nil || slots == 0 || !fleetlock.ValidGroup(name) {
			return nil, fmt.Errorf("%w: --group=%s: want NAME=SLOTS (NAME of letters, digits, '.' and '-'; SLOTS at least 1)", errdefs.ErrInvalid, g)
		}
		groups[name] = slots
	}
	if len(groups) == 0 {
		groups[fleetlock.DefaultGroup] = 1
	}
	return groups, nil
}

func newFleetlockServeCmd(dial etcdDialer) *cobra.Command {
	var listen string
	var groupSpecs []string
	cmd := &cobra.Command{
		Use:   "serve --etcd-endpoints=URL[,URL...] --listen=ADDR:PORT [--group=NAME=SLOTS]...",
		Short: "Serve POST /v1/pre-reboot and /v1/steady-state from etcd",
		Long: `Serve the FleetLock protocol on --listen: POST /v1/pre-reboot takes a
reboot slot of the client's group, POST /v1/steady-state releases it.
Without --group the server has one group, "default", with one slot.
Changes are compare-and-swap transactions in etcd, so several servers
(strata's or airlock's) can share one etcd. Each request is logged on
stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if listen == "" {
				return fmt.Errorf("%w: --listen=ADDR:PORT is required", errdefs.ErrInvalid)
			}
			groups, err := parseGroups(groupSpecs)
			if err != nil {
				return err
			}
			st, err := dial(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			errw := cmd.ErrOrStderr()
			srv := &fleetlock.Server{Store: st, Groups: groups, OnEvent: func(e fleetlock.Event) {
				if e.Err != nil {
					fmt.Fprintf(errw, "fleetlock: %s group=%s id=%s: %s: %s\n", e.Op, e.Group, e.ID, e.Err.Kind, e.Err.Value)
					return
				}
				fmt.Fprintf(errw, "fleetlock: %s group=%s id=%s: ok\n", e.Op, e.Group, e.ID)
			}}
			ictx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			err = srv.Init(ictx)
			cancel()
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
			var names []string
			for g, n := range groups {
				names = append(names, fmt.Sprintf("%s=%d", g, n))
			}
			sort.Strings(names)
			fmt.Fprintf(errw, "fleetlock: serving on %s, groups %s\n", l.Addr(), strings.Join(names, " "))
			done := make(chan error, 1)
			go func() { done <- hs.Serve(l) }()
			select {
			case err := <-done:
				return err
			case <-cmd.Context().Done():
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				hs.Shutdown(sctx)
				return cmd.Context().Err()
			}
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on, ADDR:PORT")
	cmd.Flags().StringArrayVar(&groupSpecs, "group", nil, "a group and its slots, NAME=SLOTS (repeatable; default: default=1)")
	return cmd
}

func newFleetlockStatusCmd(dial etcdDialer) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status --etcd-endpoints=URL",
		Short: "Show every group's slots and who holds them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := dial(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			all, err := st.List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), all)
			}
			var names []string
			for g := range all {
				names = append(names, g)
			}
			sort.Strings(names)
			w := cmd.OutOrStdout()
			if len(names) == 0 {
				fmt.Fprintln(w, "no groups")
			}
			for _, g := range names {
				s := all[g]
				fmt.Fprintf(w, "%s: %d of %d slots held", g, len(s.Holders), s.TotalSlots)
				if len(s.Holders) > 0 {
					fmt.Fprintf(w, ": %s", strings.Join(s.Holders, " "))
				}
				fmt.Fprintln(w)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print {group: {total_slots, holders}} as JSON")
	return cmd
}

func newFleetlockReleaseCmd(dial etcdDialer) *cobra.Command {
	var group string
	cmd := &cobra.Command{
		Use:   "release ID --etcd-endpoints=URL [--group=NAME]",
		Short: "Release the slot a machine holds (after a failed update was looked at)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := dial(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			ok, err := fleetlock.Release(cmd.Context(), st, group, args[0])
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: %s holds no slot of group %s", errdefs.ErrNotFound, args[0], group)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "released %s from group %s\n", args[0], group)
			return nil
		},
	}
	cmd.Flags().StringVar(&group, "group", fleetlock.DefaultGroup, "the group")
	return cmd
}
