package summary

import (
	"fmt"
	"io"
	"math/bits"
	"time"

	"github.com/strata-os/strata/gvariant"
)

// View writes s as `ostree summary --view` prints it.
func View(w io.Writer, s *Summary) {
	main := s.CollectionID()
	viewRefs(w, main, s.Refs)
	for _, c := range s.Collections {
		viewRefs(w, c.ID, c.Refs)
	}
	for _, e := range s.Metadata {
		pretty, val := "", ""
		switch e.Key {
		case KeyStaticDeltas:
			pretty, val = "Static Deltas", printPlain(e.Value)
		case KeyLastModified:
			pretty, val = "Last-Modified", isoTime(e.Value)
		case KeyExpires:
			pretty, val = "Expires", isoTime(e.Value)
		case KeyCollectionID:
			pretty, val = "Collection ID", fmt.Sprint(e.Value.Value)
		case KeyCollectionMap:
			pretty, val = "Collection Map", "(printed above)"
		case KeyMode:
			pretty, val = "Repository Mode", fmt.Sprint(e.Value.Value)
			switch val {
			case "bare", "bare-user", "bare-user-only", "archive", "archive-z2", "bare-split-xattrs":
			default:
				val = "Invalid (‘" + val + "’)"
			}
		case KeyTombstones:
			pretty, val = "Has Tombstone Commits", "No"
			if b, ok := e.Value.Value.(bool); ok && b {
				val = "Yes"
			}
		default:
			val = printPlain(e.Value)
		}
		if pretty != "" {
			fmt.Fprintf(w, "%s (%s): %s\n", pretty, e.Key, val)
		} else {
			fmt.Fprintf(w, "%s: %s\n", e.Key, val)
		}
	}
}

func viewRefs(w io.Writer, coll string, refs []Ref) {
	for _, r := range refs {
		if coll == "" {
			fmt.Fprintf(w, "* %s\n", r.Name)
		} else {
			fmt.Fprintf(w, "* (%s, %s)\n", coll, r.Name)
		}
		fmt.Fprintf(w, "    Latest Commit (%s):\n", FormatSize(r.CommitSize))
		fmt.Fprintf(w, "      %s\n", r.Checksum)
		for _, e := range r.Metadata {
			switch e.Key {
			case KeyCommitTime:
				fmt.Fprintf(w, "    Timestamp (%s): %s\n", e.Key, isoTime(e.Value))
			case KeyCommitVersion:
				fmt.Fprintf(w, "    Version (%s): %v\n", e.Key, e.Value.Value)
			default:
				fmt.Fprintf(w, "    %s: %s\n", e.Key, printPlain(e.Value))
			}
		}
		fmt.Fprintln(w)
	}
}

// printPlain prints a value as g_variant_print(v, FALSE) does for the
// common cases.
func printPlain(v gvariant.Variant) string {
	switch x := v.Value.(type) {
	case bool:
		return fmt.Sprint(x)
	case string:
		return gvariant.Print(v.Type, x)
	}
	return gvariant.Print(v.Type, v.Value)
}

// isoTime formats a big-endian uint64 timestamp as ostree does
// (%FT%T%:::z in local time).
func isoTime(v gvariant.Variant) string {
	u, ok := v.Value.(uint64)
	if !ok {
		return "invalid"
	}
	secs := bits.ReverseBytes64(u)
	if secs > 253402300799 {
		return "invalid"
	}
	return FormatTime(time.Unix(int64(secs), 0))
}

// FormatTime formats t in local time as GLib's "%FT%T%:::z".
func FormatTime(t time.Time) string {
	t = t.Local()
	_, off := t.Zone()
	sign := '+'
	if off < 0 {
		sign, off = '-', -off
	}
	z := fmt.Sprintf("%c%02d", sign, off/3600)
	if m := off % 3600 / 60; m != 0 {
		z += fmt.Sprintf(":%02d", m)
	}
	return t.Format("2006-01-02T15:04:05") + z
}

// FormatSize formats a byte count as g_format_size does ("118 bytes",
// "1.2 kB").
func FormatSize(n uint64) string {
	if n < 1000 {
		if n == 1 {
			return "1 byte"
		}
		return fmt.Sprintf("%d bytes", n)
	}
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	f := float64(n)
	i := -1
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
