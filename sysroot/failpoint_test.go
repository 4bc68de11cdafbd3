package sysroot

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/fsutil"
)

var errInjected = errors.New("injected failure")

// setFailpoint installs fn as the fsutil failpoint until the test ends.
func setFailpoint(t *testing.T, fn func(step string) error) {
	fsutil.Failpoint.Store(&fn)
	t.Cleanup(func() { fsutil.Failpoint.Store(nil) })
}

// TestDeployInterruptedAtEachStep fails a deploy at every sysroot step in
// turn and checks that the sysroot still loads with the old or the new
// deployment list, that cleanup leaves nothing of the attempt behind, and
// that deploying again succeeds.
func TestDeployInterruptedAtEachStep(t *testing.T) {
	setup := func(t *testing.T) (*fixture, *Sysroot) {
		f := newFixture(t, 0)
		f.commit(treeSpec{version: "1"}, t0)
		s := f.open()
		f.deploy(s, DeployOptions{})
		f.commit(treeSpec{version: "2", kernel: "kernel-2\n"}, t0.Add(time.Hour))
		return f, s
	}
	// Record the steps of an uninterrupted deploy.
	var steps []string
	{
		f, s := setup(t)
		setFailpoint(t, func(step string) error {
			if strings.HasPrefix(step, "sysroot:") {
				steps = append(steps, step)
			}
			return nil
		})
		f.deploy(s, DeployOptions{})
		fsutil.Failpoint.Store(nil)
	}
	if len(steps) < 10 {
		t.Fatalf("only %d steps recorded: %v", len(steps), steps)
	}
	for i, step := range steps {
		t.Run(fmt.Sprintf("%02d-%s", i, step), func(t *testing.T) {
			f, s := setup(t)
			old := names(s)
			n := 0
			setFailpoint(t, func(st string) error {
				if strings.HasPrefix(st, "sysroot:") {
					if n == i {
						n++
						return errInjected
					}
					n++
				}
				return nil
			})
			_, err := s.Deploy(context.Background(), DeployOptions{OS: "testos", Revision: "testos/stable"})
			fsutil.Failpoint.Store(nil)
			if !errors.Is(err, errInjected) {
				t.Fatalf("deploy: %v", err)
			}
			s = f.open()
			got := names(s)
			if fmt.Sprint(got) != fmt.Sprint(old) && (len(got) != 2 || got[1] != old[0]) {
				t.Fatalf("after the failure: %v (before: %v)", got, old)
			}
			if _, err := s.Cleanup(context.Background(), true); err != nil {
				t.Fatalf("cleanup: %v", err)
			}
			dirs, _ := filepath.Glob(filepath.Join(f.path, "ostree/deploy/testos/*"))
			deploys, _ := filepath.Glob(filepath.Join(f.path, "ostree/deploy/testos/deploy/*"))
			boots, _ := filepath.Glob(filepath.Join(f.path, "boot/ostree/*"))
			loaders, _ := filepath.Glob(filepath.Join(f.path, "boot/loader.*"))
			if len(dirs) != 2 || len(deploys) != 2*len(got) || len(boots) != len(got) || len(loaders) != 1 {
				t.Fatalf("left behind: %v %v %v %v", dirs, deploys, boots, loaders)
			}
			if len(got) == 1 {
				f.deploy(s, DeployOptions{})
				if len(s.Deployments()) != 2 {
					t.Fatalf("re-run: %v", names(s))
				}
			}
		})
	}
}

// TestStepsListed: every failpoint in the code is in Steps.
func TestStepsListed(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	known := map[string]bool{}
	for _, s := range Steps {
		known[s] = true
	}
	n := 0
	for _, p := range files {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		for _, m := range failpointRe.FindAllStringSubmatch(readFile(t, p), -1) {
			n++
			if !known[m[1]] {
				t.Errorf("%s: step %s missing from Steps", p, m[1])
			}
		}
	}
	if n < len(Steps) {
		t.Errorf("found %d failpoints in the code, Steps lists %d", n, len(Steps))
	}
}

var failpointRe = regexp.MustCompile(`CheckFailpoint\("(sysroot:[a-z-]+)"\)`)

// TestDeployDurableOrder records every durable step of a deploy (the
// sysroot's checkpoints and the fsutil steps inside them) and holds their
// order as docs/design.md §7 states it: the deployment is synced before it
// is renamed into place; it is in place before the deployment refs, which
// come before the boot entries; the entries, boot files and link farm are
// all written before the syncfs of the sysroot; the switch (rename of
// boot/loader) comes after that syncfs, is followed by an fsync of boot/,
// and nothing of the new boot version is written after it. Moving or
// dropping a sync fails it.
func TestDeployDurableOrder(t *testing.T) {
	f := newFixture(t, -1)
	f.commit(treeSpec{version: "1"}, t0)
	s := f.open()
	f.deploy(s, DeployOptions{})
	f.commit(treeSpec{version: "2", kernel: "kernel-2\n"}, t0.Add(time.Hour))
	nbv := 1 - s.bootVersion
	var steps []string
	setFailpoint(t, func(step string) error {
		steps = append(steps, strings.ReplaceAll(step, f.path, "<S>"))
		return nil
	})
	d := f.deploy(s, DeployOptions{})
	fsutil.Failpoint.Store(nil)

	// find returns the indexes of the steps matching re, up to the
	// switch (cleanup after it rewrites refs and removes the old version).
	upto := len(steps)
	find := func(re string) []int {
		var out []int
		rx := regexp.MustCompile("^(?:" + re + ")$")
		for i, st := range steps[:upto] {
			if rx.MatchString(st) {
				out = append(out, i)
			}
		}
		if len(out) == 0 {
			t.Fatalf("no step matches %s in %q", re, steps)
		}
		return out
	}
	first := func(re string) int { return find(re)[0] }
	last := func(re string) int { ix := find(re); return ix[len(ix)-1] }
	before := func(a, b int, what string) {
		t.Helper()
		if a >= b {
			t.Errorf("%s: step %d %q is not before step %d %q", what, a, steps[a], b, steps[b])
		}
	}
	swap := first("rename:<S>/boot/loader")
	upto = swap + 1
	deployDir := regexp.QuoteMeta("<S>/ostree/deploy/testos/")
	name := regexp.QuoteMeta(d.Name())
	staging := deployDir + `\.strata-staging-` + name
	published := first("rename:" + deployDir + "deploy/" + name)
	refs := fmt.Sprintf("<S>/ostree/repo/refs/heads/ostree/%d/", nbv)
	entries := fmt.Sprintf("<S>/boot/loader\\.%d/entries/", nbv)
	syncfs := last("syncfs:<S>")

	before(last("syncfs:"+staging), published, "the deployment is synced before it is renamed into place")
	before(published, first("(write|rename):"+refs+".*"), "the deployment is in place before its refs")
	before(last("rename:"+refs+".*"), first("write:"+entries+".*"), "the deployment refs are written before the boot entries")
	before(last("write:"+deployDir+"deploy/"+name+`\.origin`), first("write:"+entries+".*"), "the origin file is written before the boot entries")
	before(last("(write|fsync|rename):"+entries+".*"), syncfs, "the boot entries are written before the sysroot is synced")
	before(last("syncdir:"+fmt.Sprintf("<S>/boot/loader\\.%d", nbv)), syncfs, "boot/loader.N is synced before the switch")
	before(last("syncdir:<S>/boot/ostree/.*"), syncfs, "the boot files are in place before the sysroot is synced")
	before(last(fmt.Sprintf("rename:<S>/ostree/boot\\.%d", nbv)), syncfs, "the link farm is switched before the sysroot is synced")
	before(syncfs, swap, "the sysroot is synced before the boot/loader swap")
	if swap+1 >= len(steps) || steps[swap+1] != "syncdir:<S>/boot" {
		t.Errorf("boot/ is not fsynced right after the swap: %q", steps[swap:])
	}
	for _, st := range steps[swap+1:] {
		if st == "rename:<S>/boot/loader" {
			t.Errorf("boot/loader renamed twice: %q", steps)
		}
		if strings.Contains(st, fmt.Sprintf("/boot/loader.%d", nbv)) || strings.Contains(st, fmt.Sprintf("/ostree/boot.%d", nbv)) ||
			(strings.HasPrefix(st, "write:") && strings.Contains(st, "/ostree/deploy/")) {
			t.Errorf("%q written after the switch", st)
		}
	}
}
