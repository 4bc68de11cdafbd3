package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/strata-os/strata/progress"
)

// newReporter returns a progress bar on stderr when it is a terminal, and a
// silent reporter otherwise.
func newReporter(cmd *cobra.Command) progress.Reporter {
	if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &termReporter{w: f}
	}
	return progress.Nop{}
}

// termReporter redraws one status line at most ten times a second.
type termReporter struct {
	w     io.Writer
	mu    sync.Mutex
	name  string
	unit  string
	total int64
	n     atomic.Int64
	start time.Time
	last  time.Time
}

func (t *termReporter) Phase(name, unit string, total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.name, t.unit, t.total = name, unit, total
	t.n.Store(0)
	t.start = time.Now()
	t.last = time.Time{}
}

func (t *termReporter) Add(n int64) {
	v := t.n.Add(n)
	t.mu.Lock()
	defer t.mu.Unlock()
	if time.Since(t.last) < 100*time.Millisecond {
		return
	}
	t.last = time.Now()
	t.draw(v)
}

func (t *termReporter) draw(v int64) {
	rate := float64(v) / max(time.Since(t.start).Seconds(), 0.001)
	if t.total > 0 {
		pct := float64(v) * 100 / float64(t.total)
		const width = 30
		fill := int(pct / 100 * width)
		fill = min(max(fill, 0), width)
		bar := make([]byte, width)
		for i := range bar {
			bar[i] = ' '
			if i < fill {
				bar[i] = '='
			}
		}
		fmt.Fprintf(t.w, "\r\x1b[K%s [%s] %3.0f%% %d/%d %s (%.0f/s)", t.name, bar, pct, v, t.total, t.unit, rate)
		return
	}
	fmt.Fprintf(t.w, "\r\x1b[K%s: %d %s (%.0f/s)", t.name, v, t.unit, rate)
}

func (t *termReporter) Done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprint(t.w, "\r\x1b[K")
}
