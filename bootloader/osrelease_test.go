package bootloader

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/strata-os/strata/errdefs"
)

// TestShellUnquote replays testdata/shell_unquote.json, made by calling
// GLib's g_shell_unquote.
func TestShellUnquote(t *testing.T) {
	data, err := os.ReadFile("testdata/shell_unquote.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases [][3]any
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 20 {
		t.Fatalf("%d cases", len(cases))
	}
	for _, c := range cases {
		in, ok, want := c[0].(string), c[1].(bool), c[2].(string)
		got, gotOK := ShellUnquote(in)
		if gotOK != ok || got != want {
			t.Errorf("ShellUnquote(%q) = %q, %v; GLib: %q, %v", in, got, gotOK, want, ok)
		}
	}
}

func TestOSRelease(t *testing.T) {
	m := ParseOSRelease("#PRETTY_NAME=no\nNAME=\"X\"\nID=x\nID=y\nBAD=\"open\n KEY=v\nnoeq\n")
	if m["NAME"] != "X" || m["ID"] != "y" || m[" KEY"] != "v" || len(m) != 3 {
		t.Errorf("%q", m)
	}
	for _, tc := range []struct {
		files map[string]string
		want  string
		err   error
	}{
		{map[string]string{"usr/lib/os-release": "PRETTY_NAME=\"A B\"\nID=a\n", "etc/os-release": "ID=etc\n"}, "A B", nil},
		{map[string]string{"etc/os-release": "ID=etc\n"}, "etc", nil},
		{map[string]string{"usr/lib/os-release": "NAME=x\n"}, "", errdefs.ErrInvalid},
		{map[string]string{"usr/lib/os-release": "ID=\xff\n"}, "", errdefs.ErrInvalid},
		{map[string]string{"usr/bin/x": ""}, "", os.ErrNotExist},
	} {
		got, err := DeploymentName(writeTree(t, tc.files))
		if got != tc.want || (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%v: %q, %v", tc.files, got, err)
		}
	}
}
