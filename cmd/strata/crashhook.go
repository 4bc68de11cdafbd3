//go:build strata_crashtest

// The kill hook of the crash tests. It is built only with
// `-tags strata_crashtest` (cmd/strata's crash tests and the QEMU power-cut
// lab build the binary so): a release build (`go build ./cmd/strata`)
// contains neither the hook nor the variable's name.

package main

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/strata-os/strata/fsutil"
)

func init() {
	installCrashHook(os.Getenv("STRATA_CRASH_AT"))
}

// installCrashHook makes the process SIGKILL itself at a failpoint, for
// kill-based and power-cut tests: STRATA_CRASH_AT=STEP kills at the first
// time the durable step STEP (e.g. "sysroot:swap", see sysroot.Steps) is
// reached, STRATA_CRASH_AT=STEP@N at the Nth time. Nothing happens when
// the variable is empty.
func installCrashHook(spec string) {
	if spec == "" {
		return
	}
	step, nth := spec, 1
	if i := strings.LastIndexByte(spec, '@'); i > 0 {
		if n, err := strconv.Atoi(spec[i+1:]); err == nil && n > 0 {
			step, nth = spec[:i], n
		}
	}
	var mu sync.Mutex
	seen := 0
	f := func(s string) error {
		if s != step {
			return nil
		}
		mu.Lock()
		seen++
		hit := seen == nth
		mu.Unlock()
		if hit {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns: the signal is on its way
		}
		return nil
	}
	fsutil.Failpoint.Store(&f)
}
