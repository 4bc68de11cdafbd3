package repo

import (
	"reflect"
	"testing"
)

const sampleConfig = `# leading comment
[core]
repo_version=1
mode = archive-z2

# a comment inside core
[remote "origin"]
url=https://example.com/repo
gpg-verify=false
branches=main;stable;
`

func TestKeyFileRoundTrip(t *testing.T) {
	kf, err := ParseKeyFile(sampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	if got := kf.String(); got != sampleConfig {
		t.Errorf("round trip changed the file:\n%s\nwant:\n%s", got, sampleConfig)
	}
	if got := kf.Groups(); !reflect.DeepEqual(got, []string{"core", `remote "origin"`}) {
		t.Errorf("Groups = %q", got)
	}
	if got := kf.Keys(`remote "origin"`); !reflect.DeepEqual(got, []string{"url", "gpg-verify", "branches"}) {
		t.Errorf("Keys = %q", got)
	}
	if v, ok := kf.Get("core", "mode"); !ok || v != "archive-z2" {
		t.Errorf("Get core.mode = %q, %v (spaces around '=' are not part of the value)", v, ok)
	}
	if _, ok := kf.Get("core", "url"); ok {
		t.Error("Get found a key of another group")
	}
	if _, ok := kf.Get("nope", "url"); ok {
		t.Error("Get found a key in a missing group")
	}
	if got := kf.GetList(`remote "origin"`, "branches"); !reflect.DeepEqual(got, []string{"main", "stable"}) {
		t.Errorf("GetList = %q", got)
	}
	if b, err := kf.GetBool(`remote "origin"`, "gpg-verify", true); err != nil || b {
		t.Errorf("GetBool = %v, %v", b, err)
	}
	if got := kf.GetDefault("core", "missing", "def"); got != "def" {
		t.Errorf("GetDefault = %q", got)
	}

	// Editing changes only what was set.
	kf.Set("core", "repo_version", "1")
	kf.Set("core", "min-free-space-percent", "5")
	want := `# leading comment
[core]
repo_version=1
mode = archive-z2
min-free-space-percent=5

# a comment inside core
[remote "origin"]
url=https://example.com/repo
gpg-verify=false
branches=main;stable;
`
	if got := kf.String(); got != want {
		t.Errorf("after Set:\n%s\nwant:\n%s", got, want)
	}
	kf.Delete(`remote "origin"`, "gpg-verify")
	kf.Set("new", "k", "v")
	if !kf.DeleteGroup(`remote "origin"`) || kf.DeleteGroup("never") {
		t.Error("DeleteGroup result wrong")
	}
	want = `# leading comment
[core]
repo_version=1
mode = archive-z2
min-free-space-percent=5

# a comment inside core
[new]
k=v
`
	if got := kf.String(); got != want {
		t.Errorf("after Delete:\n%s\nwant:\n%s", got, want)
	}
}

func TestKeyFileEscapes(t *testing.T) {
	tests := []struct {
		value, stored string
	}{
		{"plain", "plain"},
		{" leading space", `\sleading space`},
		{"trailing space ", "trailing space "},
		{"tab\there", `tab\there`},
		{"new\nline", `new\nline`},
		{"cr\rhere", `cr\rhere`},
		{`back\slash`, `back\\slash`},
		{`\n literally`, `\\n literally`},
		{"", ""},
		{"ünïcødé", "ünïcødé"},
	}
	for _, tc := range tests {
		kf := &KeyFile{}
		kf.Set("g", "k", tc.value)
		text := kf.String()
		if want := "[g]\nk=" + tc.stored + "\n"; text != want {
			t.Errorf("Set(%q) wrote %q, want %q", tc.value, text, want)
		}
		back, err := ParseKeyFile(text)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := back.Get("g", "k"); got != tc.value {
			t.Errorf("round trip of %q gave %q", tc.value, got)
		}
	}
	// Reading GLib escapes written by others.
	kf, err := ParseKeyFile("[g]\na=x\\sy\nb=\\s\\s\nc=\\\\s\n")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"a": "x y", "b": "  ", "c": `\s`} {
		if got, _ := kf.Get("g", k); got != want {
			t.Errorf("Get %s = %q, want %q", k, got, want)
		}
	}
}

func TestKeyFileDuplicateKeyLastWins(t *testing.T) {
	kf, err := ParseKeyFile("[g]\nk=1\nk=2\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := kf.Get("g", "k"); got != "2" {
		t.Errorf("Get = %q, want the last value (as GLib)", got)
	}
}

func TestKeyFileGetBool(t *testing.T) {
	for _, tc := range []struct {
		v       string
		want    bool
		wantErr bool
	}{{"true", true, false}, {"1", true, false}, {"false", false, false}, {"0", false, false}, {"yes", false, true}, {"", false, true}} {
		kf := &KeyFile{}
		kf.Set("g", "b", tc.v)
		got, err := kf.GetBool("g", "b", false)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("GetBool(%q) = %v, %v", tc.v, got, err)
		}
	}
	if got, err := (&KeyFile{}).GetBool("g", "b", true); !got || err != nil {
		t.Errorf("missing key: %v, %v", got, err)
	}
}

func TestParseKeyFileErrors(t *testing.T) {
	for _, bad := range []string{
		"key=outside a group\n",
		"[unterminated\n",
		"[]\n",
		"[g]\nno equals sign\n",
	} {
		if _, err := ParseKeyFile(bad); err == nil {
			t.Errorf("ParseKeyFile(%q) succeeded", bad)
		}
	}
}
