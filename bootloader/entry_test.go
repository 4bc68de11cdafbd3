package bootloader

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/strata-os/strata/errdefs"
)

func TestParseEntry(t *testing.T) {
	in := "# comment\n" +
		"title  Two spaces\n" +
		"version\t3\n" +
		"bare\n" +
		"linux /vmlinuz\r\n" +
		" indented ignored\n" +
		"initrd /a.img\n" +
		"aboot /aboot.img\n" +
		"initrd /overlay1.img\n" +
		"options \n" +
		"initrd /overlay2.img\n" +
		"abootcfg /aboot.cfg\n" +
		"version 4\n" +
		"9key x\n"
	e, err := ParseEntry([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"title":    " Two spaces",
		"version":  "4",
		"linux":    "/vmlinuz\r",
		"initrd":   "/a.img",
		"aboot":    "/aboot.img",
		"options":  "",
		"abootcfg": "/aboot.cfg",
	} {
		if got, ok := e.Get(k); !ok || got != want {
			t.Errorf("%s = %q (%v), want %q", k, got, ok, want)
		}
	}
	for _, k := range []string{"bare", "indented", "9key", "#"} {
		if _, ok := e.Get(k); ok {
			t.Errorf("%s parsed", k)
		}
	}
	if got := e.OverlayInitrds(); !reflect.DeepEqual(got, []string{"/overlay1.img", "/overlay2.img"}) {
		t.Errorf("overlays %q", got)
	}
	want := "title  Two spaces\n" +
		"version 4\n" +
		"options \n" +
		"linux /vmlinuz\r\n" +
		"initrd /a.img\n" +
		"initrd /overlay1.img\n" +
		"initrd /overlay2.img\n" +
		"aboot /aboot.img\n" +
		"abootcfg /aboot.cfg\n"
	if got := string(e.Format()); got != want {
		t.Errorf("Format:\n%q\nwant\n%q", got, want)
	}
	if !reflect.DeepEqual(e.Keys(), []string{"title", "version", "linux", "initrd", "aboot", "options", "abootcfg"}) {
		t.Errorf("keys %q", e.Keys())
	}

	c := e.Clone()
	c.Delete("initrd")
	c.Set("devicetree", "/dt")
	if _, ok := e.Get("devicetree"); ok {
		t.Error("Clone shares storage")
	}
	// The clone's other keys come in GLib's hash order (see ghash_test.go
	// and the interop tests), here abootcfg before aboot.
	want = "title  Two spaces\nversion 4\noptions \ndevicetree /dt\nlinux /vmlinuz\r\nabootcfg /aboot.cfg\naboot /aboot.img\n"
	if got := string(c.Format()); got != want {
		t.Errorf("after Delete(initrd):\n%q\nwant\n%q", got, want)
	}
	c.SetOverlayInitrds([]string{"/o.img"})
	if got := string(c.Format()); got != want {
		t.Errorf("overlays without initrd written:\n%q", got)
	}
}

func TestParseEntryRejects(t *testing.T) {
	for _, in := range []string{"title \xff\n", "title a\x00b\n"} {
		if _, err := ParseEntry([]byte(in)); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%q: err %v, want ErrInvalid", in, err)
		}
	}
}

// TestEntryGolden re-formats every entry the real ostree wrote.
func TestEntryGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/*/*.conf")
	if len(files) < 10 {
		t.Fatalf("only %d golden entries", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ParseEntry(data)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Format(); string(got) != string(data) {
			t.Errorf("%s: formats as\n%s", f, got)
		}
	}
}

func TestTitle(t *testing.T) {
	for _, tc := range []struct {
		pretty, version, os string
		show                bool
		index               int
		want                string
	}{
		{"Fedora Linux 38", "38.1", "fedora", false, 0, "Fedora Linux 38 38.1 (ostree:0)"},
		{"Fedora Linux 38.1", "38.1", "fedora", false, 1, "Fedora Linux 38.1 (ostree:1)"},
		{"Debian", "", "debian", true, 2, "Debian (ostree:debian:2)"},
	} {
		if got := Title(tc.pretty, tc.version, tc.os, tc.show, tc.index); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	if got := EntryFileName("os", 3, 0); got != "ostree-3-os.conf" {
		t.Error(got)
	}
	if got := OstreeKarg(1, "os", "abc", 2); got != "ostree=/ostree/boot.1/os/abc/2" {
		t.Error(got)
	}
}
