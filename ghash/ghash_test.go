package ghash

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestGhashOrder replays testdata/ghash.txt, made by driving GLib's own
// GHashTable through ctypes, and compares the iteration orders.
func TestTableOrder(t *testing.T) {
	f, err := os.Open("testdata/ghash.txt")
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
		fields := strings.Split(sc.Text(), "\t")
		tb := New()
		var i int
		for i = 0; fields[i] != "="; i++ {
			op, key := fields[i][0], fields[i][1:]
			if op == '+' {
				tb.Insert(key)
			} else {
				tb.Remove(key)
			}
		}
		want := strings.Join(fields[i+1:], "\t")
		if got := strings.Join(tb.Keys(), "\t"); got != want {
			t.Errorf("line %d: order\n%q\nGLib's\n%q", n+3, got, want)
		}
		n++
	}
	if n < 100 {
		t.Fatalf("only %d cases", n)
	}
}

func TestOrder(t *testing.T) {
	got := Order([]string{"b", "a", "b", "c"})
	if len(got) != 3 {
		t.Fatalf("%q", got)
	}
}
