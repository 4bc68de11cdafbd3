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
