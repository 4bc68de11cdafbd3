// Command demo is `make demo`: it builds two versions of the demo OS,
// installs version 1 on an ext4 disk with strata, boots it in QEMU
// through a BLS boot loader with boot counting, updates it to version 2
// from a repository on a second disk from inside the guest, reboots,
// rolls back and reboots again, printing a short transcript.
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
)

// guestHelpers start every guest script: x shows a command, then runs it.
const guestHelpers = `x() { echo "guest# $1"; eval "$1" 2>&1 | sed 's/^/       /'; }
`

// The guest's side of the story, one script per boot.
const (
	boot1 = guestHelpers + `x 'grep VERSION_ID /usr/lib/os-release'
x 'touch /usr/bin/x || echo "(/usr is read-only)"'
x 'echo my-device > /etc/hostname'
x 'echo "answer=42" > /etc/demo.conf'
x 'mkdir -p /var/lib/demo && echo "written on v1" > /var/lib/demo/data'
x 'strata pull-local /run/ctl/repo ` + demoos.Ref + `'
x 'strata admin deploy --os=demo ` + demoos.Ref + `'
x 'strata status'
`
	boot2 = guestHelpers + `x 'grep VERSION_ID /usr/lib/os-release'
x 'cat /etc/hostname /etc/demo.conf /etc/motd'
x 'cat /var/lib/demo/data'
x 'strata status'
x 'strata rollback'
`
	boot3 = guestHelpers + `x 'grep VERSION_ID /usr/lib/os-release'
x 'cat /etc/hostname /var/lib/demo/data'
x 'strata status'
`
)

func main() {
	dir := flag.String("dir", "demo/out", "scratch directory (emptied first)")
	verbose := flag.Bool("v", false, "print the whole serial console")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n\033[1m== %s\033[0m\n", fmt.Sprintf(format, args...))
}

func run(ctx context.Context, dir string, verbose bool) error {
	start := time.Now()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(abs); err != nil {
		return err
	}
	step("Build strata (static) and the demo OS, versions 1 and 2")
	l, err := demoos.NewLab(ctx, abs)
	if err != nil {
		return err
	}
	l.Log = os.Stdout
	if verbose {
		l.Console = os.Stdout
	}
	v1, v2 := demoos.Version{ID: "1"}, demoos.Version{ID: "2"}
	for _, v := range []demoos.Version{v1, v2} {
		tree, err := l.Tree(v, demoos.StrataPrepareRoot)
		if err != nil {
			return err
		}
		n, size := treeSize(tree)
		fmt.Printf("v%s: %d files, %.1f MB: busybox, strata, kernel %s, initramfs (strata prepare-root)\n", v.ID, n, float64(size)/(1<<20), l.Kernel.Version)
	}

	step("Make an ext4 disk with a sysroot; commit and deploy v1 with strata")
	img := filepath.Join(abs, "disk.img")
	if err := l.NewSysroot(ctx, img, 400, demoos.ToolStrata); err != nil {
		return err
	}
	if _, err := l.CommitDeploy(ctx, img, demoos.ToolStrata, v1, demoos.StrataPrepareRoot); err != nil {
		return err
	}
	if err := showEntries(l, img); err != nil {
		return err
	}

	step("Put v2 in a repository on a second disk (the update medium; the guest has no network)")
	ctl := filepath.Join(abs, "update-disk")
	if _, err := l.Command(ctx, l.Strata, "--repo="+filepath.Join(ctl, "repo"), "init", "--mode=archive"); err != nil {
		return err
	}
	if _, err := l.Commit(ctx, demoos.ToolStrata, filepath.Join(ctl, "repo"), demoos.Ref, v2, demoos.StrataPrepareRoot); err != nil {
		return err
	}

	step("Boot 1: v1; edit /etc, write /var, pull and deploy v2")
	if err := boot(ctx, l, img, demoos.BootOptions{Script: boot1, CtlDir: ctl}, "1", verbose); err != nil {
		return err
	}
	if err := showEntries(l, img); err != nil {
		return err
	}
	step("Boot 2: v2 with the local /etc and /var kept; roll back")
	if err := boot(ctx, l, img, demoos.BootOptions{Script: boot2}, "2", verbose); err != nil {
		return err
	}
	step("Boot 3: v1 again")
	if err := boot(ctx, l, img, demoos.BootOptions{Script: boot3}, "1", verbose); err != nil {
		return err
	}
	fmt.Printf("\ndemo complete in %s: v1 installed, updated to v2 from inside the guest, rolled back to v1; local /etc and /var kept throughout.\n", time.Since(start).Round(time.Second))
	return nil
}

// boot boots the disk once and prints the interesting part of the
// console: the initramfs and the guest's own lines.
func boot(ctx context.Context, l *demoos.Lab, img string, o demoos.BootOptions, want string, verbose bool) error {
	r, err := l.Boot(ctx, img, o)
	if err != nil {
		if r != nil && !verbose {
			fmt.Println(r.Console)
		}
		return err
	}
	if !verbose {
		for _, line := range r.Lines() {
			line = strings.TrimRight(line, " ")
			if i := strings.Index(line, "STRATA-"); i > 0 {
				line = line[i:] // firmware output ran into it
			}
			switch {
			case line == "", strings.HasPrefix(line, "SeaBIOS"), strings.HasPrefix(line, "Booting from"),
				strings.HasPrefix(line, "["), strings.HasPrefix(line, "STRATA-POWEROFF"), strings.HasPrefix(line, "STRATA-SCRIPT-DONE rc=0"):
				continue
			case strings.HasPrefix(line, "STRATA-INITRAMFS: "):
				line = "initramfs: " + strings.TrimPrefix(line, "STRATA-INITRAMFS: ")
			case strings.HasPrefix(line, "STRATA-BOOTED "):
				line = "booted: " + strings.TrimPrefix(line, "STRATA-BOOTED ")
			case line == "STRATA-BOOT-COMPLETE":
				line = "strata admin boot-complete: this boot is good"
			}
			fmt.Println("  | " + line)
		}
	}
	fmt.Printf("(boot took %s)\n", r.Elapsed.Round(100*time.Millisecond))
	if got := r.BootedVersion(); got != want {
		return fmt.Errorf("booted version %q, want %q", got, want)
	}
	if r.Has("STRATA-SCRIPT-DONE") && !r.Has("STRATA-SCRIPT-DONE rc=0") {
		return fmt.Errorf("the guest script failed")
	}
	return nil
}

// showEntries prints the sysroot's boot entries, the default first.
func showEntries(l *demoos.Lab, img string) error {
	return l.Mounted(img, func(mnt string) error {
		es, err := demoos.Entries(mnt)
		if err != nil {
			return err
		}
		target, _ := os.Readlink(filepath.Join(mnt, "boot/loader"))
		fmt.Printf("boot entries (boot/loader -> %s), as the loader orders them:\n", target)
		for _, e := range es {
			fmt.Printf("  %-28s version %s  %s\n", e.File, e.Version, e.Title)
		}
		return nil
	})
}

func treeSize(dir string) (n int, size int64) {
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n++
			size += info.Size()
		}
		return nil
	})
	return n, size
}
