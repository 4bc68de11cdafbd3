package compose

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/strata-os/strata/dist"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/progress"
)

// buildEnv is the whole environment of every build step: nothing of the
// caller's environment (locale, time zone, proxies aside) reaches a
// maintainer script.
func buildEnv(epoch int64) []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LC_ALL=C",
		"LANG=C",
		"TZ=UTC",
		"HOME=/root",
		"DEBIAN_FRONTEND=noninteractive",
		"SOURCE_DATE_EPOCH=" + strconv.FormatInt(epoch, 10),
	}
	for _, k := range []string{"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// mmdebstrapRun is one run of mmdebstrap into a directory.
type mmdebstrapRun struct {
	spec   *Spec
	target string
	// source is the sources.list line ("deb [...] URI SUITE COMPONENTS").
	source string
	// keep keeps the downloaded .debs and the package lists (for lock).
	keep bool
	// hookDir's tree is copied into the root once the essential packages
	// are in, before the rest is installed (strata, its initramfs hook).
	hookDir string
	// pins is a shell script run as an essential hook (pinned ids).
	pins string
	// seed is a directory of cached .debs under apt's names, hard-linked
	// into the root's apt cache before downloading (mirror runs).
	seed string
	// hookDirs are mmdebstrap --hook-dir directories.
	hookDirs []string
	epoch    int64
	log      string // full output goes here
	rep      progress.Reporter
}

func (m *mmdebstrapRun) run(ctx context.Context) error {
	args := []string{
		"--mode=root", "--format=directory",
		"--variant=" + m.spec.variant(),
		"--components=" + strings.Join(m.spec.components(), ","),
		"--aptopt=Acquire::Languages \"none\"",
		"--dpkgopt=path-exclude=/usr/share/doc/*/changelog*",
		// No fsync per unpacked file: the tree is committed (and synced)
		// afterwards or thrown away; the option file is removed by
		// mmdebstrap's cleanup.
		"--dpkgopt=force-unsafe-io",
	}
	if len(m.spec.Base.Packages) > 0 {
		args = append(args, "--include="+strings.Join(m.spec.Base.Packages, ","))
	}
	if m.keep {
		args = append(args, "--skip=download/empty,essential/unlink,cleanup/apt/lists,cleanup/apt/cache")
		if m.seed != "" {
			// Packages already in the cache are not downloaded again: apt
			// checks them against the mirror's index and keeps them.
			args = append(args, "--setup-hook=mkdir -p \"$1/var/cache/apt/archives\" && cp -l "+shellQuote(m.seed)+"/*.deb \"$1/var/cache/apt/archives/\" 2>/dev/null || true")
		}
	}
	if m.hookDir != "" {
		args = append(args, "--essential-hook=cp -a "+shellQuote(m.hookDir)+"/. \"$1\"/")
	}
	if m.pins != "" {
		args = append(args, "--essential-hook=sh "+shellQuote(m.pins)+" \"$1\"")
	}
	for _, d := range m.hookDirs {
		args = append(args, "--hook-dir="+d)
	}
	args = append(args, m.spec.Base.Suite, m.target, m.source)
	cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", "umask 022; exec mmdebstrap \"$@\"", "sh"}, args...)...)
	cmd.Env = buildEnv(m.epoch)
	cmd.Dir = "/"
	logf, err := os.Create(m.log)
	if err != nil {
		return err
	}
	defer logf.Close()
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("mmdebstrap: %w", err)
	}
	tail := make([]string, 0, 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		phase := ""
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if len(tail) == cap(tail) {
				tail = tail[1:]
			}
			tail = append(tail, line)
			next := phase
			switch {
			case strings.HasPrefix(line, "I: running apt-get update"), strings.HasPrefix(line, "I: downloading packages"):
				next = "fetch"
			case strings.HasPrefix(line, "I: extracting archives"):
				next = "unpack"
			case strings.HasPrefix(line, "I: installing essential packages"), strings.HasPrefix(line, "I: installing remaining packages"):
				next = "configure"
			}
			if next != phase {
				if phase != "" {
					m.rep.Done()
				}
				phase = next
				m.rep.Phase(phase, "lines", 0)
			}
			if phase != "" {
				m.rep.Add(1)
			}
		}
		if phase != "" {
			m.rep.Done()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err = cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("mmdebstrap failed (%v; full log %s):\n  %s", err, m.log, strings.Join(tail, "\n  "))
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// stageHookDir lays out what goes into the root before the packages that
// use it are configured: the static strata binary (/usr/bin/strata) and
// the initramfs-tools hook and script, so the kernel's postinst builds an
// initramfs that runs `strata prepare-root`.
func stageHookDir(dir, strataBin string, modules []string) error {
	for _, d := range []string{"usr/bin", "usr/share/initramfs-tools/hooks", "usr/share/initramfs-tools/scripts/local-bottom"} {
		if err := mkdirAllMode(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if err := copyFile(strataBin, filepath.Join(dir, "usr/bin/strata"), 0o755); err != nil {
		return fmt.Errorf("installing strata: %w", err)
	}
	for _, p := range []string{"hooks/strata", "scripts/local-bottom/strata"} {
		b, err := fs.ReadFile(dist.Files, "initramfs-tools/"+p)
		if err != nil {
			return err
		}
		if err := writeFileMode(filepath.Join(dir, "usr/share/initramfs-tools", p), b, 0o755); err != nil {
			return err
		}
	}
	if len(modules) > 0 {
		conf := "# Written by strata compose from [kernel] initramfs-modules: only these modules.\nMODULES=list\n"
		if err := writeFileMode(filepath.Join(dir, "usr/share/initramfs-tools/conf.d/strata-modules"), []byte(conf), 0o644); err != nil {
			return err
		}
		list := strings.Join(modules, "\n") + "\n"
		if err := writeFileMode(filepath.Join(dir, "usr/share/initramfs-tools/modules.d/strata"), []byte(list), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// pinScript writes the [ids] pins as a shell script that adds the users and
// groups to the root's /etc/passwd and /etc/group (given as $1) before the
// maintainer scripts that would allocate them run. An entry that exists is
// left alone (the check after the build catches a different id).
func pinScript(path string, ids IDs, epoch int64) error {
	if len(ids.Users) == 0 && len(ids.Groups) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("set -e\nr=\"$1\"\n")
	groups := map[string]int{}
	for n, g := range ids.Groups {
		groups[n] = g
	}
	for n, u := range ids.Users {
		if _, ok := groups[n]; !ok {
			groups[n] = u
		}
	}
	for _, n := range sortedKeys(groups) {
		fmt.Fprintf(&b, "grep -q '^%[1]s:' \"$r/etc/group\" || echo '%[1]s:x:%[2]d:' >> \"$r/etc/group\"\n", n, groups[n])
		fmt.Fprintf(&b, "[ ! -e \"$r/etc/gshadow\" ] || grep -q '^%[1]s:' \"$r/etc/gshadow\" || echo '%[1]s:!::' >> \"$r/etc/gshadow\"\n", n)
	}
	for _, n := range sortedKeys(ids.Users) {
		fmt.Fprintf(&b, "grep -q '^%[1]s:' \"$r/etc/passwd\" || echo '%[1]s:x:%[2]d:%[3]d::/nonexistent:/usr/sbin/nologin' >> \"$r/etc/passwd\"\n", n, ids.Users[n], groups[n])
		fmt.Fprintf(&b, "[ ! -e \"$r/etc/shadow\" ] || grep -q '^%[1]s:' \"$r/etc/shadow\" || echo '%[1]s:*:%[2]d:0:99999:7:::' >> \"$r/etc/shadow\"\n", n, epoch/86400)
	}
	return writeFileMode(path, b.Bytes(), 0o644)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// localRepo makes a flat apt repository in dir holding exactly the locked
// packages, hard-linked (or copied) from the cache, with a Packages index
// written from each .deb's control fields and the lock's sha256, size and
// priority. Built from it, mmdebstrap can resolve the spec's request to
// nothing but the locked set.
func localRepo(ctx context.Context, dir string, c Cache, l *Lock) error {
	if err := mkdirAllMode(dir, 0o755); err != nil {
		return err
	}
	var idx bytes.Buffer
	for _, p := range l.Packages {
		name := debFileName(p.Name, p.Version, p.Arch)
		dst := filepath.Join(dir, name)
		if err := os.Link(c.debPath(p.SHA256), dst); err != nil {
			if err := copyFile(c.debPath(p.SHA256), dst, 0o644); err != nil {
				return err
			}
		}
		out, err := exec.CommandContext(ctx, "dpkg-deb", "--field", dst).Output()
		if err != nil {
			return fmt.Errorf("dpkg-deb --field %s: %w", name, err)
		}
		for _, line := range strings.SplitAfter(strings.TrimRight(string(out), "\n")+"\n", "\n") {
			if line == "" || strings.HasPrefix(line, "Priority:") {
				continue
			}
			idx.WriteString(line)
		}
		if p.Priority != "" {
			fmt.Fprintf(&idx, "Priority: %s\n", p.Priority)
		}
		fmt.Fprintf(&idx, "Filename: ./%s\nSize: %d\nSHA256: %s\n\n", name, p.Size, p.SHA256)
	}
	if err := writeFileMode(filepath.Join(dir, "Packages"), idx.Bytes(), 0o644); err != nil {
		return err
	}
	// mmdebstrap selects the essential and priority sets with
	// ?archive(^SUITE$) or ?codename(^SUITE$): the repository must say
	// which suite it is. With [trusted=yes], apt takes it unsigned and
	// still checks the index against the hash given here.
	arches := map[string]bool{}
	for _, p := range l.Packages {
		arches[p.Arch] = true
	}
	sum := sha256.Sum256(idx.Bytes())
	rel := fmt.Sprintf("Origin: strata compose\nLabel: strata compose\nSuite: %s\nCodename: %s\nArchitectures: %s\nSHA256:\n %s %d Packages\n",
		l.Suite, l.Suite, strings.Join(sortedKeys(arches), " "), hex.EncodeToString(sum[:]), idx.Len())
	return writeFileMode(filepath.Join(dir, "Release"), []byte(rel), 0o644)
}

// checkInstalled compares the root's dpkg status with the lock.
func checkInstalled(statusPath string, l *Lock) error {
	f, err := os.Open(statusPath)
	if err != nil {
		return err
	}
	defer f.Close()
	want := map[string]string{}
	for _, p := range l.Packages {
		want[p.Name] = p.Version
	}
	var extra, wrong []string
	err = parseControl(f, func(m map[string]string) error {
		if m["Status"] != "install ok installed" {
			return nil
		}
		v, ok := want[m["Package"]]
		switch {
		case !ok:
			extra = append(extra, m["Package"]+" "+m["Version"])
		case v != m["Version"]:
			wrong = append(wrong, m["Package"]+" "+m["Version"]+" (lock: "+v+")")
		}
		delete(want, m["Package"])
		return nil
	})
	if err != nil {
		return err
	}
	var missing []string
	for n, v := range want {
		missing = append(missing, n+" "+v)
	}
	sort.Strings(missing)
	if len(extra)+len(wrong)+len(missing) > 0 {
		return fmt.Errorf("the build installed something else than the lock (run `strata compose lock` again): extra %v, other version %v, not installed %v: %w",
			extra, wrong, missing, errdefs.ErrInvalid)
	}
	return nil
}
