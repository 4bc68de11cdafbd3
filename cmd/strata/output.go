package main

// Shared rendering for the read-side verbs (log, show, ls, cat, refs,
// rev-parse, diff): the JSON documents printed by --json (documented in
// docs/json.md; change both together) and ostree's text formats.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/summary"
)

// commitJSON is a commit in `show --json` and `log --json`.
type commitJSON struct {
	Checksum         string         `json:"checksum"`
	Parent           string         `json:"parent,omitempty"`
	Subject          string         `json:"subject"`
	Body             string         `json:"body"`
	Timestamp        uint64         `json:"timestamp"`
	Date             string         `json:"date"`
	Version          string         `json:"version,omitempty"`
	ContentChecksum  string         `json:"content_checksum"`
	RootDirtree      string         `json:"root_dirtree"`
	RootDirmeta      string         `json:"root_dirmeta"`
	Related          []relatedJSON  `json:"related,omitempty"`
	Metadata         map[string]any `json:"metadata"`
	DetachedMetadata map[string]any `json:"detached_metadata,omitempty"`
}

type relatedJSON struct {
	Name     string `json:"name"`
	Checksum string `json:"checksum"`
}

// entryJSON is a path in `ls --json`.
type entryJSON struct {
	Path     string            `json:"path"`
	Type     string            `json:"type"` // file, symlink, dir
	Mode     uint32            `json:"mode"` // permission bits with setuid/setgid/sticky
	UID      uint32            `json:"uid"`
	GID      uint32            `json:"gid"`
	Size     uint64            `json:"size"`
	Target   string            `json:"target,omitempty"`
	Checksum string            `json:"checksum,omitempty"` // files and symlinks
	Dirtree  string            `json:"dirtree,omitempty"`  // directories
	Dirmeta  string            `json:"dirmeta,omitempty"`  // directories
	Xattrs   map[string]string `json:"xattrs,omitempty"`   // name -> hex value
}

// refJSON is a ref in `refs --json`.
type refJSON struct {
	Name         string `json:"name"`
	Checksum     string `json:"checksum"`
	CollectionID string `json:"collection_id,omitempty"`
}

// diffJSON is the document `diff --json` prints.
type diffJSON struct {
	Changes *[]changeJSON `json:"changes,omitempty"` // absent with --stats alone
	Stats   *statsJSON    `json:"stats,omitempty"`
}

type changeJSON struct {
	Kind string `json:"kind"` // modified, removed, added
	Path string `json:"path"`
	Dir  bool   `json:"dir"`
}

type statsJSON struct {
	ObjectsA          int    `json:"objects_a"`
	ObjectsB          int    `json:"objects_b"`
	CommonObjects     int    `json:"common_objects"`
	CommonObjectBytes uint64 `json:"common_object_bytes"`
}

// writeJSON prints one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// jsonValue turns a decoded GVariant value into plain JSON data: variants
// unwrapped, byte arrays as hex, nothing as null.
func jsonValue(v any) any {
	switch x := v.(type) {
	case gvariant.Variant:
		return jsonValue(x.Value)
	case []byte:
		return hex.EncodeToString(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	case gvariant.Maybe:
		if !x.Valid {
			return nil
		}
		return jsonValue(x.Value)
	}
	return v
}

func metadataJSON(md objects.Metadata) map[string]any {
	out := make(map[string]any, len(md))
	for _, e := range md {
		out[e.Key] = jsonValue(e.Value)
	}
	return out
}

// contentChecksum is ostree's ContentChecksum: SHA-256 of the root dirtree
// and dirmeta checksums.
func contentChecksum(c *objects.Commit) string {
	h := sha256.New()
	h.Write(c.RootTree[:])
	h.Write(c.RootMeta[:])
	return hex.EncodeToString(h.Sum(nil))
}

func toCommitJSON(sum objects.Checksum, c *objects.Commit) commitJSON {
	j := commitJSON{
		Checksum:        sum.String(),
		Subject:         c.Subject,
		Body:            c.Body,
		Timestamp:       c.Timestamp,
		Date:            time.Unix(int64(c.Timestamp), 0).UTC().Format(time.RFC3339),
		ContentChecksum: contentChecksum(c),
		RootDirtree:     c.RootTree.String(),
		RootDirmeta:     c.RootMeta.String(),
		Metadata:        metadataJSON(c.Metadata),
	}
	if !c.Parent.IsZero() {
		j.Parent = c.Parent.String()
	}
	j.Version, _ = c.Metadata.String("version")
	for _, r := range c.Related {
		j.Related = append(j.Related, relatedJSON{r.Name, r.Checksum.String()})
	}
	return j
}

// printCommit writes a commit as `ostree log` and `ostree show` do. The
// date is always UTC, as ostree prints it.
func printCommit(w io.Writer, sum objects.Checksum, c *objects.Commit) {
	var b strings.Builder
	fmt.Fprintf(&b, "commit %s\n", sum)
	if !c.Parent.IsZero() {
		fmt.Fprintf(&b, "Parent:  %s\n", c.Parent)
	}
	fmt.Fprintf(&b, "ContentChecksum:  %s\n", contentChecksum(c))
	fmt.Fprintf(&b, "Date:  %s\n", time.Unix(int64(c.Timestamp), 0).UTC().Format("2006-01-02 15:04:05 +0000"))
	if v, ok := c.Metadata.String("version"); ok {
		fmt.Fprintf(&b, "Version: %s\n", v)
	}
	if c.Subject != "" {
		b.WriteString("\n")
		indentLines(&b, c.Subject)
	} else {
		b.WriteString("(no subject)\n")
	}
	if c.Body != "" {
		b.WriteString("\n")
		indentLines(&b, c.Body)
	}
	b.WriteString("\n")
	io.WriteString(w, b.String())
}

// indentLines writes every line of s indented by four spaces, ending the
// last one with a newline.
func indentLines(b *strings.Builder, s string) {
	for s != "" {
		line, rest, found := strings.Cut(s, "\n")
		b.WriteString("    ")
		b.WriteString(line)
		b.WriteString("\n")
		if !found {
			break
		}
		s = rest
	}
}

// printRaw writes "KIND CHECKSUM" and the object's GVariant text with type
// annotations, byte-swapped like ostree does on little-endian hosts.
func printRaw(w io.Writer, r *repo.Repo, kind objects.Kind, sum objects.Checksum, byteswap bool) error {
	data, err := r.ReadMetadata(kind, sum)
	if err != nil {
		return err
	}
	t := objects.GVType(kind)
	v, err := gvariant.Unmarshal(t, data)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", repo.ErrCorrupt, repo.ObjectName(kind, sum), err)
	}
	fmt.Fprintf(w, "%s %s\n%s\n", kind, sum, printVariant(gvariant.Variant{Type: t, Value: v}, byteswap))
	return nil
}

// printVariant renders v as g_variant_print(v, TRUE) does, byte-swapped
// first unless told otherwise (ostree's ot_dump_variant).
func printVariant(v gvariant.Variant, byteswap bool) string {
	if byteswap {
		v = objects.Byteswap(v)
	}
	return gvariant.Print(v.Type, v.Value)
}

// printSummary prints a summary as `ostree summary --view` does, or with
// raw its GVariant text (byte-swapped, as ostree prints it).
func printSummary(w io.Writer, s *summary.Summary, data []byte, raw bool) error {
	if !raw {
		summary.View(w, s)
		return nil
	}
	v, err := gvariant.Unmarshal(summary.GVType, data)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, printVariant(gvariant.Variant{Type: summary.GVType, Value: v}, true))
	return nil
}

var xattrsGVType = gvariant.MustParseType("a(ayay)")

// xattrsText prints xattrs as ostree does: a(ayay) with NUL-terminated
// names.
func xattrsText(xs objects.Xattrs) string {
	v := make([]any, len(xs))
	for i, x := range xs {
		v[i] = []any{append([]byte(x.Name), 0), x.Value}
	}
	return gvariant.Print(xattrsGVType, v)
}

// gSize renders a byte count as GLib's g_format_size does: SI units with
// a no-break space before the unit ("10.7\u00a0kB"), "N bytes" below 1000.
func gSize(n uint64) string {
	if n < 1000 {
		if n == 1 {
			return "1 byte"
		}
		return fmt.Sprintf("%d bytes", n)
	}
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	f, u := float64(n)/1000, 0
	for f >= 1000 && u < len(units)-1 {
		f /= 1000
		u++
	}
	return fmt.Sprintf("%.1f\u00a0%s", f, units[u])
}

// cliError is an error with exactly the given message that still matches
// its sentinel with errors.Is, for messages worded like ostree's.
type cliError struct {
	msg      string
	sentinel error
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.sentinel }

func errorf(sentinel error, format string, args ...any) error {
	return &cliError{msg: fmt.Sprintf(format, args...), sentinel: sentinel}
}

// catVerified copies a verifying reader to w only once every byte has
// been verified: up to 64 MiB in memory, beyond that through an unlinked
// temporary file. Nothing is written when verification fails.
func catVerified(w io.Writer, r io.Reader) error {
	const inMemory = 64 << 20
	var buf bytes.Buffer
	_, err := io.CopyN(&buf, r, inMemory+1)
	if err == io.EOF {
		_, err = w.Write(buf.Bytes())
		return err
	}
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "strata-cat-*")
	if err != nil {
		return err
	}
	os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(buf.Bytes()); err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}

// Files named on the command line are read through fsutil.ReadFileLimit:
// only regular files (a FIFO or /dev/zero is refused, naming it), and at
// most these many bytes.
const (
	// maxArgFileSize bounds -F/--body-file, --origin-file and the
	// GVariant files of show: a metadata object's cap.
	maxArgFileSize = 10 << 20
	// maxKeyringSize bounds an OpenPGP keyring (--gpg-import, --keyring).
	maxKeyringSize = 64 << 20
)
