// Command demo is `make demo`: a Debian 12 with systemd, composed by
// strata (internal/testos: testos.toml, version 1, and a version 2 derived
// from it), installed by `strata install to-disk` on a disk image with
// systemd-boot on a vfat ESP, booted under OVMF (QEMU, TCG) through the
// real systemd-boot; in the guest, an /etc edit, /var data and `strata
// upgrade` from an update disk (the guest has no network), finalized at
// shutdown; v2 boots with the edits kept; `strata rollback`; v1 boots
// again. It prints a short transcript: host commands as "$ ...", guest
// commands as "guest# ..." with their output; -v adds the whole serial
// console. The composed OS is cached under $STRATA_CACHE (default .cache
// at the repository's root): the first run composes it (about ten
// minutes), later runs take it from the cache.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/strata-os/strata/internal/demoos"
	"github.com/strata-os/strata/internal/testos"
)

// branch is the ref v2 is committed on and the update disk carries; the
// installed machine follows update:branch.
const branch = "testos/demo"

// v2Extra is what version 2 changes besides its version: a new /etc/motd
// default (the machine has not edited its motd, so it gets the new one).
const v2Extra = `[[files]]
path = "/etc/motd"
content = "built by strata compose: version 2\n"
mode = "0644"
`

// The guest's side, one list of commands per boot. The test OS's agent
// runs them from the control disk after multi-user.target, then powers
// the machine off. A command starting with "!" is expected to fail.
var (
	boot1 = []string{
		"grep -E '^(PRETTY_NAME|IMAGE_VERSION)=' /usr/lib/os-release",
		"cat /proc/cmdline",
		"!touch /usr/bin/demo",
		"echo my-device > /etc/hostname",
		"mkdir -p /var/lib/demo && echo 'written on v1' > /var/lib/demo/data",
		"strata status",
		"mkdir -p /run/update && mount -o ro /dev/vdc /run/update",
		"strata remote add --no-gpg-verify update file:///run/update/repo",
		"strata upgrade",
		"strata status",
	}
	boot2 = []string{
		"grep IMAGE_VERSION /usr/lib/os-release",
		"cat /etc/hostname /etc/motd /var/lib/demo/data",
		"strata status",
		"strata rollback",
	}
	boot3 = []string{
		"grep IMAGE_VERSION /usr/lib/os-release",
		"cat /etc/hostname /var/lib/demo/data",
		"strata status",
	}
)

func main() {
	dir := flag.String("dir", "demo/out", "scratch directory (emptied first)")
	verbose := flag.Bool("v", false, "print the whole serial console of each boot")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{verbose: *verbose, start: time.Now()}
	if err := d.run(ctx, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

type phase struct {
	name string
	took time.Duration
}

type demo struct {
	verbose bool
	start   time.Time
	phases  []phase
	cur     string
	curAt   time.Time
}

// step ends the current phase and starts the next.
func (d *demo) step(format string, args ...any) {
	d.end()
	d.cur, d.curAt = fmt.Sprintf(format, args...), time.Now()
	fmt.Printf("\n\033[1m== %s\033[0m\n", d.cur)
}

func (d *demo) end() {
	if d.cur == "" {
		return
	}
	took := time.Since(d.curAt)
	d.phases = append(d.phases, phase{d.cur, took})
	fmt.Printf("(%s)\n", took.Round(100*time.Millisecond))
	d.cur = ""
}

func (d *demo) run(ctx context.Context, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(abs); err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}

	d.step("Build strata (one static binary: the host's, and the one composed into the OS)")
	fmt.Println("$ CGO_ENABLED=0 go build -trimpath -o " + rel(filepath.Join(abs, "strata")) + " ./cmd/strata")
	bin, err := testos.BuildStrata(ctx, abs)
	if err != nil {
		return err
	}
	strata := filepath.Join(abs, "strata")
	if err := os.Rename(bin, strata); err != nil {
		return err
	}

	d.step("Compose v1: Debian 12 with systemd, from internal/testos/testos.toml (cached)")
	o := testos.Options{StrataBinary: strata, Progress: &reporter{start: time.Now()}}
	cache := os.Getenv("STRATA_CACHE")
	if cache == "" {
		cache = filepath.Join(testos.SourceRoot(), ".cache")
	}
	fmt.Printf("$ strata compose build internal/testos/testos.toml   # via internal/testos, cached in %s/testos\n", rel(cache))
	t := time.Now()
	v1, err := testos.Get(ctx, o)
	if err != nil {
		return err
	}
	fmt.Printf("v1: %s = %s, kernel %s (%s)\n", v1.Ref, v1.Commit[:12], strings.Join(v1.Kernels, " "), cached(t))

	d.step("Compose v2: a spec whose base is v1, committed on %s", branch)
	fmt.Printf("[os] name = \"testos\", version = \"2\"; [base] ref = %q; and:\n%s", v1.Ref, indent(v2Extra, "    "))
	o.Branch = branch
	t = time.Now()
	v2, err := testos.Derive(ctx, v1, "testos", "2", v2Extra, o)
	if err != nil {
		return err
	}
	fmt.Printf("v2: %s = %s (%s)\n", v2.Ref, v2.Commit[:12], cached(t))

	d.step("Install v1 on a disk image: strata install to-disk (GPT, vfat ESP with systemd-boot, ext4 root)")
	var log strings.Builder
	m, err := testos.Install(ctx, strata, v1, abs, testos.InstallOptions{
		TargetRef: "update:" + branch, Kargs: []string{"panic=-1"}, Size: 4 << 30,
	}, &log)
	if err != nil {
		return err
	}
	fmt.Print(strings.NewReplacer(abs+"/", rel(abs)+"/", v1.Repo, rel(v1.Repo)).Replace(log.String()))
	if err := d.showESP(m); err != nil {
		return err
	}

	d.step("Put v2 on an update disk (the guest has no network): an archive repository, ref %s", branch)
	upd := filepath.Join(abs, "update.img")
	fmt.Printf("$ strata --repo=update/repo init --mode=archive\n$ strata --repo=update/repo pull-local %s %s\n$ strata --repo=update/repo refs --create=%s %s\n$ mkfs.ext4 -d update %s\n",
		rel(v2.Repo), v2.Commit[:12], branch, v2.Commit[:12], rel(upd))
	if err := testos.UpdateDisk(ctx, strata, v2, branch, upd); err != nil {
		return err
	}

	if d.verbose {
		m.Console = os.Stdout
	}
	d.step("Boot 1 (OVMF, systemd-boot): v1; edit /etc, write /var; strata upgrade from the update disk")
	r, err := d.boot(ctx, m, abs, boot1, upd, "1")
	if err != nil {
		return err
	}
	if !r.Has("STRATA-USR-READONLY") {
		return fmt.Errorf("/usr was writable in the first boot")
	}
	if err := d.showESP(m); err != nil {
		return err
	}

	d.step("Boot 2: v2, the local /etc edit and /var data kept; strata rollback")
	r, err = d.boot(ctx, m, abs, boot2, "", "2")
	if err != nil {
		return err
	}
	for _, s := range []string{"my-device", "written on v1", "version 2"} {
		if !r.Has(s) {
			return fmt.Errorf("v2's boot does not show %q", s)
		}
	}
	if err := d.showESP(m); err != nil {
		return err
	}

	d.step("Boot 3: v1 again")
	r, err = d.boot(ctx, m, abs, boot3, "", "1")
	if err != nil {
		return err
	}
	if !r.Has("my-device") || !r.Has("written on v1") {
		return fmt.Errorf("the rolled-back boot lost the /etc edit or the /var data")
	}
	d.end()

	fmt.Printf("\n\033[1m== Summary\033[0m\n")
	for _, p := range d.phases {
		fmt.Printf("  %7s  %s\n", p.took.Round(time.Second), p.name)
	}
	fmt.Printf("  %7s  total\n", time.Since(d.start).Round(time.Second))
	fmt.Println("\nDebian 12 with systemd, composed by strata, installed by strata install to-disk, booted by systemd-boot under OVMF:\n" +
		"v1 upgraded to v2 from inside the guest (finalized at shutdown), rolled back to v1; the local /etc edit and /var data kept throughout.")
	return nil
}

// boot writes the guest script for cmds, boots the machine once, prints
// the transcript and checks the booted version.
func (d *demo) boot(ctx context.Context, m *testos.Machine, tmp string, cmds []string, update, want string) (*demoos.Result, error) {
	r, err := m.Boot(ctx, tmp, script(cmds), update)
	if err != nil {
		if r != nil && !d.verbose {
			fmt.Println(r.Console)
		}
		return r, err
	}
	if d.verbose {
		fmt.Println()
	}
	failed := transcript(r)
	booted, _ := r.Mark("STRATA-BOOTED")
	fmt.Printf("(multi-user.target reached %s after power-on; powered off after %s)\n",
		booted.Round(time.Second), r.Elapsed.Round(time.Second))
	if got := r.BootedVersion(); got != want {
		return r, fmt.Errorf("booted version %q, want %q", got, want)
	}
	if failed != "" {
		return r, fmt.Errorf("in the guest, %q failed", failed)
	}
	if !r.Has("STRATA-SCRIPT-DONE rc=0") {
		return r, fmt.Errorf("the guest script did not finish")
	}
	return r, nil
}

// script is the control disk's run.sh for cmds: each command is shown
// ("DEMO# "), run, and its output shown ("DEMO| "), its exit status
// when not 0 ("DEMO! "); a "!" prefix marks an expected failure
// ("DEMO? "). The markers let the transcript pick the guest's lines out
// of a console that the kernel and systemd write to as well.
func script(cmds []string) string {
	var b strings.Builder
	b.WriteString(`set +x
x() {
	echo "DEMO# $2"
	(eval "$2") >/run/demo.out 2>&1
	rc=$?
	sed 's/^/DEMO| /' /run/demo.out
	[ $rc = 0 ] || echo "DEMO$1 exit status $rc"
}
`)
	for _, c := range cmds {
		mark := "!"
		if strings.HasPrefix(c, "!") {
			mark, c = "?", c[1:]
		}
		fmt.Fprintf(&b, "x '%s' '%s'\n", mark, strings.ReplaceAll(c, "'", `'\''`))
	}
	return b.String()
}

// transcript prints the interesting part of a boot's console: the
// agent's report, the guest's commands and their output, and the
// finalization at shutdown. It returns the first command that failed
// unexpectedly ("" when none).
func transcript(r *demoos.Result) (failed string) {
	last := ""
	for _, line := range r.Lines() {
		line = strings.TrimRight(line, " ")
		at := func(s string) (string, bool) {
			if i := strings.Index(line, s); i >= 0 {
				return line[i+len(s):], true
			}
			return "", false
		}
		if s, ok := at("DEMO# "); ok {
			last = s
			fmt.Println("  guest# " + s)
		} else if s, ok := at("DEMO| "); ok {
			fmt.Println("         " + s)
		} else if s, ok := at("DEMO? "); ok {
			fmt.Println("         (" + s + ", as expected)")
		} else if s, ok := at("DEMO! "); ok {
			fmt.Println("         (" + s + ")")
			if failed == "" {
				failed = last
			}
		} else if s, ok := at("STRATA-BOOTED "); ok {
			fmt.Println("  booted: " + s)
		} else if _, ok := at("STRATA-USR-READONLY"); ok {
			fmt.Println("  /usr is read-only")
		} else if s, ok := at("STRATA-HEALTH="); ok {
			fmt.Println("  strata-health.service: " + s + " (health checks passed; boot-complete.target reached)")
		} else if s, ok := at("STRATA-FAILED-UNIT "); ok {
			fmt.Println("  failed unit: " + s)
		} else if s, ok := at("Finalized deployment"); ok {
			fmt.Println("  at shutdown, strata-finalize-staged.service: Finalized deployment" + s)
		}
	}
	return failed
}

// showESP lists systemd-boot's entries on the ESP.
func (d *demo) showESP(m *testos.Machine) error {
	names, err := testos.ESPEntries(m.Disk)
	if err != nil {
		return err
	}
	fmt.Println("$ mdir -b -i " + rel(m.Disk) + "@@1M ::/loader/entries   # the ESP")
	for _, n := range names {
		fmt.Println("  " + n)
	}
	return nil
}

// reporter prints a cold compose's phases.
type reporter struct{ start time.Time }

func (p *reporter) Phase(name, unit string, total int64) {
	fmt.Printf("  compose: %s (%s)\n", name, time.Since(p.start).Round(time.Second))
}
func (p *reporter) Add(int64) {}
func (p *reporter) Done()     {}

func cached(t time.Time) string {
	if took := time.Since(t); took > 5*time.Second {
		return "composed in " + took.Round(time.Second).String()
	}
	return "from the cache"
}

// rel names p relative to the working directory when it is below it.
func rel(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

func indent(s, pre string) string {
	return pre + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pre) + "\n"
}
