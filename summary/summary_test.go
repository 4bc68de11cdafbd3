package summary

import (
	"bytes"
	"fmt"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/ghash"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
)

func ostree(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ostree", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ostreeRepo makes a repo with ostree: a few refs, one with a version.
func ostreeRepo(t *testing.T, mode string, extraConfig func(dir string)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	ostree(t, "init", "--repo="+dir, "--mode="+mode)
	if extraConfig != nil {
		extraConfig(dir)
	}
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "f"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ostree(t, "commit", "--repo="+dir, "-b", "main", "--add-metadata-string=version=1.2.3", "--timestamp=2021-01-01 00:00:00", tree)
	ostree(t, "commit", "--repo="+dir, "-b", "zeta/x", "--timestamp=2022-02-02 00:00:00", tree)
	ostree(t, "commit", "--repo="+dir, "-b", "abc", tree)
	ostree(t, "commit", "--repo="+dir, "-b", "abc", "--add-metadata-string=version=two", tree)
	return dir
}

// lastModified extracts the last-modified time of summary bytes.
func lastModified(t *testing.T, data []byte) time.Time {
	t.Helper()
	s, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := s.Metadata.Get(KeyLastModified)
	if !ok {
		t.Fatal("no last-modified")
	}
	return time.Unix(int64(bits.ReverseBytes64(v.Value.(uint64))), 0)
}

func TestGenerateMatchesOstree(t *testing.T) {
	cases := []struct {
		name   string
		mode   string
		config func(dir string)
		extra  []string // ostree summary -m KEY=VALUE
		meta   objects.Metadata
	}{
		{name: "archive", mode: "archive"},
		{name: "bare-user", mode: "bare-user"},
		{name: "tombstones", mode: "archive", config: func(dir string) {
			appendFile(t, filepath.Join(dir, "config"), "tombstone-commits=true\n")
		}},
		{name: "mirrors", mode: "archive", config: func(dir string) {
			// A mirrored collection ref is filled in after the commits.
		}},
		{name: "collection", mode: "archive", config: func(dir string) {
			appendFile(t, filepath.Join(dir, "config"), "collection-id=org.example.Main\n")
		}},
		{name: "many-keys", mode: "archive", extra: []string{"a.one='1'", "b.two='2'", "c.three='x'", "d.four=true", "e.five='5'", "f.six='six'", "g.seven='7'", "ostree.summary.expires=uint64 123"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := ostreeRepo(t, tc.mode, tc.config)
			if tc.name == "mirrors" {
				main, err := os.ReadFile(filepath.Join(dir, "refs/heads/main"))
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range []string{"refs/mirrors/org.example.Other/os/stable", "refs/mirrors/org.example.Other/app", "refs/mirrors/org.example.B/x"} {
					os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
					if err := os.WriteFile(filepath.Join(dir, p), main, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				// A remote ref is never in the summary.
				os.MkdirAll(filepath.Join(dir, "refs/remotes/origin"), 0o755)
				os.WriteFile(filepath.Join(dir, "refs/remotes/origin/main"), main, 0o644)
			}
			args := []string{"summary", "--repo=" + dir, "-u"}
			for _, m := range tc.extra {
				args = append(args, "-m", m)
				k, v, _ := strings.Cut(m, "=")
				var val gvariant.Variant
				switch {
				case strings.HasPrefix(v, "uint64 "):
					var n uint64
					fmt.Sscan(strings.TrimPrefix(v, "uint64 "), &n)
					val = gvariant.Variant{Type: tType, Value: n}
				case v == "true":
					val = gvariant.Variant{Type: bType, Value: true}
				default:
					val = gvariant.Variant{Type: sType, Value: strings.Trim(v, "'")}
				}
				tc.meta = append(tc.meta, objects.MetaEntry{Key: k, Value: val})
			}
			ostree(t, args...)
			want, err := os.ReadFile(filepath.Join(dir, "summary"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := repo.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Generate(r, Options{Now: lastModified(t, want), Metadata: tc.meta})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				gs, _ := Parse(got)
				ws, _ := Parse(want)
				var gb, wb bytes.Buffer
				View(&gb, gs)
				View(&wb, ws)
				t.Fatalf("summary differs from ostree's (%d vs %d bytes)\nstrata:\n%s\nostree:\n%s", len(got), len(want), gb.String(), wb.String())
			}
			// --view renders as ostree does.
			s, err := Parse(want)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			View(&b, s)
			if wantView := ostree(t, "summary", "--repo="+dir, "--view"); b.String() != wantView {
				t.Errorf("view differs:\nstrata:\n%s\nostree:\n%s", b.String(), wantView)
			}
		})
	}
}

func appendFile(t *testing.T, p, s string) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(data, s...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDictOrder pins GLib's hash order for keys ostree uses, as observed
// from ostree 2022.7 output.
func TestDictOrder(t *testing.T) {
	got := strings.Join(ghash.Order([]string{KeyLastModified, KeyMode, KeyTombstones, KeyIndexedDeltas}), ",")
	want := strings.Join([]string{KeyMode, KeyLastModified, KeyTombstones, KeyIndexedDeltas}, ",")
	if got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
}

func TestParseRejects(t *testing.T) {
	good := gvariant.MustMarshal(GVType, []any{[]any{
		[]any{"b", []any{uint64(1), make([]byte, 32), []any{}}},
		[]any{"a", []any{uint64(1), make([]byte, 32), []any{}}},
	}, []any{}})
	if _, err := Parse(good); err == nil || !strings.Contains(err.Error(), "not sorted") {
		t.Errorf("unsorted refs: %v", err)
	}
	short := gvariant.MustMarshal(GVType, []any{[]any{
		[]any{"a", []any{uint64(1), make([]byte, 31), []any{}}},
	}, []any{}})
	if _, err := Parse(short); err == nil {
		t.Error("31-byte checksum accepted")
	}
	badName := gvariant.MustMarshal(GVType, []any{[]any{
		[]any{"../x", []any{uint64(1), make([]byte, 32), []any{}}},
	}, []any{}})
	if _, err := Parse(badName); err == nil {
		t.Error("ref ../x accepted")
	}
	if _, err := Parse([]byte{1, 2, 3}); err == nil {
		t.Error("garbage accepted")
	}
}
