package updates

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/errdefs"
)

func TestParseZincatiSample(t *testing.T) {
	c, err := ParseConfig("sample.toml", []byte(`
[identity]
group = "workers"
rollout_wariness = 0.5

[updates]
strategy = "periodic"

[[updates.periodic.window]]
days = [ "Sat", "Sun" ]
start_time = "23:30"
length_minutes = 60

[[updates.periodic.window]]
days = [ "Wednesday" ]
start_time = "01:00"
length_minutes = 30
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Strategy != "periodic" || c.Group != "workers" || c.Wariness == nil || *c.Wariness != 0.5 || len(c.Windows) != 2 {
		t.Fatalf("%+v", c)
	}
	if got := c.Windows[0].String() + "; " + c.Windows[1].String(); got != "Sun,Sat 23:30 for 60 min; Wed 01:00 for 30 min" {
		t.Fatal(got)
	}
}

func TestConfigErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[updates]\nstrategy = \"fleet_lock\"\n\n[updates.fleet_lock]\nbase_url = \"http://x/\"\nbase_ulr = \"http://y/\"\n", "f.toml:6: unknown key updates.fleet_lock.base_ulr"},
		{"[updates]\nstrategy = \"sometimes\"\n", "f.toml:2: strategy \"sometimes\""},
		{"[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Sat\"]\nstart_time = \"23:30\"\nlength_minutes = 60\n\n[[updates.periodic.window]]\ndays = [\"Wed\"]\nstart_time = \"25:00\"\nlength_minutes = 30\n", "f.toml:10: start_time \"25:00\""},
		{"[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Caturday\"]\nstart_time = \"23:30\"\nlength_minutes = 60\n", "f.toml:4: day \"Caturday\""},
		{"[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Sat\"]\nstart_time = \"23:30\"\nlength_minutes = 0\n", "f.toml:6: length_minutes 0"},
		{"[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Sat\"]\nstart_time = \"23:30\"\n", "f.toml:3: window without length_minutes"},
		{"[updates]\nstrategy = 3\n", "f.toml:2:"},
		{"[updates\n", "f.toml:1:"},
		{"[identity]\nrollout_wariness = 1.5\n", "f.toml:2: rollout_wariness 1.5"},
		{"[updates]\nstrategy = \"fleet_lock\"\n", "base_url"},
		{"[updates]\nstrategy = \"periodic\"\n", "at least one"},
		{"[cincinnati]\nbase_url = \"http://x\"\n", "f.toml:1: unknown key cincinnati"},
	} {
		_, err := ParseConfig("f.toml", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%q: got %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestFragmentsOverride(t *testing.T) {
	dir := t.TempDir()
	usr, etc := filepath.Join(dir, "usr"), filepath.Join(dir, "etc")
	os.MkdirAll(usr, 0o755)
	os.MkdirAll(etc, 0o755)
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(usr, "10-default.toml"), "[updates]\nstrategy = \"immediate\"\n")
	write(filepath.Join(usr, "20-window.toml"), "[[updates.periodic.window]]\ndays = [\"Sat\"]\nstart_time = \"01:00\"\nlength_minutes = 60\n")
	write(filepath.Join(usr, "30-bad.toml"), "garbage = [\n")
	write(filepath.Join(etc, "50-fleet.toml"), "[updates]\nstrategy = \"fleet_lock\"\n[updates.fleet_lock]\nbase_url = \"http://lock:8080/\"\ngroup = \"db\"\n")
	write(filepath.Join(etc, "20-window.toml"), "[[updates.periodic.window]]\ndays = [\"Sun\"]\nstart_time = \"02:00\"\nlength_minutes = 30\n")
	write(filepath.Join(etc, "ignored.conf"), "not toml")
	if err := os.Symlink("/dev/null", filepath.Join(etc, "30-bad.toml")); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig([]string{usr, etc, filepath.Join(dir, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	if c.Strategy != "fleet_lock" || c.BaseURL != "http://lock:8080/" || c.Group != "db" {
		t.Fatalf("%+v", c)
	}
	if len(c.Windows) != 1 || c.Windows[0].String() != "Sun 02:00 for 30 min" {
		t.Fatalf("windows %v", c.Windows)
	}
	if len(c.Files) != 3 {
		t.Fatalf("files %v", c.Files)
	}
	// Without the mask the bad file is refused with its name.
	os.Remove(filepath.Join(etc, "30-bad.toml"))
	if _, err := LoadConfig([]string{usr, etc}); err == nil || !strings.Contains(err.Error(), "30-bad.toml:1") {
		t.Fatalf("bad file: %v", err)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestWindows(t *testing.T) {
	c, err := ParseConfig("w.toml", []byte("[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Sat\", \"Sun\"]\nstart_time = \"23:30\"\nlength_minutes = 60\n[[updates.periodic.window]]\ndays = [\"Wed\"]\nstart_time = \"01:00\"\nlength_minutes = 30\n"))
	if err != nil {
		t.Fatal(err)
	}
	// 2026-12-05 is a Saturday.
	for _, tc := range []struct {
		at   string
		in   bool
		next string
	}{
		{"2026-12-05T23:29:59Z", false, "2026-12-05T23:30:00Z"},
		{"2026-12-05T23:30:00Z", true, "2026-12-05T23:30:00Z"},
		{"2026-12-06T00:29:59Z", true, "2026-12-06T00:29:59Z"}, // Saturday's window runs into Sunday
		{"2026-12-06T00:30:00Z", false, "2026-12-06T23:30:00Z"},
		{"2026-12-07T00:15:00Z", true, "2026-12-07T00:15:00Z"}, // Sunday's into Monday
		{"2026-12-07T00:30:00Z", false, "2026-12-09T01:00:00Z"},
		{"2026-12-09T01:29:00Z", true, "2026-12-09T01:29:00Z"},
		{"2026-12-09T01:30:00Z", false, "2026-12-12T23:30:00Z"},
	} {
		now := mustTime(t, tc.at)
		in, _ := InWindow(c.Windows, now, c.Location)
		next := NextWindow(c.Windows, now, c.Location)
		if in != tc.in || !next.Equal(mustTime(t, tc.next)) {
			t.Errorf("%s: in=%v next=%s, want %v %s", tc.at, in, next.Format(time.RFC3339), tc.in, tc.next)
		}
	}
}
