package repo

import (
	"strings"
	"testing"
)

// FuzzParseKeyFile feeds arbitrary text to the GLib key-file parser (a
// remote's config comes from the network): it must not panic; what it
// accepts must serialise to text that parses to the same groups, keys and
// values, and serialise again to the same text; and a value set through Set
// must read back through Get unchanged after a round trip.
func FuzzParseKeyFile(f *testing.F) {
	f.Add("[core]\nrepo_version=1\nmode=archive-z2\n", "v")
	f.Add("# comment\n\n[remote \"origin\"]\nurl=http://127.0.0.1/repo\ngpg-verify=false\nbranches=main;dev;\n", " leading space\\s")
	f.Add("[a]\nk = v with \\n escape\n[b]\n", "line\nbreak\ttab\\back\r")
	f.Add("", "")
	f.Add("[]\n", "=")
	f.Fuzz(func(t *testing.T, data, value string) {
		kf, err := ParseKeyFile(data)
		if err != nil {
			return
		}
		text := kf.String()
		kf2, err := ParseKeyFile(text)
		if err != nil {
			t.Fatalf("serialised key file does not parse: %v\n%q", err, text)
		}
		if text2 := kf2.String(); text2 != text {
			t.Fatalf("second serialisation differs:\n%q\n%q", text, text2)
		}
		for _, g := range kf.Groups() {
			for _, k := range kf.Keys(g) {
				v1, _ := kf.Get(g, k)
				v2, ok := kf2.Get(g, k)
				if !ok || v1 != v2 {
					t.Fatalf("[%s] %s: %q before the round trip, %q (%v) after", g, k, v1, v2, ok)
				}
			}
		}
		// Set then Get, through the serialised form.
		if strings.ContainsAny(value, "\x00") {
			return
		}
		kf.Set("fuzz group", "fuzzkey", value)
		kf3, err := ParseKeyFile(kf.String())
		if err != nil {
			t.Fatalf("key file with a set value does not parse: %v\n%q", err, kf.String())
		}
		if got, ok := kf3.Get("fuzz group", "fuzzkey"); !ok || got != value {
			t.Fatalf("Set %q, Get after a round trip %q (%v)", value, got, ok)
		}
	})
}
