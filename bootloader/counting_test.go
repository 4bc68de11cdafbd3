package bootloader

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestCountingNames(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		left, done           uint64
		ok                   bool
		blessed, decremented string
	}{
		{"ostree-1-os.conf", 0, 0, false, "ostree-1-os.conf", "ostree-1-os.conf"},
		{"ostree-1-os+3.conf", 3, 0, true, "ostree-1-os.conf", "ostree-1-os+2-1.conf"},
		{"ostree-1-os+2-1.conf", 2, 1, true, "ostree-1-os.conf", "ostree-1-os+1-2.conf"},
		{"ostree-1-os+1-2.conf", 1, 2, true, "ostree-1-os.conf", "ostree-1-os+0-3.conf"},
		{"ostree-1-os+0-3.conf", 0, 3, true, "ostree-1-os.conf", "ostree-1-os+0-3.conf"},
		{"a+b+5.conf", 5, 0, true, "a+b.conf", "a+b+4-1.conf"},
		{"a+5-.conf", 0, 0, false, "a+5-.conf", "a+5-.conf"},
		{"a+-1.conf", 0, 0, false, "a+-1.conf", "a+-1.conf"},
		{"a+5x.conf", 0, 0, false, "a+5x.conf", "a+5x.conf"},
		{"a+5-1-2.conf", 0, 0, false, "a+5-1-2.conf", "a+5-1-2.conf"},
		{"noconf+3", 3, 0, true, "noconf", "noconf+2-1"},
		{"a+99999999999999999999.conf", 0, 0, false, "a+99999999999999999999.conf", "a+99999999999999999999.conf"},
	} {
		left, done, ok := Tries(tc.name)
		if left != tc.left || done != tc.done || ok != tc.ok {
			t.Errorf("Tries(%q) = %d, %d, %v", tc.name, left, done, ok)
		}
		if got := Blessed(tc.name); got != tc.blessed {
			t.Errorf("Blessed(%q) = %q, want %q", tc.name, got, tc.blessed)
		}
		if got := Decrement(tc.name); got != tc.decremented {
			t.Errorf("Decrement(%q) = %q, want %q", tc.name, got, tc.decremented)
		}
		if Bad(tc.name) != (tc.ok && tc.left == 0) {
			t.Errorf("Bad(%q) wrong", tc.name)
		}
	}
	if got := WithTries("ostree-2-os+0-3.conf", 3); got != "ostree-2-os+3.conf" {
		t.Errorf("WithTries = %q", got)
	}
	if got := WithTries("ostree-2-os.conf", 0); got != "ostree-2-os+0.conf" {
		t.Errorf("WithTries = %q", got)
	}
}

func TestSortEntries(t *testing.T) {
	mk := func(name string, kv ...string) LoaderEntry {
		e := NewEntry()
		for i := 0; i+1 < len(kv); i += 2 {
			e.Set(kv[i], kv[i+1])
		}
		return LoaderEntry{Name: name, Entry: e}
	}
	for _, tc := range []struct {
		name string
		in   []LoaderEntry
		want string
	}{
		{"ostree versions", []LoaderEntry{
			mk("ostree-1-os.conf", "version", "1"),
			mk("ostree-3-os.conf", "version", "3"),
			mk("ostree-10-os.conf", "version", "10"),
			mk("ostree-2-os.conf", "version", "2"),
		}, "ostree-10-os.conf ostree-3-os.conf ostree-2-os.conf ostree-1-os.conf"},
		{"bad last", []LoaderEntry{
			mk("ostree-2-os+0-3.conf", "version", "2"),
			mk("ostree-1-os.conf", "version", "1"),
		}, "ostree-1-os.conf ostree-2-os+0-3.conf"},
		{"counting does not demote while tries are left", []LoaderEntry{
			mk("ostree-1-os.conf", "version", "1"),
			mk("ostree-2-os+1-2.conf", "version", "2"),
		}, "ostree-2-os+1-2.conf ostree-1-os.conf"},
		{"sort-key first, ascending, then version descending", []LoaderEntry{
			mk("z.conf", "version", "100"),
			mk("b.conf", "sort-key", "b", "version", "1"),
			mk("a1.conf", "sort-key", "a", "version", "1.9"),
			mk("a2.conf", "sort-key", "a", "version", "1.10"),
		}, "a2.conf a1.conf b.conf z.conf"},
		{"machine-id", []LoaderEntry{
			mk("x.conf", "sort-key", "k", "machine-id", "bb", "version", "9"),
			mk("y.conf", "sort-key", "k", "machine-id", "aa", "version", "1"),
		}, "y.conf x.conf"},
		{"no version: by name descending", []LoaderEntry{
			mk("linux-5.9.conf"),
			mk("linux-5.10.conf"),
			mk("ostree-1-os.conf", "version", "1"),
		}, "ostree-1-os.conf linux-5.10.conf linux-5.9.conf"},
		{"no sort-key: version plays no part, id descending, case folded", []LoaderEntry{
			mk("A-1.conf", "version", "9"),
			mk("b-1.conf", "version", "1"),
			mk("a-2.conf"),
		}, "b-1.conf a-2.conf A-1.conf"},
		{"ids in strverscmp_improved order, not glibc's", []LoaderEntry{
			mk("os-1.010.conf"),
			mk("os-1.9.conf"),
		}, "os-1.010.conf os-1.9.conf"},
		{"same entry, more tries left first", []LoaderEntry{
			mk("a+1-2.conf", "version", "1"),
			mk("a+2-1.conf", "version", "1"),
			mk("a+2-0.conf", "version", "1"),
		}, "a+2-0.conf a+2-1.conf a+1-2.conf"},
	} {
		SortEntries(tc.in)
		var names []string
		for _, e := range tc.in {
			names = append(names, e.Name)
		}
		if got := strings.Join(names, " "); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestStrverscmp checks every pair of testdata/strverscmp.txt, made by
// calling glibc's strverscmp.
func TestStrverscmp(t *testing.T) {
	f, err := os.Open("testdata/strverscmp.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		parts := strings.Split(sc.Text(), "\t")
		a, b := strings.Trim(parts[0], "'"), strings.Trim(parts[1], "'")
		want, _ := strconv.Atoi(parts[2])
		got := Strverscmp(a, b)
		if (got > 0) != (want > 0) || (got < 0) != (want < 0) {
			t.Errorf("Strverscmp(%q, %q) = %d, glibc says %d", a, b, got, want)
		}
		n++
	}
	if n < 1000 {
		t.Fatalf("only %d cases", n)
	}
}
