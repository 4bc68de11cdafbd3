package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/compose"
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

func TestParseAccessLog(t *testing.T) {
	log := "GET /repo/config 200 312 120\n" +
		"GET /repo/summary.sig 404 300 153\n" +
		"GET /repo/objects/ab/cd.filez 200 1200 1000\n"
	got, err := parseAccessLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	want := traffic{Requests: 3, Bytes: 1812, Body: 1273, NotOK: 1}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"GET /x 200 12\n", "GET /x 200 twelve 3\n"} {
		if _, err := parseAccessLog(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNginxConf(t *testing.T) {
	c := nginxConf("/w/nginx", "/w/nginx/www", 8123)
	for _, want := range []string{
		"listen 127.0.0.1:8123;",
		"root /w/nginx/www;",
		"access_log /w/nginx/access.log bench;",
		"log_format bench '$request_method $request_uri $status $bytes_sent $body_bytes_sent';",
		"daemon off;",
		"pid /w/nginx/nginx.pid;",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("nginx.conf lacks %q:\n%s", want, c)
		}
	}
	// The log format must be defined before the access_log that uses it.
	if strings.Index(c, "log_format") > strings.Index(c, "access_log") {
		t.Error("access_log before log_format")
	}
}

func TestGroupDigits(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 20670482: "20,670,482", -1234: "-1,234"} {
		if got := groupDigits(in); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestOSTrees: the deployable and update trees are hard-linked copies,
// and making them never changes the input tree.
func TestOSTrees(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	for i := range 100 {
		p := filepath.Join(src, "usr/lib", fmt.Sprintf("f%03d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("file %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "etc/hostname"), []byte("box\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "usr/lib/f001"), 0o4755); err != nil {
		t.Fatal(err)
	}
	before := contents(t, src)
	e := &env{tree: src, work: t.TempDir()}
	ot, err := e.osTrees(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after := contents(t, src); after != before {
		t.Fatalf("making the os trees changed the input tree:\n%s\nnow:\n%s", before, after)
	}
	for _, p := range []string{"usr/etc/hostname", "usr/etc/os-release", "usr/etc/bench/conf19.conf",
		"usr/lib/modules/" + benchKver + "/vmlinuz", "usr/lib/modules/" + benchKver + "/initramfs.img", "var", "sysroot"} {
		if _, err := os.Lstat(filepath.Join(ot.v1, p)); err != nil {
			t.Errorf("v1: %v", err)
		}
	}
	if _, err := os.Lstat(filepath.Join(ot.v1, "etc")); err == nil {
		t.Error("v1 still has /etc")
	}
	// 100 files + hostname + os-release + 20 defaults + kernel and
	// initramfs, every 33rd rewritten, and conf01.conf.
	if ot.changed < 4 || ot.changed > 6 {
		t.Errorf("v2 rewrote %d files", ot.changed)
	}
	b, err := os.ReadFile(filepath.Join(ot.v2, "usr/etc/bench/conf01.conf"))
	if err != nil || !strings.Contains(string(b), "strata-bench v2") {
		t.Errorf("conf01.conf in v2: %q, %v", b, err)
	}
	// The first file in lexical order is rewritten with its mode kept
	// and its link to v1 broken; the second stays a link.
	fi1, err := os.Stat(filepath.Join(ot.v2, "usr/etc/bench/conf00.conf"))
	if err != nil {
		t.Fatal(err)
	}
	fi1v1, _ := os.Stat(filepath.Join(ot.v1, "usr/etc/bench/conf00.conf"))
	if os.SameFile(fi1, fi1v1) || fi1.Mode() != fi1v1.Mode() {
		t.Errorf("conf00.conf: same file %t, modes %v %v", os.SameFile(fi1, fi1v1), fi1.Mode(), fi1v1.Mode())
	}
	fi2, _ := os.Stat(filepath.Join(ot.v2, "usr/etc/bench/conf02.conf"))
	fi2v1, _ := os.Stat(filepath.Join(ot.v1, "usr/etc/bench/conf02.conf"))
	if !os.SameFile(fi2, fi2v1) {
		t.Error("conf02.conf is not a link to v1's")
	}
}

// contents lists a tree's paths, modes and file contents (not link
// counts, which hard-linked copies change).
func contents(t *testing.T, root string) string {
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v", p, fi.Mode())
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %q", data)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestMakeView(t *testing.T) {
	repo, view := t.TempDir(), filepath.Join(t.TempDir(), "view")
	for p, data := range map[string]string{"config": "[core]\n", "objects/ab/cd.commit": "c",
		"refs/heads/bench": "x\n", "summary": "s", "tmp/junk": "j"} {
		full := filepath.Join(repo, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := makeView(repo, view); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "refs/heads/bench"), []byte("y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"config": "[core]\n", "objects/ab/cd.commit": "c", "refs/heads/bench": "x\n", "summary": "s"} {
		if b, err := os.ReadFile(filepath.Join(view, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(view, "tmp")); err == nil {
		t.Error("view has tmp/")
	}
}

func TestOCINginxConf(t *testing.T) {
	c := ociNginxConf(nginxConf("/w/nginx", "/w/nginx/www", 8123), "127.0.0.1:5000")
	root := strings.Index(c, "root /w/nginx/www;")
	loc := strings.Index(c, "location /v2/ {")
	pass := strings.Index(c, "proxy_pass http://127.0.0.1:5000;")
	end := strings.LastIndex(c, "}\n}")
	if root < 0 || loc < root || pass < loc || end < pass {
		t.Fatalf("the /v2/ proxy is not inside the server block after root:\n%s", c)
	}
}

func TestOCIV2Spec(t *testing.T) {
	// Derive writes [os] and [base] ref = ... before ociV2Spec: the
	// result must be a valid compose spec with the packages on the ref.
	p := filepath.Join(t.TempDir(), "v2.toml")
	raw := "[os]\nname = \"testos\"\nversion = \"2\"\n\n[base]\nref = \"testos/1\"\n\n" + ociV2Spec()
	if err := os.WriteFile(p, []byte(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := compose.LoadSpec(p)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if fmt.Sprint(s.Base.Packages) != fmt.Sprint(ociV2Packages) {
		t.Errorf("packages %v, want %v", s.Base.Packages, ociV2Packages)
	}
	if len(s.Files) != 3 {
		t.Errorf("%d files, want 3", len(s.Files))
	}
}
