// Package health runs greenboot-compatible health checks on a booted
// system and acts on the result at once: all required checks pass -> the
// boot entry is blessed (sysroot.BootComplete); one fails -> the entry is
// marked bad (sysroot.MarkBootBad) so the boot loader starts the previous
// deployment at the next boot, which the caller triggers (one reboot,
// where greenboot needs up to three). The outcome is recorded in a state
// file that `strata status` reads (docs/install.md, "Health checks").
//
// Check directories, as greenboot's: required.d and wanted.d under
// /etc/greenboot/check and /usr/lib/greenboot/check, then green.d (after
// success) or red.d (after failure) under /etc/greenboot and
// /usr/lib/greenboot. Every executable regular file runs in name order; a
// name in /etc hides the same name in /usr/lib.
package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/sysroot"
)

// DefaultStateFile records the last outcome (in the stateroot's shared
// /var, so the previous deployment sees what the failed one recorded).
const DefaultStateFile = "/var/lib/strata/health.json"

// Options configure Check. The zero value checks the running system.
type Options struct {
	// Root prefixes the check directories ("" for /).
	Root string
	// StateFile, default DefaultStateFile.
	StateFile string
	// Timeout of each check, default 5 minutes.
	Timeout time.Duration
	// Warner receives wanted checks that failed and red/green scripts
	// that failed.
	Warner progress.Warner
}

// State is the recorded outcome of the last check run.
type State struct {
	// Deployment is the checked deployment ($csum.$serial).
	Deployment string `json:"deployment"`
	// Healthy is true when every required check passed.
	Healthy bool `json:"healthy"`
	// FailedCheck names the first required check that failed (its path).
	FailedCheck string `json:"failed-check,omitempty"`
	// Output is the end of the failed check's output.
	Output string `json:"output,omitempty"`
	// Time of the run (RFC 3339).
	Time string `json:"time"`
	// MarkedBad reports that the entry was marked bad.
	MarkedBad bool `json:"marked-bad,omitempty"`
	// LastFailure is the newest failed run before this healthy one: the
	// boot that failed reboots into the previous deployment, whose own
	// check passes, and strata status must still say which check failed
	// (while that deployment exists).
	LastFailure *State `json:"last-failure,omitempty"`
}

// Failure is the failed run st records: st itself when unhealthy, else
// its LastFailure (nil when none).
func (st *State) Failure() *State {
	if st == nil {
		return nil
	}
	if !st.Healthy {
		return st
	}
	return st.LastFailure
}

// Result is what Check did.
type Result struct {
	State
	// Ran lists the checks run, in order.
	Ran []string
}

// scripts lists the executables of the directories (rel under
// /etc/greenboot and /usr/lib/greenboot), /etc hiding /usr/lib by name.
func scripts(root, rel string) []string {
	byName := map[string]string{}
	for _, base := range []string{"usr/lib/greenboot", "etc/greenboot"} {
		dir := filepath.Join(root, "/", base, rel)
		des, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, de := range des {
			p := filepath.Join(dir, de.Name())
			st, err := os.Stat(p)
			if err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
				continue
			}
			byName[de.Name()] = p
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = byName[n]
	}
	return out
}

func runScript(ctx context.Context, p string, timeout time.Duration) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, p)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	s := out.String()
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	if cctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	return s, err
}

// Check runs the checks on the booted deployment of s and blesses or
// marks its boot (see the package comment). It returns an error only
// when it could not do its job; an unhealthy system is a Result with
// Healthy false.
func Check(ctx context.Context, s *sysroot.Sysroot, o Options) (*Result, error) {
	if o.StateFile == "" {
		o.StateFile = filepath.Join(o.Root, DefaultStateFile)
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	w := progress.WarnerOrNop(o.Warner)
	b := s.Booted()
	if b == nil {
		return nil, fmt.Errorf("health check: %w", sysroot.ErrNotBooted)
	}
	res := &Result{State: State{Deployment: b.Name(), Healthy: true, Time: time.Now().UTC().Format(time.RFC3339)}}
	for _, p := range scripts(o.Root, "check/required.d") {
		res.Ran = append(res.Ran, p)
		out, err := runScript(ctx, p, o.Timeout)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			res.Healthy, res.FailedCheck, res.Output = false, strings.TrimPrefix(p, o.Root), out
			break
		}
	}
	if res.Healthy {
		for _, p := range scripts(o.Root, "check/wanted.d") {
			res.Ran = append(res.Ran, p)
			if _, err := runScript(ctx, p, o.Timeout); err != nil {
				w.Warn(fmt.Errorf("wanted health check %s failed: %v", p, err))
			}
		}
	}
	// Record first: the outcome must survive the reboot that follows.
	if !res.Healthy {
		res.MarkedBad = true
	} else if prev, err := ReadState(o.StateFile); err != nil {
		w.Warn(fmt.Errorf("the previous health state: %w", err))
	} else if f := prev.Failure(); f != nil {
		kept := *f
		kept.LastFailure = nil
		res.LastFailure = &kept
	}
	if err := writeState(o.StateFile, res.State); err != nil {
		return nil, err
	}
	if res.Healthy {
		if _, err := s.BootComplete(ctx); err != nil {
			return nil, err
		}
	} else if err := s.MarkBootBad(ctx); err != nil {
		return nil, err
	}
	rel := "green.d"
	if !res.Healthy {
		rel = "red.d"
	}
	for _, p := range scripts(o.Root, rel) {
		res.Ran = append(res.Ran, p)
		if _, err := runScript(ctx, p, o.Timeout); err != nil {
			w.Warn(fmt.Errorf("%s script %s failed: %v", rel, p, err))
		}
	}
	return res, nil
}

func writeState(path string, st State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.MkdirAllSync(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFile(path, append(data, '\n'), 0o644)
}

// maxStateFile bounds the state file (a check's output tail and one
// earlier failure).
const maxStateFile = 1 << 20

// ReadState reads the recorded outcome; nil without one.
func ReadState(path string) (*State, error) {
	if path == "" {
		path = DefaultStateFile
	}
	// Bounded, regular files only: Check reads it on every boot before
	// writing the new outcome.
	data, err := fsutil.ReadFileLimit(path, maxStateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &st, nil
}
