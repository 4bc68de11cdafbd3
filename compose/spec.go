package compose

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/pelletier/go-toml/v2"

	"github.com/strata-os/strata/errdefs"
)

// Spec is one TOML file describing an OS (docs/compose.md is its
// reference). Keys not listed here are refused.
type Spec struct {
	OS     OSSection `toml:"os"`
	Base   Base      `toml:"base"`
	Files  []File    `toml:"files"`
	Users  []User    `toml:"users"`
	Groups []Group   `toml:"groups"`
	Units  Units     `toml:"units"`
	Kernel Kernel    `toml:"kernel"`
	Etc    Etc       `toml:"etc"`
	IDs    IDs       `toml:"ids"`

	// Path is the spec file; relative sources are read beside it.
	Path string `toml:"-"`
	// Raw is the file's bytes (hashed into the lock).
	Raw []byte `toml:"-"`
	pos map[string]int
}

// OSSection names the OS.
type OSSection struct {
	Name    string `toml:"name"`
	Version string `toml:"version"`
	// SourceDateEpoch overrides the lock's timestamp (seconds).
	SourceDateEpoch *int64 `toml:"source-date-epoch"`
}

// Base is what the tree starts from: Debian packages (Suite), an existing
// ref (Ref), or an OCI image (Image).
type Base struct {
	Suite      string   `toml:"suite"`
	Variant    string   `toml:"variant"`
	Packages   []string `toml:"packages"`
	Components []string `toml:"components"`
	// Mirror overrides the mirror taken from apt's configuration.
	Mirror string `toml:"mirror"`
	Ref    string `toml:"ref"`
	Image  string `toml:"image"`
}

// File is one [[files]] entry.
type File struct {
	Path    string  `toml:"path"`
	Content *string `toml:"content"`
	Source  string  `toml:"source"`
	Mode    string  `toml:"mode"`
	Owner   string  `toml:"owner"`
}

// User is one [[users]] entry; the uid is pinned.
type User struct {
	Name   string   `toml:"name"`
	UID    *int     `toml:"uid"`
	Group  string   `toml:"group"`
	Groups []string `toml:"groups"`
	Home   string   `toml:"home"`
	Shell  string   `toml:"shell"`
	Gecos  string   `toml:"gecos"`
}

// Group is one [[groups]] entry; the gid is pinned.
type Group struct {
	Name string `toml:"name"`
	GID  *int   `toml:"gid"`
}

// Units are systemd units to enable, disable or mask.
type Units struct {
	Enable  []string `toml:"enable"`
	Disable []string `toml:"disable"`
	Mask    []string `toml:"mask"`
}

// Kernel holds kernel arguments for /usr/lib/bootc/kargs.d, and the
// initramfs's modules.
type Kernel struct {
	Args []string `toml:"args"`
	// InitramfsModules, when given, is the whole list of kernel modules
	// (with their dependencies) in the initramfs (initramfs-tools'
	// MODULES=list): a much smaller and faster initramfs for known
	// hardware (virtual machines). Default: Debian's MODULES=most.
	InitramfsModules []string `toml:"initramfs-modules"`
}

// Etc holds /etc defaults.
type Etc struct {
	Hostname string `toml:"hostname"`
	Timezone string `toml:"timezone"`
	Locale   string `toml:"locale"`
}

// IDs pins the ids that packages allocate (system users of maintainer
// scripts), by name.
type IDs struct {
	Users  map[string]int `toml:"users"`
	Groups map[string]int `toml:"groups"`
}

var (
	nameRe = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	pkgRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	// ownerRe is [[files]] owner: USER[:GROUP], each a name or an id.
	ownerRe = regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,31}|[0-9]{1,5})(:([a-z_][a-z0-9_-]{0,31}|[0-9]{1,5}))?$`)
	unitRe  = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+\.(service|socket|timer|target|path|mount|automount|swap|slice)$`)
)

// LoadSpec reads and validates a spec file. Errors name the file, the line
// and the key, and wrap errdefs.ErrInvalid (or the read error).
func LoadSpec(path string) (*Spec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	return ParseSpec(path, raw)
}

// ParseSpec parses spec bytes named path.
func ParseSpec(path string, raw []byte) (*Spec, error) {
	s := &Spec{Path: path, Raw: raw, pos: keyLines(raw)}
	d := toml.NewDecoder(bytes.NewReader(raw)).DisallowUnknownFields()
	if err := d.Decode(s); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) && len(sm.Errors) > 0 {
			e := sm.Errors[0]
			row, _ := e.Position()
			return nil, fmt.Errorf("%s:%d: unknown key %q: %w", path, row, strings.Join(e.Key(), "."), errdefs.ErrInvalid)
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, _ := de.Position()
			k := strings.Join(de.Key(), ".")
			if k != "" {
				k = " " + k + ":"
			}
			return nil, fmt.Errorf("%s:%d:%s %s: %w", path, row, k, strings.TrimPrefix(de.Error(), "toml: "), errdefs.ErrInvalid)
		}
		return nil, fmt.Errorf("%s: %v: %w", path, err, errdefs.ErrInvalid)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// errAt formats a validation error at key (e.g. "files.0.mode").
func (s *Spec) errAt(key, format string, args ...any) error {
	line := s.pos[key]
	if line == 0 {
		// Fall back to the enclosing table.
		k := key
		for line == 0 && strings.Contains(k, ".") {
			k = k[:strings.LastIndex(k, ".")]
			line = s.pos[k]
		}
	}
	shown := key
	if i := strings.IndexAny(key, "0123456789"); i > 0 {
		// files.0.mode -> files[1].mode: people count from one.
		parts := strings.Split(key, ".")
		for j, p := range parts {
			if n, err := strconv.Atoi(p); err == nil && j > 0 {
				parts[j-1] += fmt.Sprintf("[%d]", n+1)
				parts[j] = ""
			}
		}
		var kept []string
		for _, p := range parts {
			if p != "" {
				kept = append(kept, p)
			}
		}
		shown = strings.Join(kept, ".")
	}
	return fmt.Errorf("%s:%d: %s: %s: %w", s.Path, line, shown, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
}

func (s *Spec) validate() error {
	if s.OS.Name == "" {
		return s.errAt("os.name", "required")
	}
	if !regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`).MatchString(s.OS.Name) {
		return s.errAt("os.name", "%q: use letters, digits, '.', '_' and '-'", s.OS.Name)
	}
	if strings.ContainsAny(s.OS.Version, "\n\"\\`$") {
		return s.errAt("os.version", "%q: no quotes, backslashes or newlines", s.OS.Version)
	}
	if s.OS.SourceDateEpoch != nil && *s.OS.SourceDateEpoch < 0 {
		return s.errAt("os.source-date-epoch", "must not be negative")
	}
	b := s.Base
	kinds := 0
	for _, v := range []string{b.Suite, b.Ref, b.Image} {
		if v != "" {
			kinds++
		}
	}
	if kinds != 1 {
		return s.errAt("base", "give exactly one of suite (Debian packages), ref or image")
	}
	switch {
	case b.Suite != "":
		if !regexp.MustCompile(`^[a-z][a-z0-9-]*$`).MatchString(b.Suite) {
			return s.errAt("base.suite", "%q is not a suite name", b.Suite)
		}
		switch b.Variant {
		case "", "minbase", "required", "important", "standard", "essential", "apt", "buildd":
		default:
			return s.errAt("base.variant", "%q: want minbase, required, important, standard, essential, apt or buildd", b.Variant)
		}
	case b.Ref != "":
		if b.Variant != "" {
			return s.errAt("base.variant", "a ref base takes no variant (its packages are installed on top of the ref's tree)")
		}
	case b.Image != "":
		if b.Variant != "" {
			return s.errAt("base.variant", "an image base takes no variant (its packages are installed on top of the image's tree)")
		}
		if _, err := s.baseImageRef(); err != nil {
			return s.errAt("base.image", "%v", err)
		}
	}
	if b.Suite == "" && len(b.Packages) == 0 && (len(b.Components) > 0 || b.Mirror != "") {
		return s.errAt("base", "components and mirror are for packages: a ref or image base without packages takes neither")
	}
	for i, c := range b.Components {
		if !regexp.MustCompile(`^[a-z][a-z0-9-]*$`).MatchString(c) {
			return s.errAt("base.components", "entry %d: %q is not a component name", i+1, c)
		}
	}
	if b.Mirror != "" && !strings.Contains(b.Mirror, "://") {
		return s.errAt("base.mirror", "%q: want a URL", b.Mirror)
	}
	for i, p := range b.Packages {
		if !pkgRe.MatchString(p) {
			return s.errAt("base.packages", "entry %d: %q is not a Debian package name", i+1, p)
		}
	}
	for i, f := range s.Files {
		k := fmt.Sprintf("files.%d", i)
		if err := checkAbs(f.Path); err != nil {
			return s.errAt(k+".path", "%v", err)
		}
		for _, bad := range []string{"/var", "/usr/local", "/home", "/root", "/opt", "/srv", "/mnt", "/tmp", "/run", "/proc", "/sys", "/dev", "/boot"} {
			if f.Path == bad || strings.HasPrefix(f.Path, bad+"/") {
				return s.errAt(k+".path", "%s is machine state, not part of the image (use a tmpfiles.d file under /usr/lib/tmpfiles.d)", bad)
			}
		}
		if (f.Content == nil) == (f.Source == "") {
			return s.errAt(k, "give exactly one of content or source")
		}
		if f.Mode != "" {
			if _, err := parseMode(f.Mode); err != nil {
				return s.errAt(k+".mode", "%v", err)
			}
		}
		if f.Owner != "" && !validOwner(f.Owner) {
			return s.errAt(k+".owner", "%q: want USER or USER:GROUP (names, or ids in 0-65534)", f.Owner)
		}
	}
	seen := map[string]bool{}
	for i, g := range s.Groups {
		k := fmt.Sprintf("groups.%d", i)
		if !nameRe.MatchString(g.Name) {
			return s.errAt(k+".name", "%q is not a group name", g.Name)
		}
		if g.GID == nil {
			return s.errAt(k+".gid", "required (ids are pinned)")
		}
		if *g.GID < 1 || *g.GID > 65533 {
			return s.errAt(k+".gid", "%d out of range 1-65533", *g.GID)
		}
		if seen["g:"+g.Name] {
			return s.errAt(k+".name", "group %q given twice", g.Name)
		}
		seen["g:"+g.Name] = true
	}
	for i, u := range s.Users {
		k := fmt.Sprintf("users.%d", i)
		if !nameRe.MatchString(u.Name) {
			return s.errAt(k+".name", "%q is not a user name", u.Name)
		}
		if u.UID == nil {
			return s.errAt(k+".uid", "required (ids are pinned)")
		}
		if *u.UID < 1 || *u.UID > 65533 {
			return s.errAt(k+".uid", "%d out of range 1-65533", *u.UID)
		}
		if seen["u:"+u.Name] {
			return s.errAt(k+".name", "user %q given twice", u.Name)
		}
		seen["u:"+u.Name] = true
		if u.Group != "" && !nameRe.MatchString(u.Group) {
			return s.errAt(k+".group", "%q is not a group name", u.Group)
		}
		for _, g := range u.Groups {
			if !nameRe.MatchString(g) {
				return s.errAt(k+".groups", "%q is not a group name", g)
			}
		}
		// Home and shell are fields of /etc/passwd (':'-separated) and
		// of sysusers.d and tmpfiles.d lines (blank-separated).
		for key, p := range map[string]string{"home": u.Home, "shell": u.Shell} {
			if p == "" {
				continue
			}
			if err := checkAbs(p); err != nil {
				return s.errAt(k+"."+key, "%v", err)
			}
			if strings.ContainsFunc(p, func(r rune) bool { return r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
				return s.errAt(k+"."+key, "%q: no ':', blanks or control characters", p)
			}
		}
		if strings.ContainsAny(u.Gecos, ":\n") {
			return s.errAt(k+".gecos", "no ':' or newline")
		}
	}
	for key, list := range map[string][]string{"units.enable": s.Units.Enable, "units.disable": s.Units.Disable, "units.mask": s.Units.Mask} {
		for _, u := range list {
			if !unitRe.MatchString(u) {
				return s.errAt(key, "%q is not a unit name", u)
			}
		}
	}
	for _, a := range s.Kernel.Args {
		if a == "" || strings.ContainsFunc(a, func(r rune) bool { return r == '"' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
			return s.errAt("kernel.args", "%q: one argument per entry, no blanks, quotes or control characters", a)
		}
	}
	for _, m := range s.Kernel.InitramfsModules {
		if !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(m) {
			return s.errAt("kernel.initramfs-modules", "%q is not a module name", m)
		}
	}
	if s.Etc.Hostname != "" && !regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$`).MatchString(s.Etc.Hostname) {
		return s.errAt("etc.hostname", "%q is not a host name", s.Etc.Hostname)
	}
	if s.Etc.Timezone != "" && (strings.Contains(s.Etc.Timezone, "..") || !regexp.MustCompile(`^[A-Za-z0-9_+/-]+$`).MatchString(s.Etc.Timezone)) {
		return s.errAt("etc.timezone", "%q is not a time zone name", s.Etc.Timezone)
	}
	if s.Etc.Locale != "" && !regexp.MustCompile(`^[A-Za-z0-9_.@-]+$`).MatchString(s.Etc.Locale) {
		return s.errAt("etc.locale", "%q is not a locale name", s.Etc.Locale)
	}
	for n, id := range s.IDs.Users {
		if !nameRe.MatchString(n) || id < 1 || id > 65533 {
			return s.errAt("ids.users", "%q = %d: want a user name and an id in 1-65533", n, id)
		}
	}
	for n, id := range s.IDs.Groups {
		if !nameRe.MatchString(n) || id < 1 || id > 65533 {
			return s.errAt("ids.groups", "%q = %d: want a group name and an id in 1-65533", n, id)
		}
	}
	return nil
}

func validOwner(o string) bool {
	if !ownerRe.MatchString(o) {
		return false
	}
	for _, f := range strings.Split(o, ":") {
		if n, err := strconv.Atoi(f); err == nil && n > 65534 {
			return false
		}
	}
	return true
}

func checkAbs(p string) error {
	if !strings.HasPrefix(p, "/") || filepath.Clean(p) != p || p == "/" {
		return fmt.Errorf("%q: want an absolute, clean path", p)
	}
	if strings.ContainsAny(p, "\n\x00") {
		return fmt.Errorf("%q: no newlines", p)
	}
	return nil
}

func parseMode(s string) (os.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("%q: want an octal mode such as \"0644\"", s)
	}
	return os.FileMode(v), nil
}

// keyLines maps dotted keys ("os.name", "files.0.mode", "files.0") to the
// line they are on, for error messages. It understands the plain TOML a
// spec uses (tables, arrays of tables, key = value); a key it cannot place
// falls back to its table's line.
func keyLines(raw []byte) map[string]int {
	pos := map[string]int{}
	count := map[string]int{}
	table := ""
	hdr := regexp.MustCompile(`^\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]`)
	tbl := regexp.MustCompile(`^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]`)
	kv := regexp.MustCompile(`^\s*([A-Za-z0-9_-]+)\s*=`)
	for i, line := range strings.Split(string(raw), "\n") {
		n := i + 1
		if m := hdr.FindStringSubmatch(line); m != nil {
			table = fmt.Sprintf("%s.%d", m[1], count[m[1]])
			count[m[1]]++
			pos[table] = n
			continue
		}
		if m := tbl.FindStringSubmatch(line); m != nil {
			table = m[1]
			pos[table] = n
			continue
		}
		if m := kv.FindStringSubmatch(line); m != nil {
			k := m[1]
			if table != "" {
				k = table + "." + k
			}
			if _, ok := pos[k]; !ok {
				pos[k] = n
			}
		}
	}
	return pos
}
