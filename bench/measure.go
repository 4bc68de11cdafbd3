package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// sample is what one timed run of a command costs.
type sample struct {
	Wall      time.Duration
	CPU       time.Duration    // user + system, the command and its waited-for children
	Sys       time.Duration    // the system part of CPU
	MaxRSSKiB int64            // ru_maxrss from wait4, in KiB on Linux
	Counters  map[string]int64 // from the trial's Counters, if any
}

// timedRun runs bin with args, timing it from start to exit, and returns its
// cost and standard output. Before starting it flushes dirty pages (sync) so
// that write-back left by earlier runs is not charged to this one. A non-zero
// exit is an error carrying the tail of standard error. env is added to
// the harness's environment.
func timedRun(ctx context.Context, bin string, args, env []string) (sample, []byte, error) {
	syscall.Sync()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, stdout.Bytes(), commandError(err, &stderr)
	}
	s := sample{Wall: wall}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.MaxRSSKiB = ru.Maxrss
		s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		s.Sys = time.Duration(ru.Stime.Nano())
	}
	return s, stdout.Bytes(), nil
}

// run runs an untimed helper command (init, a fixture commit, ...) and
// returns its standard output.
func run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), commandError(err, &stderr))
	}
	return stdout.Bytes(), nil
}

// commandError folds the last lines of a failed command's standard error
// into its error so that a report can say why it failed.
func commandError(err error, stderr *bytes.Buffer) error {
	msg := strings.TrimSpace(stderr.String())
	if lines := strings.Split(msg, "\n"); len(lines) > 3 {
		msg = strings.Join(lines[len(lines)-3:], "\n")
	}
	if len(msg) > 400 {
		msg = "..." + msg[len(msg)-400:]
	}
	var ee *exec.ExitError
	if msg != "" && errors.As(err, &ee) {
		return fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

// median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none.
func median[T int64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// counterNames lists the counter names of the samples, sorted.
func counterNames(samples []sample) []string {
	var names []string
	for _, x := range samples {
		for k := range x.Counters {
			if !slices.Contains(names, k) {
				names = append(names, k)
			}
		}
	}
	slices.Sort(names)
	return names
}

// countersText renders counters for the progress log: " (k=v, ...)".
func countersText(c map[string]int64) string {
	if len(c) == 0 {
		return ""
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, c[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
