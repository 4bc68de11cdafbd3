package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sign"
)

func init() { rootCmd.AddCommand(newCommitCmd()) }

func newCommitCmd() *cobra.Command {
	var (
		branch, subject, body, bodyFile, timestamp, parent string
		trees, metaStrings, metaVariants, bindRefs         []string
		ownerUID, ownerGID                                 int
		noBindings, noXattrs, orphan, skipUnchanged        bool
		canonical, bootable, tarAutocreate                 bool
		signKeys, gpgKeys                                  []string
		signType, gpgHome                                  string
	)
	cmd := &cobra.Command{
		Use:   "commit [PATH]",
		Short: "Commit a new revision",
		Long: `Commit a directory tree, a tar archive or an existing commit as a new revision.

Trees are overlaid in the order given: --tree=dir=PATH, --tree=tar=FILE
(FILE may be - for standard input) and --tree=ref=REV. A PATH argument is
the same as --tree=dir=PATH; with neither, the current directory is
committed. The new commit's checksum is printed on stdout.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			for _, a := range args {
				trees = append(trees, "dir="+a)
			}
			if len(trees) == 0 {
				trees = []string{"dir=."} // as ostree: the current directory
			}
			if branch == "" && !orphan {
				return fmt.Errorf("a branch is required (-b REF), or --orphan")
			}
			o := commit.Options{Branch: branch, Orphan: orphan, Subject: subject, Body: body,
				NoBindings: noBindings, BindRefs: bindRefs, SkipIfUnchanged: skipUnchanged, Bootable: bootable}
			if bodyFile != "" {
				b, err := fsutil.ReadFileLimit(bodyFile, maxArgFileSize)
				if err != nil {
					return err
				}
				o.Body = string(b)
			}
			if timestamp != "" {
				if o.Timestamp, err = commit.ParseTimestamp(timestamp); err != nil {
					return err
				}
			}
			if parent != "" {
				var p objects.Checksum
				if parent != "none" {
					if p, err = objects.ParseChecksum(parent); err != nil {
						return fmt.Errorf("--parent: %w", err)
					}
				}
				o.Parent = &p
			}
			strs, err := parseMetadata("--add-metadata-string", metaStrings, false)
			if err != nil {
				return err
			}
			typed, err := parseMetadata("--add-metadata", metaVariants, true)
			if err != nil {
				return err
			}
			o.Metadata = append(strs, typed...)
			req := commit.Request{Options: o, Stdin: os.Stdin, Progress: newReporter(cmd), Warner: newWarner(cmd),
				Tar: commit.TarOptions{AutocreateParents: tarAutocreate}}
			for _, tr := range trees {
				src, err := commit.ParseSource(tr)
				if err != nil {
					return err
				}
				req.Sources = append(req.Sources, src)
			}
			if cmd.Flags().Changed("owner-uid") {
				u := uint32(ownerUID)
				req.Filter.OwnerUID = &u
			}
			if cmd.Flags().Changed("owner-gid") {
				g := uint32(ownerGID)
				req.Filter.OwnerGID = &g
			}
			req.Filter.NoXattrs = noXattrs
			req.Filter.Canonical = canonical
			ctx := cmd.Context()
			ss, err := sign.Signers(ctx, sign.SignerSpec{Type: signType, Ed25519: signKeys, GPGKeyIDs: gpgKeys, GPGHomedir: gpgHome})
			if err != nil {
				return err
			}
			req.BeforePublish = func(ctx context.Context, t *repo.Txn, c objects.Checksum) error {
				return sign.SignStaged(ctx, t, c, ss)
			}
			res, err := commit.Run(ctx, r, req)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Checksum)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&branch, "branch", "b", "", "branch (ref) to commit to")
	fl.StringVarP(&subject, "subject", "s", "", "one-line subject")
	fl.StringVarP(&body, "body", "m", "", "full description")
	fl.StringVarP(&bodyFile, "body-file", "F", "", "read the description from FILE")
	fl.StringArrayVar(&trees, "tree", nil, "overlay a tree: dir=PATH, tar=FILE or ref=REV (repeatable)")
	fl.StringVar(&timestamp, "timestamp", "", "override the timestamp (RFC 3339, 'YYYY-MM-DD HH:MM:SS' UTC, or @SECONDS)")
	fl.StringVar(&parent, "parent", "", "parent commit checksum, or 'none'")
	fl.StringArrayVar(&metaStrings, "add-metadata-string", nil, "add KEY=VALUE string metadata (repeatable)")
	fl.StringArrayVar(&metaVariants, "add-metadata", nil, "add KEY=VALUE metadata with VALUE in GVariant text format (repeatable)")
	fl.BoolVar(&noBindings, "no-bindings", false, "do not write ref bindings")
	fl.StringArrayVar(&bindRefs, "bind-ref", nil, "also bind the commit to this ref (repeatable)")
	fl.IntVar(&ownerUID, "owner-uid", 0, "set file ownership user id")
	fl.IntVar(&ownerGID, "owner-gid", 0, "set file ownership group id")
	fl.BoolVar(&noXattrs, "no-xattrs", false, "do not import extended attributes")
	fl.BoolVar(&orphan, "orphan", false, "create a commit without writing a ref")
	fl.BoolVar(&skipUnchanged, "skip-if-unchanged", false, "if the tree is unchanged from the parent, print the parent and write nothing")
	fl.BoolVar(&canonical, "canonical-permissions", false, "canonicalize permissions as bare-user-only does (uid/gid 0, mode & 0755, no xattrs)")
	fl.BoolVar(&bootable, "bootable", false, "add ostree.bootable and ostree.linux (the kernel version: the usr/lib/modules directory holding vmlinuz), as ostree does; a tree without exactly one kernel there is refused")
	fl.StringArrayVar(&signKeys, "sign", nil, "sign the commit with this ed25519 secret key (base64; repeatable)")
	fl.StringVar(&signType, "sign-type", "ed25519", "signature type for --sign")
	fl.StringArrayVar(&gpgKeys, "gpg-sign", nil, "GPG key ID to sign the commit with (repeatable)")
	fl.StringVar(&gpgHome, "gpg-homedir", "", gpgHomedirHelp)
	fl.BoolVar(&tarAutocreate, "tar-autocreate-parents", false, "when loading tar archives, create missing parent directories (as ostree does: 0755, owned by the entry's owner)")
	return cmd
}

// parseMetadata reads --add-metadata-string (typed false) or
// --add-metadata (typed: VALUE in GVariant text format) KEY=VALUE
// arguments. Entries are appended, not set: ostree keeps a key given twice
// twice. Typed values are stored in native (little-endian) order, as ostree
// stores them; `ostree show` prints them byte-swapped.
func parseMetadata(flag string, kvs []string, typed bool) (objects.Metadata, error) {
	var md objects.Metadata
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s: expected KEY=VALUE, got %q", flag, kv)
		}
		val := gvariant.Variant{Type: gvariant.MustParseType("s"), Value: v}
		if typed {
			var err error
			if val, err = gvariant.ParseLiteral(v); err != nil {
				return nil, fmt.Errorf("%s %s: %w", flag, k, err)
			}
		}
		md = append(md, objects.MetaEntry{Key: k, Value: val})
	}
	return md, nil
}
