package demoos

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"strings"
	"time"
)

// PowerCutOptions configure a power-cut run.
type PowerCutOptions struct {
	// Cuts is how many times the power is cut during a deploy.
	Cuts int
	// CrashSteps are failpoint names (STRATA_CRASH_AT): the first cuts
	// SIGKILL strata at each of these steps and power off at once
	// without syncing; the remaining cuts kill QEMU at random instants
	// while the deploy runs (stratified over its duration).
	CrashSteps []string
	// Seed makes the random instants reproducible.
	Seed int64
	// Log receives one line per cut; nil is quiet.
	Log io.Writer
}

// CutOutcome is one cut and the boot after it.
type CutOutcome struct {
	N      int
	How    string // "STEP" or "random +DELAY"
	From   string // version booted when the deploy started
	To     string // version being deployed
	Booted string // version the next boot came up in
	// Completed: the deploy had reported success before the cut, so the
	// next boot must be the new version (a finished deploy is durable).
	Completed bool
	Elapsed   time.Duration // wall time of the cut boot and the check boot
	Err       error         // nil when the cut was survived

	console string // of the boot that was cut
}

// PowerCutReport sums up a run.
type PowerCutReport struct {
	Outcomes []CutOutcome
	Survived int
	Deploy   time.Duration // how long an uninterrupted deploy took
}

// checkAndDeploy is the guest script of every power-cut boot: it checks
// the system the previous cut left (fsck and status must be clean), then
// deploys the other version, which the host interrupts.
const checkAndDeploy = `strata fsck >/tmp/fsck 2>&1; rc=$?
echo "STRATA-FSCK rc=$rc"
[ $rc = 0 ] || cat /tmp/fsck
strata status >/tmp/status 2>&1; rc=$?
echo "STRATA-STATUS rc=$rc"
[ $rc = 0 ] || cat /tmp/status
. /usr/lib/os-release
ref=demo/v$((3 - VERSION_ID))
echo "STRATA-DEPLOY-START $ref"
@CRASH@strata admin deploy --os=demo $ref >/tmp/deploy 2>&1; rc=$?
@AFTER@
echo "STRATA-DEPLOY-END rc=$rc"
[ $rc = 0 ] || cat /tmp/deploy
`

// AfterDeploy is a crash step of its own: the power goes right after the
// deploy reported success, before anything else syncs.
const AfterDeploy = "after-deploy"

func deployScript(crashStep string) string {
	s := checkAndDeploy
	if crashStep == AfterDeploy {
		s = strings.ReplaceAll(s, "@CRASH@", "")
		return strings.ReplaceAll(s, "@AFTER@", `echo "STRATA-CRASHED rc=$rc (after the deploy)"; poweroff -f -n`)
	}
	if crashStep == "" {
		s = strings.ReplaceAll(s, "@CRASH@", "")
		return strings.ReplaceAll(s, "@AFTER@\n", "")
	}
	s = strings.ReplaceAll(s, "@CRASH@", "STRATA_CRASH_AT="+crashStep+" ")
	// strata died at the step: cut the power now, dropping whatever the
	// page cache still holds.
	return strings.ReplaceAll(s, "@AFTER@", `echo "STRATA-CRASHED rc=$rc"; poweroff -f -n`)
}

// versionRef is the ref of a version in the power-cut sysroot's repo.
func versionRef(id string) string { return "demo/v" + id }

// PowerCuts builds one sysroot with strata (v1 and v2 committed, v1
// deployed) and chains boots on it: every boot checks what the previous
// cut left, then deploys the version it did not boot, and the power is
// cut during that deploy. A cut is survived when the next boot comes up
// in the old or the new version with clean `strata fsck` and `strata
// status`, and its deploy runs (a deploy that the cut did not stop, and
// the final uninterrupted one, must succeed). The run stops at the first
// cut not survived. An error means the run could not be set up.
func (l *Lab) PowerCuts(ctx context.Context, o PowerCutOptions) (*PowerCutReport, error) {
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	rng := rand.New(rand.NewSource(o.Seed))
	img := filepath.Join(l.Dir, "powercut.img")
	if err := l.NewSysroot(ctx, img, 400, ToolStrata); err != nil {
		return nil, err
	}
	err := l.Mounted(img, func(mnt string) error {
		repoPath := filepath.Join(mnt, "ostree/repo")
		for _, v := range []Version{{ID: "1"}, {ID: "2"}} {
			if _, err := l.Commit(ctx, ToolStrata, repoPath, versionRef(v.ID), v, StrataPrepareRoot); err != nil {
				return err
			}
		}
		_, err := l.Command(ctx, l.Strata, "admin", "deploy", "--sysroot="+mnt, "--os="+OS, versionRef("1"))
		return err
	})
	if err != nil {
		return nil, err
	}
	// Two uninterrupted deploys (v2 from v1, then v1 again from v2, which
	// also prunes the oldest deployment as every later deploy does)
	// measure how long a deploy takes; the shorter one counts (the
	// longer one is usually slowed down by the machine's other work).
	rep := &PowerCutReport{}
	for _, c := range [][2]string{{"1", "2"}, {"2", "1"}} {
		r, err := l.Boot(ctx, img, BootOptions{Script: deployScript("")})
		if err != nil {
			return nil, fmt.Errorf("calibration boot: %w", err)
		}
		start, ok1 := r.Mark("STRATA-DEPLOY-START")
		end, ok2 := r.Mark("STRATA-DEPLOY-END rc=0")
		if !ok1 || !ok2 || r.BootedVersion() != c[0] || !r.Has("STRATA-FSCK rc=0") || !r.Has("STRATA-STATUS rc=0") {
			return nil, fmt.Errorf("calibration boot did not deploy v%s from v%s cleanly:\n%s", c[1], c[0], r.Console)
		}
		if d := end - start; rep.Deploy == 0 || d < rep.Deploy {
			rep.Deploy = d
		}
	}
	logf("power cut: an uninterrupted deploy takes %s", rep.Deploy.Round(time.Millisecond))

	// check judges a boot that follows a cut from -> to.
	check := func(r *BootResult, err error, from, to string) error {
		switch got := versionOf(r); {
		case err != nil:
			return err
		case got != from && got != to:
			return fmt.Errorf("came up in version %q, want %s or %s", got, from, to)
		case !r.Has("STRATA-FSCK rc=0"):
			return fmt.Errorf("strata fsck failed")
		case !r.Has("STRATA-STATUS rc=0"):
			return fmt.Errorf("strata status failed")
		case !r.Has("STRATA-DEPLOY-START " + versionRef(otherVersion(got))):
			return fmt.Errorf("the deploy of the other version did not start")
		}
		for _, line := range r.Lines() {
			if strings.Contains(line, "STRATA-DEPLOY-END rc=") && !strings.Contains(line, "STRATA-DEPLOY-END rc=0") {
				return fmt.Errorf("the deploy failed: %s", strings.TrimSpace(line))
			}
		}
		return nil
	}
	// The random instants are stratified: cut k of m falls in the k-th
	// m-th of 1.25 times the calibrated duration (deploys vary, and a cut
	// just after a deploy finished checks that it was durable), so that
	// every phase of the deploy is hit; the order is shuffled.
	m := o.Cuts - len(o.CrashSteps)
	var delays []time.Duration
	window := float64(rep.Deploy) * 1.25
	for k := 0; k < m; k++ {
		delays = append(delays, time.Duration((float64(k)+rng.Float64())/float64(m)*window))
	}
	rng.Shuffle(len(delays), func(i, j int) { delays[i], delays[j] = delays[j], delays[i] })
	var prev *CutOutcome
	for n := 1; n <= o.Cuts+1; n++ {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		last := n == o.Cuts+1
		bo := BootOptions{Script: deployScript("")}
		how := "none (final check)"
		switch {
		case last:
		case n <= len(o.CrashSteps):
			how = o.CrashSteps[n-1]
			bo.Script = deployScript(how)
		default:
			d := delays[0]
			delays = delays[1:]
			how = "random +" + d.Round(time.Millisecond).String()
			bo.Cut = &PowerCut{Marker: "STRATA-DEPLOY-START", Delay: d}
		}
		t0 := time.Now()
		r, err := l.Boot(ctx, img, bo)
		booted := versionOf(r)
		if prev != nil {
			// This boot is the check of the previous cut.
			prev.Booted = booted
			prev.Err = check(r, err, prev.From, prev.To)
			if prev.Err == nil && prev.Completed && booted != prev.To {
				prev.Err = fmt.Errorf("the deploy of v%s had finished before the cut, but the next boot came up in v%s", prev.To, booted)
			}
			prev.Elapsed += time.Since(t0)
			if prev.Err != nil {
				logf("cut %d (%s, v%s -> v%s): NOT SURVIVED: %v", prev.N, prev.How, prev.From, prev.To, prev.Err)
				logf("console of the boot that was cut:\n%s", prev.console)
				if r != nil {
					var names []string
					for _, e := range r.Boot.Entries {
						names = append(names, e.File)
					}
					logf("the next boot: the loader chose %s among %v; console:\n%s", r.Boot.Entry.File, names, r.Console)
				}
				return rep, nil
			}
			rep.Survived++
			logf("cut %d (%s, v%s -> v%s): next boot v%s, fsck and status clean", prev.N, prev.How, prev.From, prev.To, booted)
		} else if err := check(r, err, "1", "1"); err != nil { // the calibration left v1 the default
			return rep, fmt.Errorf("first boot: %w", err)
		}
		if last {
			if !r.Has("STRATA-DEPLOY-END rc=0") {
				return rep, fmt.Errorf("final deploy did not complete:\n%s", r.Console)
			}
			break
		}
		// A deploy that ran to its end (the step was not reached, or the
		// cut came late) reported success before the power went.
		completed := r.Has("STRATA-DEPLOY-END rc=0") || r.Has("STRATA-CRASHED rc=0")
		if strings.HasPrefix(how, "random") && completed {
			how += " (after the deploy ended)"
		}
		if !strings.HasPrefix(how, "random") && how != AfterDeploy && !r.Has("STRATA-CRASHED rc=137") {
			how += " (step not reached)"
		}
		rep.Outcomes = append(rep.Outcomes, CutOutcome{N: n, How: how, From: booted, To: otherVersion(booted), Completed: completed, Elapsed: time.Since(t0), console: r.Console})
		prev = &rep.Outcomes[len(rep.Outcomes)-1]
	}
	return rep, nil
}

func otherVersion(v string) string {
	if v == "1" {
		return "2"
	}
	return "1"
}

func versionOf(r *BootResult) string {
	if r == nil || r.Result == nil {
		return ""
	}
	return r.BootedVersion()
}
