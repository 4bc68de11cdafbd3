package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3}, 3},
		{[]time.Duration{5, 1, 3}, 3},
		{[]time.Duration{4, 1, 3, 2}, 2}, // (2+3)/2 in integer nanoseconds
		{[]time.Duration{10, 20}, 15},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestAptMirror(t *testing.T) {
	for _, tc := range []struct {
		name, file, data, want string
	}{
		{"deb822", "sources.list.d/debian.sources", `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`, "http://deb.debian.org/debian"},
		{"deb822 security first", "sources.list.d/a.sources", `Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security

Types: deb-src deb
URIs: http://mirror.example/debian
Suites: bookworm
`, "http://mirror.example/debian"},
		{"deb822 disabled", "sources.list.d/a.sources", `Enabled: no
Types: deb
URIs: http://off.example/debian
Suites: bookworm
`, ""},
		{"one-line with options", "sources.list", `# comment
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main
`, "http://mirror.example/debian"},
		{"one-line other suite", "sources.list", "deb http://mirror.example/debian trixie main\n", ""},
		{"ignored extension", "sources.list.d/x.list.disabled", "deb http://x.example/debian bookworm main\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, tc.file)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := aptMirror(root, "bookworm")
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/var/tmp/a\040b\\c`); got != `/var/tmp/a b\\c` {
		t.Fatalf("got %q", got)
	}
}

func TestPickNames(t *testing.T) {
	known := []string{"a", "b"}
	if got, err := pickNames("all", known, "x"); err != nil || len(got) != 2 {
		t.Fatalf("all: %v %v", got, err)
	}
	if got, err := pickNames(" b ,", known, "x"); err != nil || len(got) != 1 || got[0] != "b" {
		t.Fatalf("b: %v %v", got, err)
	}
	if _, err := pickNames("c", known, "x"); err == nil {
		t.Fatal("unknown name accepted")
	}
}

func TestTreeDigest(t *testing.T) {
	mk := func() string {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "f"), []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("f", filepath.Join(d, "l")); err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b := mk(), mk()
	da, err := treeDigest(a)
	if err != nil {
		t.Fatal(err)
	}
	if db, _ := treeDigest(b); db != da {
		t.Fatalf("equal trees: %s != %s", da, db)
	}
	if err := os.WriteFile(filepath.Join(b, "f"), []byte("hellO"), 0o644); err != nil {
		t.Fatal(err)
	}
	if db, _ := treeDigest(b); db == da {
		t.Fatal("changed content, same digest")
	}
	if err := os.Chmod(filepath.Join(a, "f"), 0o600); err != nil {
		t.Fatal(err)
	}
	if da2, _ := treeDigest(a); da2 == da {
		t.Fatal("changed mode, same digest")
	}
}
