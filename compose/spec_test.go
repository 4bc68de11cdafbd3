package compose

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/errdefs"
)

func TestParseExampleSpec(t *testing.T) {
	s, err := LoadSpec("testdata/demo.toml")
	if err != nil {
		t.Fatal(err)
	}
	if s.OS.Name != "demo" || s.OS.Version != "1" || s.Base.Suite != "bookworm" || s.variant() != "minbase" {
		t.Fatalf("os/base: %+v %+v", s.OS, s.Base)
	}
	if len(s.Base.Packages) != 5 || s.Base.Packages[3] != "linux-image-amd64" {
		t.Fatalf("packages %v", s.Base.Packages)
	}
	if len(s.Files) != 1 || *s.Files[0].Content != "built by strata compose\n" || s.Files[0].Mode != "0644" {
		t.Fatalf("files %+v", s.Files)
	}
	if *s.Groups[0].GID != 990 || *s.Users[0].UID != 990 || s.Users[0].Home != "/var/lib/app" {
		t.Fatalf("users/groups %+v %+v", s.Users, s.Groups)
	}
	if s.Units.Enable[0] != "systemd-networkd.service" || s.Kernel.Args[0] != "console=ttyS0,115200" {
		t.Fatalf("units/kernel %+v %+v", s.Units, s.Kernel)
	}
	if LockPath(s.Path) != "testdata/demo.lock" {
		t.Fatalf("lock path %s", LockPath(s.Path))
	}
}

func TestSpecErrorsNameFileLineKey(t *testing.T) {
	base := "[os]\nname = \"x\"\n\n[base]\nsuite = \"bookworm\"\n"
	cases := []struct {
		name, doc, want string
	}{
		{"unknown key", base + "colour = \"red\"\n", `spec.toml:6: unknown key "base.colour"`},
		{"unknown table", base + "[kernal]\nargs = []\n", `spec.toml:6: unknown key "kernal"`},
		{"type", "[os]\nname = 3\n", "spec.toml:2: os.name:"},
		{"mode", base + "[[files]]\npath = \"/etc/a\"\ncontent = \"\"\n[[files]]\npath = \"/etc/b\"\ncontent = \"x\"\nmode = \"999\"\n", "spec.toml:12: files[2].mode:"},
		{"no gid", base + "[[groups]]\nname = \"app\"\n", "spec.toml:6: groups[1].gid: required"},
		{"var file", base + "[[files]]\npath = \"/var/lib/x\"\ncontent = \"\"\n", "spec.toml:7: files[1].path: /var is machine state"},
		{"two bases", base + "ref = \"a\"\n", "spec.toml:4: base: give exactly one"},
		{"no name", "[os]\nversion = \"1\"\n", "spec.toml:1: os.name: required"},
		{"bad unit", base + "[units]\nenable = [\"foo\"]\n", "spec.toml:7: units.enable:"},
		{"image transport", "[os]\nname = \"x\"\n[base]\nimage = \"containers-storage:x\"\n", "spec.toml:4: base.image: "},
		{"syntax", "[os\nname = \"x\"\n", "spec.toml:1:"},
		// Hostile values: each would escape the tree or inject a line
		// or field into passwd, group, sysusers.d, tmpfiles.d or kargs.d.
		{"dotdot path", base + "[[files]]\npath = \"/etc/../var/x\"\ncontent = \"\"\n", "spec.toml:7: files[1].path:"},
		{"relative path", base + "[[files]]\npath = \"etc/x\"\ncontent = \"\"\n", "spec.toml:7: files[1].path:"},
		{"newline path", base + "[[files]]\npath = \"/etc/a\\nb\"\ncontent = \"\"\n", "spec.toml:7: files[1].path:"},
		{"setuid bits too many", base + "[[files]]\npath = \"/etc/a\"\ncontent = \"\"\nmode = \"17777\"\n", "spec.toml:9: files[1].mode:"},
		{"owner colon", base + "[[files]]\npath = \"/etc/a\"\ncontent = \"\"\nowner = \"a:b:c\"\n", "spec.toml:9: files[1].owner:"},
		{"owner negative", base + "[[files]]\npath = \"/etc/a\"\ncontent = \"\"\nowner = \"-1\"\n", "spec.toml:9: files[1].owner:"},
		{"owner huge id", base + "[[files]]\npath = \"/etc/a\"\ncontent = \"\"\nowner = \"0:99999\"\n", "spec.toml:9: files[1].owner:"},
		{"owner newline", base + "[[files]]\npath = \"/etc/a\"\ncontent = \"\"\nowner = \"root\\nx\"\n", "spec.toml:9: files[1].owner:"},
		{"user newline", base + "[[users]]\nname = \"a\\nroot::0:0::/:/bin/sh\"\nuid = 5\n", "spec.toml:7: users[1].name:"},
		{"user colon", base + "[[users]]\nname = \"a:0\"\nuid = 5\n", "spec.toml:7: users[1].name:"},
		{"group newline", base + "[[groups]]\nname = \"g\\nroot\"\ngid = 5\n", "spec.toml:7: groups[1].name:"},
		{"user's group", base + "[[users]]\nname = \"a\"\nuid = 5\ngroup = \"x:0\"\n", "spec.toml:9: users[1].group:"},
		{"user's groups", base + "[[users]]\nname = \"a\"\nuid = 5\ngroups = [\"sudo\\nx\"]\n", "spec.toml:9: users[1].groups:"},
		{"home colon", base + "[[users]]\nname = \"a\"\nuid = 5\nhome = \"/var/a:0:0\"\n", "spec.toml:9: users[1].home:"},
		{"home blank", base + "[[users]]\nname = \"a\"\nuid = 5\nhome = \"/var/a root\"\n", "spec.toml:9: users[1].home:"},
		{"shell colon", base + "[[users]]\nname = \"a\"\nuid = 5\nshell = \"/bin/sh:x\"\n", "spec.toml:9: users[1].shell:"},
		{"gecos newline", base + "[[users]]\nname = \"a\"\nuid = 5\ngecos = \"x\\nroot::0:0::/:/bin/sh\"\n", "spec.toml:9: users[1].gecos:"},
		{"uid zero", base + "[[users]]\nname = \"a\"\nuid = 0\n", "spec.toml:8: users[1].uid:"},
		{"ids newline", base + "[ids.users]\n\"a\\nb\" = 5\n", "spec.toml:6: ids.users:"},
		{"unit slash", base + "[units]\nenable = [\"../../etc/x.service\"]\n", "spec.toml:7: units.enable:"},
		{"unit dotdot dir", base + "[units]\nmask = [\"..\"]\n", "spec.toml:7: units.mask:"},
		{"unit newline", base + "[units]\ndisable = [\"a.service\\nb.service\"]\n", "spec.toml:7: units.disable:"},
		{"karg newline", base + "[kernel]\nargs = [\"quiet\\ninit=/bin/sh\"]\n", "spec.toml:7: kernel.args:"},
		{"karg carriage return", base + "[kernel]\nargs = [\"quiet\\rinit=/bin/sh\"]\n", "spec.toml:7: kernel.args:"},
		{"karg blank", base + "[kernel]\nargs = [\"a b\"]\n", "spec.toml:7: kernel.args:"},
		{"hostname newline", base + "[etc]\nhostname = \"a\\nb\"\n", "spec.toml:7: etc.hostname:"},
		{"timezone dotdot", base + "[etc]\ntimezone = \"../../etc/shadow\"\n", "spec.toml:7: etc.timezone:"},
		{"version newline", "[os]\nname = \"x\"\nversion = \"1\\nID=evil\"\n[base]\nsuite = \"bookworm\"\n", "spec.toml:3: os.version:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSpec("spec.toml", []byte(c.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("error %q is not ErrInvalid", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestAptSources(t *testing.T) {
	root := t.TempDir()
	must := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must("etc/apt/sources.list", "# comment\ndeb-src http://src.invalid/d bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://one.invalid/debian bookworm-backports main\n")
	must("etc/apt/sources.list.d/a.sources", "Types: deb\nURIs: http://two.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://three.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n")
	must("etc/apt/sources.list.d/b.sources", "Enabled: no\nTypes: deb\nURIs: http://off.invalid/\nSuites: trixie\n")
	must("etc/apt/sources.list.d/c.list.disabled", "deb http://off.invalid/ trixie main\n")
	m, err := FindMirror(root, "bookworm")
	if err != nil {
		t.Fatal(err)
	}
	if m.URI != "http://two.invalid/debian" || m.SignedBy != "/usr/share/keyrings/debian-archive-keyring.gpg" {
		t.Fatalf("bookworm: %+v", m)
	}
	m, err = FindMirror(root, "bookworm-backports")
	if err != nil || m.URI != "http://one.invalid/debian" || m.SignedBy != "/k.gpg" {
		t.Fatalf("backports: %+v %v", m, err)
	}
	if _, err := FindMirror(root, "trixie"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("trixie: %v", err)
	}
}
