package bootloader

import (
	"sort"
	"strings"
	"testing"
)

// FuzzParseEntry: parsing never panics, and what Format writes parses
// back to the same entry. (The bytes need not be a fixed point: like
// ostree, re-parsing inserts the other keys in a new order, which can
// move them in the hash table.)
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{
		"title T\nversion 1\noptions a=b\nlinux /v\ninitrd /i\n",
		"initrd /a\ninitrd /b\nx y\n\tz\n#c\nk\tv w\n",
		"", "\n\n", "a \n", "title \r\n", "k v\x00", "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEntry(data)
		if err != nil {
			return
		}
		once := e.Format()
		e2, err := ParseEntry(once)
		if err != nil {
			t.Fatalf("own output rejected: %v", err)
		}
		twice := e2.Format()
		a, b := strings.Split(string(once), "\n"), strings.Split(string(twice), "\n")
		sort.Strings(a)
		sort.Strings(b)
		if strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Fatalf("lines differ:\n%q\n%q", once, twice)
		}
		for _, k := range formatOrder {
			if v1, _ := e.Get(k); v1 != e2.Value(k) {
				t.Fatalf("%s: %q -> %q", k, v1, e2.Value(k))
			}
		}
		_ = e.Clone().Format()
	})
}

// FuzzKargs: a command line survives parse and print unchanged, and
// editing never panics.
func FuzzKargs(f *testing.F) {
	for _, s := range []string{"", "a", "a=1 b c=", `x="a b" y`, "  ", "a  b", `"`, "k=v=w"} {
		f.Add(s, "a=1")
	}
	f.Fuzz(func(t *testing.T, cmdline, arg string) {
		k := ParseKargs(cmdline)
		if k.String() != cmdline {
			t.Fatalf("round trip %q -> %q", cmdline, k.String())
		}
		k.Clone().Set(arg)
		_ = k.Clone().Delete(arg)
		_ = k.Clone().Replace(arg)
		c := k.Clone()
		c.AppendCmdline(arg)
		if strings.Contains(c.String(), "BOOT_IMAGE=") && !strings.Contains(cmdline, "BOOT_IMAGE=") {
			t.Fatalf("BOOT_IMAGE= not filtered: %q", c.String())
		}
	})
}

// FuzzCountingNames: the counter helpers agree with each other.
func FuzzCountingNames(f *testing.F) {
	for _, s := range []string{"ostree-1-os.conf", "a+3.conf", "a+2-1.conf", "a+0-9.conf", "+1", "a+.conf", "x+1-2-3.conf"} {
		f.Add(s, uint64(3))
	}
	f.Fuzz(func(t *testing.T, name string, n uint64) {
		blessed := Blessed(name)
		if _, _, ok := Tries(blessed); ok && blessed != name {
			// Blessing drops exactly one counter; a name may end in
			// something that looks like a second one ("a+1+2.conf").
			if Blessed(blessed) == blessed {
				t.Fatalf("Blessed(%q) = %q still counted", name, blessed)
			}
		}
		w := WithTries(name, n)
		if l, d, ok := Tries(w); !ok || l != n || d != 0 {
			t.Fatalf("Tries(WithTries(%q, %d)) = %d, %d, %v", name, n, l, d, ok)
		}
		if Blessed(w) != blessed {
			t.Fatalf("Blessed(WithTries(%q)) = %q, want %q", name, Blessed(w), blessed)
		}
		dec := Decrement(w)
		if n > 0 {
			if l, d, _ := Tries(dec); l != n-1 || d != 1 {
				t.Fatalf("Decrement(%q) = %q", w, dec)
			}
		} else if dec != w {
			t.Fatalf("Decrement of a bad entry renamed it: %q", dec)
		}
	})
}
