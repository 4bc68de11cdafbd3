// Package updates is the update agent: it reads Zincati-style strategy
// files, decides when to stage an update and when to reboot into it
// (at once, in a maintenance window, or when a FleetLock slot is held),
// spreads a rollout over a fleet by each machine's wariness, and
// releases the fleet lock only once the new deployment booted healthy.
// It acts on the machine through the System interface and keeps its
// state in one JSON file.
package updates

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fleetlock"
	"github.com/strata-os/strata/fsutil"
)

// Strategies.
const (
	StrategyImmediate = "immediate"
	StrategyPeriodic  = "periodic"
	StrategyFleetLock = "fleet_lock"
)

// Default configuration directories, lowest priority first.
var DefaultConfigDirs = []string{"/usr/lib/strata/updates.d", "/etc/strata/updates.d", "/run/strata/updates.d"}

// Config is the merged configuration.
type Config struct {
	// Enabled is false when a fragment sets [updates] enabled = false.
	Enabled  bool
	Strategy string
	// Windows of the periodic strategy, in Location (UTC by default).
	Windows  []Window
	Location *time.Location
	// FleetLock base URL and group.
	BaseURL string
	Group   string
	// NodeUUID, when set, replaces the id derived from /etc/machine-id.
	NodeUUID string
	// Wariness, when set (0..1), replaces the one derived from the id.
	Wariness *float64
	// Files are the fragments read, in order.
	Files []string
}

// fragment is one file's keys: Zincati's names, plus [updates.fleet_lock]
// group (strata's; Zincati reads the group from [identity] only).
type fragment struct {
	Identity *struct {
		Group           *string  `toml:"group"`
		NodeUUID        *string  `toml:"node_uuid"`
		RolloutWariness *float64 `toml:"rollout_wariness"`
	} `toml:"identity"`
	Updates *struct {
		Enabled   *bool   `toml:"enabled"`
		Strategy  *string `toml:"strategy"`
		FleetLock *struct {
			BaseURL *string `toml:"base_url"`
			Group   *string `toml:"group"`
		} `toml:"fleet_lock"`
		Periodic *struct {
			TimeZone *string `toml:"time_zone"`
			Window   []struct {
				Days          []string `toml:"days"`
				StartTime     *string  `toml:"start_time"`
				LengthMinutes *int64   `toml:"length_minutes"`
			} `toml:"window"`
		} `toml:"periodic"`
	} `toml:"updates"`
}

// maxConfigSize bounds one fragment (a few hundred bytes in practice).
const maxConfigSize = 1 << 20

// LoadConfig reads every *.toml file of dirs, as Zincati's fragments:
// files are ordered by name, a name in a later directory replaces the
// same name in an earlier one, a symlink to /dev/null removes it, and
// later files override the keys they set (windows add up). A missing
// directory is no error. A bad file fails with its name and line.
func LoadConfig(dirs []string) (*Config, error) {
	byName := map[string]string{}
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".toml") {
				byName[e.Name()] = filepath.Join(d, e.Name())
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	c := &Config{Enabled: true, Strategy: StrategyImmediate, Location: time.UTC, Group: fleetlock.DefaultGroup}
	fleetGroup := ""
	for _, n := range names {
		p := byName[n]
		if t, err := os.Readlink(p); err == nil && t == "/dev/null" {
			continue
		}
		b, err := fsutil.ReadFileLimit(p, maxConfigSize)
		if err != nil {
			return nil, err
		}
		if err := c.apply(p, b, &fleetGroup); err != nil {
			return nil, err
		}
		c.Files = append(c.Files, p)
	}
	if fleetGroup != "" {
		c.Group = fleetGroup
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseConfig reads one fragment (for tests and `update status --config`).
func ParseConfig(name string, b []byte) (*Config, error) {
	c := &Config{Enabled: true, Strategy: StrategyImmediate, Location: time.UTC, Group: fleetlock.DefaultGroup}
	fg := ""
	if err := c.apply(name, b, &fg); err != nil {
		return nil, err
	}
	if fg != "" {
		c.Group = fg
	}
	c.Files = []string{name}
	return c, c.check()
}

func (c *Config) check() error {
	switch c.Strategy {
	case StrategyFleetLock:
		if c.BaseURL == "" {
			return fmt.Errorf("%w: %s: strategy fleet_lock needs [updates.fleet_lock] base_url", errdefs.ErrInvalid, strings.Join(c.Files, ", "))
		}
	case StrategyPeriodic:
		if len(c.Windows) == 0 {
			return fmt.Errorf("%w: %s: strategy periodic needs at least one [[updates.periodic.window]]", errdefs.ErrInvalid, strings.Join(c.Files, ", "))
		}
	}
	return nil
}

func posError(file string, line int, format string, a ...any) error {
	return fmt.Errorf("%w: %s:%d: %s", errdefs.ErrInvalid, file, line, fmt.Sprintf(format, a...))
}

func (c *Config) apply(file string, b []byte, fleetGroup *string) error {
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f fragment
	if err := dec.Decode(&f); err != nil {
		var sm *toml.StrictMissingError
		var de *toml.DecodeError
		switch {
		case errors.As(err, &sm) && len(sm.Errors) > 0:
			e := sm.Errors[0]
			row, _ := e.Position()
			return posError(file, row, "unknown key %s", strings.Join(e.Key(), "."))
		case errors.As(err, &de):
			row, _ := de.Position()
			return posError(file, row, "%s", strings.TrimPrefix(de.Error(), "toml: "))
		}
		return fmt.Errorf("%w: %s: %v", errdefs.ErrInvalid, file, err)
	}
	lines := newLineFinder(b)
	if id := f.Identity; id != nil {
		if id.Group != nil {
			if !fleetlock.ValidGroup(*id.Group) {
				return posError(file, lines.key("identity", 0, "group"), "group %q: want letters, digits, '.' and '-'", *id.Group)
			}
			c.Group = *id.Group
		}
		if id.NodeUUID != nil {
			u := strings.ReplaceAll(*id.NodeUUID, "-", "")
			if !regexp.MustCompile(`^[0-9a-fA-F]{32}$`).MatchString(u) {
				return posError(file, lines.key("identity", 0, "node_uuid"), "node_uuid %q: want 32 hex digits", *id.NodeUUID)
			}
			c.NodeUUID = strings.ToLower(u)
		}
		if w := id.RolloutWariness; w != nil {
			if !(*w >= 0 && *w <= 1) {
				return posError(file, lines.key("identity", 0, "rollout_wariness"), "rollout_wariness %v: want 0.0 to 1.0", *w)
			}
			v := *w
			c.Wariness = &v
		}
	}
	u := f.Updates
	if u == nil {
		return nil
	}
	if u.Enabled != nil {
		c.Enabled = *u.Enabled
	}
	if u.Strategy != nil {
		switch *u.Strategy {
		case StrategyImmediate, StrategyPeriodic, StrategyFleetLock:
			c.Strategy = *u.Strategy
		default:
			return posError(file, lines.key("updates", 0, "strategy"), "strategy %q: want immediate, periodic or fleet_lock", *u.Strategy)
		}
	}
	if fl := u.FleetLock; fl != nil {
		if fl.BaseURL != nil {
			if !strings.HasPrefix(*fl.BaseURL, "http://") && !strings.HasPrefix(*fl.BaseURL, "https://") {
				return posError(file, lines.key("updates.fleet_lock", 0, "base_url"), "base_url %q: want an http:// or https:// URL", *fl.BaseURL)
			}
			c.BaseURL = *fl.BaseURL
		}
		if fl.Group != nil {
			if !fleetlock.ValidGroup(*fl.Group) {
				return posError(file, lines.key("updates.fleet_lock", 0, "group"), "group %q: want letters, digits, '.' and '-'", *fl.Group)
			}
			*fleetGroup = *fl.Group
		}
	}
	if p := u.Periodic; p != nil {
		if p.TimeZone != nil {
			var loc *time.Location
			var err error
			switch *p.TimeZone {
			case "localtime":
				loc = time.Local
			default:
				loc, err = time.LoadLocation(*p.TimeZone)
			}
			if err != nil {
				return posError(file, lines.key("updates.periodic", 0, "time_zone"), "time_zone %q: %v", *p.TimeZone, err)
			}
			c.Location = loc
		}
		for i, w := range p.Window {
			hdr := lines.header("updates.periodic.window", i)
			if len(w.Days) == 0 {
				return posError(file, hdr, "window without days")
			}
			if w.StartTime == nil {
				return posError(file, hdr, "window without start_time")
			}
			if w.LengthMinutes == nil {
				return posError(file, hdr, "window without length_minutes")
			}
			win, field, err := NewWindow(w.Days, *w.StartTime, *w.LengthMinutes)
			if err != nil {
				return posError(file, lines.key("updates.periodic.window", i, field), "%v", err)
			}
			c.Windows = append(c.Windows, win)
		}
	}
	return nil
}

// lineFinder finds the line of a table header or key for messages about
// values that parsed but are not valid (the TOML decoder gives positions
// only for its own errors).
type lineFinder struct{ lines []string }

func newLineFinder(b []byte) *lineFinder {
	var lf lineFinder
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lf.lines = append(lf.lines, sc.Text())
	}
	return &lf
}

var headerRE = regexp.MustCompile(`^\s*\[\[?\s*([A-Za-z0-9_.\s"-]+?)\s*\]\]?`)

func (lf *lineFinder) tableAt(i int) (string, bool) {
	m := headerRE.FindStringSubmatch(lf.lines[i])
	if m == nil {
		return "", false
	}
	return strings.ReplaceAll(strings.ReplaceAll(m[1], " ", ""), `"`, ""), true
}

// header is the 1-based line of the n-th header of table (0 when none).
func (lf *lineFinder) header(table string, n int) int {
	for i := range lf.lines {
		if t, ok := lf.tableAt(i); ok && t == table {
			if n == 0 {
				return i + 1
			}
			n--
		}
	}
	return 0
}

// key is the line of key inside the n-th table (or written dotted from a
// parent table); the table's header line, or 1, when not found.
func (lf *lineFinder) key(table string, n int, key string) int {
	cur := ""
	seen := -1
	for i, l := range lf.lines {
		if t, ok := lf.tableAt(i); ok {
			cur = t
			if t == table {
				seen++
			}
			continue
		}
		k, _, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		full := strings.TrimSpace(k)
		if cur != "" {
			full = cur + "." + full
		}
		if full == table+"."+key && (cur != table || seen == n) {
			return i + 1
		}
	}
	if h := lf.header(table, n); h > 0 {
		return h
	}
	return 1
}
