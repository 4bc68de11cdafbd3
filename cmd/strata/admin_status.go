package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/sysroot"
)

func init() { adminCmd.AddCommand(newAdminStatusCmd()) }

func newAdminStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List deployments (ostree admin status)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), statusDoc(s))
			}
			printAdminStatus(cmd.OutOrStdout(), s)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON (docs/json.md)")
	return cmd
}

// deploymentJSON is a deployment in `status --json` and `admin status
// --json` (docs/json.md).
type deploymentJSON struct {
	Index         int    `json:"index"`
	Stateroot     string `json:"stateroot"`
	Checksum      string `json:"checksum"`
	Serial        int    `json:"serial"`
	Booted        bool   `json:"booted"`
	Staged        bool   `json:"staged"`
	Pending       bool   `json:"pending"`
	Rollback      bool   `json:"rollback"`
	Pinned        bool   `json:"pinned"`
	Version       string `json:"version,omitempty"`
	Timestamp     uint64 `json:"timestamp,omitempty"`
	Date          string `json:"date,omitempty"`
	OriginRefspec string `json:"origin_refspec,omitempty"`
	Image         string `json:"container_image_reference,omitempty"`
	ImageDigest   string `json:"image_digest,omitempty"`
	BootChecksum  string `json:"boot_checksum"`
	KernelArgs    string `json:"kernel_args"`
	BootEntry     string `json:"boot_entry,omitempty"`
	BootTriesLeft *int   `json:"boot_tries_left,omitempty"`
	BootTriesDone *int   `json:"boot_tries_done,omitempty"`
}

// statusJSON is the document `status --json` prints.
type statusJSON struct {
	Sysroot        string           `json:"sysroot"`
	BootVersion    int              `json:"boot_version"`
	SubBootVersion int              `json:"sub_boot_version"`
	Booted         *deploymentJSON  `json:"booted"`
	Staged         *deploymentJSON  `json:"staged"`
	Pending        *deploymentJSON  `json:"pending"`
	Rollback       *deploymentJSON  `json:"rollback"`
	Deployments    []deploymentJSON `json:"deployments"`
}

func statusDoc(s *sysroot.Sysroot) statusJSON {
	bv, sub := s.BootVersion()
	doc := statusJSON{Sysroot: s.Path(), BootVersion: bv, SubBootVersion: sub, Deployments: []deploymentJSON{}}
	pending, rollback := s.Roles()
	for _, d := range s.Deployments() {
		j := deploymentJSON{
			Index: d.Index, Stateroot: d.OS, Checksum: d.Checksum.String(), Serial: d.Serial,
			Booted: d.Booted, Staged: d.Staged, Pinned: d.Pinned(),
			Pending:       pending != nil && pending.Index == d.Index,
			Rollback:      rollback != nil && rollback.Index == d.Index,
			OriginRefspec: d.Refspec(), BootChecksum: d.BootChecksum,
			KernelArgs: d.Options(), BootEntry: d.EntryFile,
		}
		if d.Origin != nil {
			j.Image, _ = d.Origin.Get("origin", "container-image-reference")
			j.ImageDigest, _ = d.Origin.Get("origin", "container-image-digest")
		}
		if c, err := s.Repo().ReadCommit(d.Checksum); err == nil {
			j.Version, _ = c.Metadata.String("version")
			j.Timestamp = c.Timestamp
			j.Date = time.Unix(int64(c.Timestamp), 0).UTC().Format(time.RFC3339)
		}
		if left, done, ok := bootloader.Tries(d.EntryFile); ok {
			l, n := int(left), int(done)
			j.BootTriesLeft, j.BootTriesDone = &l, &n
		}
		doc.Deployments = append(doc.Deployments, j)
		jj := doc.Deployments[len(doc.Deployments)-1]
		switch {
		case d.Staged:
			doc.Staged = &jj
		case d.Booted:
			doc.Booted = &jj
		}
		if j.Pending {
			doc.Pending = &jj
		}
		if j.Rollback {
			doc.Rollback = &jj
		}
	}
	return doc
}

// printAdminStatus prints `ostree admin status`'s text.
func printAdminStatus(w io.Writer, s *sysroot.Sysroot) {
	ds := s.Deployments()
	if len(ds) == 0 {
		fmt.Fprintln(w, "No deployments.")
		return
	}
	var pending, rollback *sysroot.Deployment
	if s.Booted() != nil {
		pending, rollback = s.PendingAndRollback("")
	}
	for _, d := range ds {
		mark := ' '
		if d.Booted {
			mark = '*'
		}
		state := ""
		switch {
		case d.Staged:
			state = " (staged)"
		case pending != nil && pending.Index == d.Index:
			state = " (pending)"
		case rollback != nil && rollback.Index == d.Index:
			state = " (rollback)"
		}
		fmt.Fprintf(w, "%c %s %s%s\n", mark, d.OS, d.Name(), state)
		var sourceTitle string
		if c, err := s.Repo().ReadCommit(d.Checksum); err == nil {
			if v, ok := c.Metadata.String("version"); ok {
				fmt.Fprintf(w, "    Version: %s\n", v)
			}
			sourceTitle, _ = c.Metadata.String("ostree.source-title")
		}
		if d.Pinned() {
			fmt.Fprintln(w, "    Pinned: yes")
		}
		switch {
		case d.Origin == nil:
			fmt.Fprintln(w, "    origin: none")
		case d.Refspec() == "":
			fmt.Fprintln(w, "    origin: <unknown origin type>")
		default:
			fmt.Fprintf(w, "    origin refspec: %s\n", d.Refspec())
		}
		if d.Origin != nil && sourceTitle != "" {
			fmt.Fprintf(w, "    `- %s\n", sourceTitle)
		}
	}
}
