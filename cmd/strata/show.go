package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

func init() { rootCmd.AddCommand(newShowCmd()) }

func newShowCmd() *cobra.Command {
	var o struct {
		raw, noByteswap, related, hex, asJSON bool
		listKeys, listDetachedKeys            bool
		key, detachedKey, variantType         string
	}
	cmd := &cobra.Command{
		Use:   "show OBJECT",
		Short: "Show a commit or another object",
		Long: "Show a commit named by a ref or checksum as `ostree show` does, or with a full\n" +
			"checksum also a dirtree, dirmeta or file object.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if o.variantType != "" {
				return showVariantFile(out, args[0], o.variantType, !o.noByteswap)
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			rev := args[0]
			switch {
			case o.key != "" || o.detachedKey != "" || o.listKeys || o.listDetachedKeys:
				detached := o.detachedKey != "" || (o.key == "" && o.listDetachedKeys)
				c, err := r.ResolveRev(rev)
				if err != nil {
					return err
				}
				md, err := commitMetadata(r, c, detached)
				if err != nil {
					return err
				}
				if o.key == "" && o.detachedKey == "" {
					keys := make([]string, len(md))
					for i, e := range md {
						keys[i] = e.Key
					}
					sort.Strings(keys)
					for _, k := range keys {
						fmt.Fprintln(out, k)
					}
					return nil
				}
				key := o.key
				if detached {
					key = o.detachedKey
				}
				v, ok := md.Get(key)
				if !ok {
					return errorf(repo.ErrNotFound, "No such metadata key '%s'", key)
				}
				if b, isBytes := v.Value.([]byte); o.hex && isBytes {
					fmt.Fprintln(out, hex.EncodeToString(b))
					return nil
				}
				fmt.Fprintln(out, printVariant(v, !o.noByteswap))
				return nil
			case o.related:
				c, err := r.ResolveRev(rev)
				if err != nil {
					return err
				}
				cm, err := r.ReadCommit(c)
				if err != nil {
					return err
				}
				for _, rel := range cm.Related {
					fmt.Fprintf(out, "%s %s\n", rel.Name, rel.Checksum)
				}
				return nil
			}
			// A full checksum may name any object; anything else is a
			// revision of a commit.
			if sum, err := objects.ParseChecksum(rev); err == nil && rev == strings.ToLower(rev) {
				for _, kind := range []objects.Kind{objects.KindCommit, objects.KindDirMeta, objects.KindDirTree} {
					ok, err := r.HasObject(kind, sum)
					if err != nil {
						return err
					}
					if !ok {
						continue
					}
					if kind == objects.KindCommit {
						return showCommit(out, r, sum, o.raw, o.noByteswap, o.asJSON)
					}
					if o.asJSON {
						return errorf(repo.ErrInvalid, "--json shows commits only; %s is a %s", sum, kind)
					}
					if o.raw || o.noByteswap {
						return printRaw(out, r, kind, sum, !o.noByteswap)
					}
					fmt.Fprintf(out, "%s %s\n", kind, sum)
					return nil
				}
				if o.asJSON {
					return errorf(repo.ErrInvalid, "--json shows commits only; %s is not a commit", sum)
				}
				return showFile(out, r, sum)
			}
			c, err := r.ResolveRev(rev)
			if err != nil {
				return err
			}
			return showCommit(out, r, c, o.raw, o.noByteswap, o.asJSON)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.related, "print-related", false, "show the \"related\" commits")
	f.StringVar(&o.variantType, "print-variant-type", "", "read OBJECT as a file holding a GVariant of TYPE and print it")
	f.BoolVar(&o.listKeys, "list-metadata-keys", false, "list the metadata keys")
	f.StringVar(&o.key, "print-metadata-key", "", "print the value of metadata key KEY")
	f.BoolVar(&o.hex, "print-hex", false, "print byte array values as unquoted hex")
	f.BoolVar(&o.listDetachedKeys, "list-detached-metadata-keys", false, "list the detached metadata keys")
	f.StringVar(&o.detachedKey, "print-detached-metadata-key", "", "print the value of detached metadata key KEY")
	f.BoolVar(&o.raw, "raw", false, "show raw variant data")
	f.BoolVarP(&o.noByteswap, "no-byteswap", "B", false, "do not convert variant data from big endian")
	f.BoolVar(&o.asJSON, "json", false, "print the commit as JSON (see docs/json.md)")
	return cmd
}

// commitMetadata returns a commit's metadata or its detached metadata.
func commitMetadata(r *repo.Repo, c objects.Checksum, detached bool) (objects.Metadata, error) {
	if !detached {
		cm, err := r.ReadCommit(c)
		if err != nil {
			return nil, err
		}
		return cm.Metadata, nil
	}
	ok, err := r.HasObject(objects.KindCommitMeta, c)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errorf(repo.ErrNotFound, "No detached metadata for commit %s", c)
	}
	return r.ReadCommitMeta(c)
}

func showCommit(out io.Writer, r *repo.Repo, c objects.Checksum, raw, noByteswap, asJSON bool) error {
	cm, err := r.ReadCommit(c)
	if err != nil {
		return err
	}
	switch {
	case asJSON:
		j := toCommitJSON(c, cm)
		ok, err := r.HasObject(objects.KindCommitMeta, c)
		if err != nil {
			return err
		}
		if ok {
			md, err := r.ReadCommitMeta(c)
			if err != nil {
				return err
			}
			j.DetachedMetadata = metadataJSON(md)
		}
		return writeJSON(out, j)
	case noByteswap:
		// ostree prints the unswapped variant, then the usual text.
		if err := printRaw(out, r, objects.KindCommit, c, false); err != nil {
			return err
		}
		var b strings.Builder
		printCommit(&b, c, cm)
		_, text, _ := strings.Cut(b.String(), "\n")
		_, err := io.WriteString(out, text)
		return err
	case raw:
		return printRaw(out, r, objects.KindCommit, c, true)
	}
	printCommit(out, c, cm)
	return nil
}

// showFile describes a file object as `ostree show` does.
func showFile(out io.Writer, r *repo.Repo, c objects.Checksum) error {
	h, err := r.ReadFileHeader(c)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Object: %s\nType: file\nFile Type: ", c)
	if h.IsSymlink() {
		fmt.Fprintf(&b, "symlink\nTarget: %s\n", h.Target)
	} else {
		fmt.Fprintf(&b, "regular\nSize: %d\n", h.Size)
	}
	fmt.Fprintf(&b, "Mode: 0%04o\nUid: %d\nGid: %d\n", h.Mode, h.UID, h.GID)
	fmt.Fprintf(&b, "Extended Attributes: { %s }\n", xattrsText(h.Xattrs))
	_, err = io.WriteString(out, b.String())
	return err
}

// showVariantFile prints a file holding a serialised GVariant of type t.
func showVariantFile(out io.Writer, file, t string, byteswap bool) error {
	typ, err := gvariant.ParseType(t)
	if err != nil {
		return errorf(repo.ErrInvalid, "invalid GVariant type %q: %v", t, err)
	}
	data, err := fsutil.ReadFileLimit(file, maxArgFileSize)
	if err != nil {
		return err
	}
	v, err := gvariant.Unmarshal(typ, data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	_, err = fmt.Fprintln(out, printVariant(gvariant.Variant{Type: typ, Value: v}, byteswap))
	return err
}
