package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/commit"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

func init() {
	var (
		branch, subject, body, bodyFile, timestamp, parent string
		trees, metaStrings, metaVariants, bindRefs         []string
		ownerUID, ownerGID                                 int
		noBindings, noXattrs, orphan, skipUnchanged        bool
		canonical, bootable                                bool
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
				if o.Timestamp, err = parseTimestamp(timestamp); err != nil {
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
			for _, kv := range metaStrings {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--add-metadata-string: expected KEY=VALUE, got %q", kv)
				}
				// Appended, not set: ostree keeps a key given twice twice.
				o.Metadata = append(o.Metadata, objects.MetaEntry{Key: k, Value: gvariant.Variant{Type: gvariant.MustParseType("s"), Value: v}})
			}
			for _, kv := range metaVariants {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--add-metadata: expected KEY=VALUE, got %q", kv)
				}
				val, err := parseVariantLiteral(v)
				if err != nil {
					return fmt.Errorf("--add-metadata %s: %w", k, err)
				}
				// Stored in native (little-endian) order, as ostree stores
				// them; `ostree show` prints them byte-swapped.
				o.Metadata = append(o.Metadata, objects.MetaEntry{Key: k, Value: val})
			}
			var f commit.Filter
			if cmd.Flags().Changed("owner-uid") {
				u := uint32(ownerUID)
				f.OwnerUID = &u
			}
			if cmd.Flags().Changed("owner-gid") {
				g := uint32(ownerGID)
				f.OwnerGID = &g
			}
			f.NoXattrs = noXattrs
			f.Canonical = canonical
			ctx := cmd.Context()
			rep := newReporter(cmd)
			t, err := r.Begin(ctx)
			if err != nil {
				return err
			}
			defer t.Abort()
			m := commit.NewMTree(nil)
			for _, tr := range trees {
				kind, arg, ok := strings.Cut(tr, "=")
				if !ok {
					return fmt.Errorf("--tree: expected dir=PATH, tar=FILE or ref=REV, got %q", tr)
				}
				switch kind {
				case "dir":
					rep.Phase("commit "+arg, "files", 0)
					err = commit.AddDir(ctx, t, m, arg, f, rep)
					rep.Done()
				case "tar":
					err = addTarTree(cmd, t, m, arg, f)
				case "ref":
					err = commit.AddRef(t, m, arg)
				default:
					return fmt.Errorf("--tree: unknown kind %q (want dir, tar or ref)", kind)
				}
				if err != nil {
					return err
				}
			}
			res, err := commit.Write(ctx, t, m, o)
			if err != nil {
				return err
			}
			if !res.Skipped {
				if err := signNewCommit(ctx, t, res.Checksum, signType, signKeys, gpgKeys, gpgHome); err != nil {
					return err
				}
				if err := t.Commit(); err != nil {
					return err
				}
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
	rootCmd.AddCommand(cmd)
}

// parseTimestamp accepts what `ostree commit --timestamp` accepts in
// practice: RFC 3339, "YYYY-MM-DD HH:MM:SS" (UTC) and @SECONDS.
func parseTimestamp(s string) (time.Time, error) {
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("could not parse timestamp %q", s)
		}
		return time.Unix(n, 0), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04:05Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("could not parse timestamp %q", s)
}

// parseVariantLiteral parses the GVariant text forms a user writes for
// --add-metadata: 'string' or "string", true/false, integers (int32 unless
// annotated: byte, int16, uint16, int32, uint32, int64, uint64), doubles.
func parseVariantLiteral(s string) (gvariant.Variant, error) {
	s = strings.TrimSpace(s)
	typed := map[string]string{"byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u", "int64": "x", "uint64": "t", "double": "d"}
	if word, rest, ok := strings.Cut(s, " "); ok {
		if code, ok := typed[word]; ok {
			return parseNumber(strings.TrimSpace(rest), code)
		}
	}
	switch {
	case s == "true" || s == "false":
		return gvariant.Variant{Type: gvariant.MustParseType("b"), Value: s == "true"}, nil
	case len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0]:
		return gvariant.Variant{Type: gvariant.MustParseType("s"), Value: s[1 : len(s)-1]}, nil
	case strings.ContainsAny(s, ".eE") && !strings.HasPrefix(s, "0x"):
		return parseNumber(s, "d")
	}
	return parseNumber(s, "i")
}

func parseNumber(s, code string) (gvariant.Variant, error) {
	t := gvariant.MustParseType(code)
	bad := fmt.Errorf("cannot parse %q as a GVariant value (%s)", s, code)
	if code == "d" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return gvariant.Variant{}, bad
		}
		return gvariant.Variant{Type: t, Value: f}, nil
	}
	bits := map[string]int{"y": 8, "n": 16, "q": 16, "i": 32, "u": 32, "x": 64, "t": 64}[code]
	if code == "y" || code == "q" || code == "u" || code == "t" {
		n, err := strconv.ParseUint(s, 0, bits)
		if err != nil {
			return gvariant.Variant{}, bad
		}
		var v any
		switch code {
		case "y":
			v = uint8(n)
		case "q":
			v = uint16(n)
		case "u":
			v = uint32(n)
		default:
			v = n
		}
		return gvariant.Variant{Type: t, Value: v}, nil
	}
	n, err := strconv.ParseInt(s, 0, bits)
	if err != nil {
		return gvariant.Variant{}, bad
	}
	var v any
	switch code {
	case "n":
		v = int16(n)
	case "i":
		v = int32(n)
	default:
		v = n
	}
	return gvariant.Variant{Type: t, Value: v}, nil
}

var _ = repo.ErrInvalid
