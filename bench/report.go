package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

type report struct {
	Date        string        `json:"date"`
	Host        string        `json:"host"`
	Ostree      binaryInfo    `json:"ostree"`
	Strata      binaryInfo    `json:"strata"`
	Runs        int           `json:"runs"`
	Warmup      int           `json:"warmup"`
	Timestamp   string        `json:"commit_timestamp"`
	Trees       []*treeReport `json:"trees"`
	Interrupted bool          `json:"interrupted,omitempty"`
}

type binaryInfo struct {
	Path    string `json:"path"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

type treeReport struct {
	Name     string     `json:"name"`
	Desc     string     `json:"description"`
	Dir      string     `json:"dir,omitempty"`
	Files    int        `json:"files"`
	Dirs     int        `json:"dirs"`
	Symlinks int        `json:"symlinks"`
	Bytes    int64      `json:"bytes"`
	Ops      []opReport `json:"ops"`
	Error    string     `json:"error,omitempty"`
	// OSChanged and OSChangedBytes: the files the v2 os tree (update)
	// rewrote, and their size.
	OSChanged      int   `json:"os_v2_changed_files,omitempty"`
	OSChangedBytes int64 `json:"os_v2_changed_bytes,omitempty"`
}

type opReport struct {
	Name   string     `json:"name"`
	Desc   string     `json:"description"`
	Ostree sideReport `json:"ostree"`
	Strata sideReport `json:"strata"`
	// Ratio and RSSRatio are strata/ostree; absent when either failed.
	Ratio    *float64 `json:"ratio,omitempty"`
	RSSRatio *float64 `json:"rss_ratio,omitempty"`
	// Same says whether both produced the same result token: "yes", "no",
	// or "" when either has none.
	Same string `json:"same_result,omitempty"`
}

type sideReport struct {
	OK           bool      `json:"ok"`
	MedianSec    float64   `json:"median_sec,omitempty"`
	MedianCPUSec float64   `json:"median_cpu_sec,omitempty"`
	MedianSysSec float64   `json:"median_sys_sec,omitempty"` // the system part of CPU
	PeakRSSKiB   int64     `json:"peak_rss_kib,omitempty"`
	WallSec      []float64 `json:"wall_sec,omitempty"`
	CPUSec       []float64 `json:"cpu_sec,omitempty"`
	SysSec       []float64 `json:"sys_sec,omitempty"`
	MaxRSSKiB    []int64   `json:"max_rss_kib,omitempty"`
	Result       string    `json:"result,omitempty"`
	Error        string    `json:"error,omitempty"`
	// Counters are medians of the runs' counters (HTTP requests and bytes
	// served for the pull ops); CounterRuns has every run's.
	Counters    map[string]int64   `json:"counters,omitempty"`
	CounterRuns []map[string]int64 `json:"counter_runs,omitempty"`
}

func (r *opReport) compare() {
	if r.Ostree.OK && r.Strata.OK {
		x := r.Strata.MedianSec / r.Ostree.MedianSec
		r.Ratio = &x
		if r.Ostree.PeakRSSKiB > 0 {
			y := float64(r.Strata.PeakRSSKiB) / float64(r.Ostree.PeakRSSKiB)
			r.RSSRatio = &y
		}
	}
	a, b := r.Ostree.Result, r.Strata.Result
	switch {
	case a == "" || b == "" || strings.HasPrefix(a, "error:") || strings.HasPrefix(b, "error:"):
	case a == b:
		r.Same = "yes"
	default:
		r.Same = "no"
	}
}

func (r *report) json() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# strata vs ostree\n\n")
	fmt.Fprintf(&b, "- date: %s; host: %s\n", r.Date, r.Host)
	fmt.Fprintf(&b, "- ostree: `%s` %s\n", r.Ostree.Path, r.Ostree.Version)
	fmt.Fprintf(&b, "- strata: `%s` %s\n", r.Strata.Path, r.Strata.Version)
	if r.Strata.Error != "" {
		fmt.Fprintf(&b, "- strata: %s\n", oneLine(r.Strata.Error))
	}
	fmt.Fprintf(&b, "- %d measured runs per op and binary after %d warm-up, alternating which binary runs first; "+
		"times are medians of wall-clock time (page cache warm, `sync` before each run); "+
		"CPU is the median user+system time, system in parentheses; "+
		"peak RSS is the largest ru_maxrss of the measured runs; ratios are strata/ostree (below 1: strata faster or smaller); "+
		"same result: equal commit checksum (`--timestamp=%s`), equal checked-out tree, or both fsck passes.\n",
		r.Runs, r.Warmup, r.Timestamp)
	if r.Interrupted {
		fmt.Fprintf(&b, "- **interrupted**: figures are partial\n")
	}
	for _, t := range r.Trees {
		fmt.Fprintf(&b, "\n## %s: %s\n\n", t.Name, t.Desc)
		if t.Error != "" {
			fmt.Fprintf(&b, "tree: %s\n", oneLine(t.Error))
			continue
		}
		fmt.Fprintf(&b, "%d files, %d directories, %d symlinks, %s (`%s`)\n\n",
			t.Files, t.Dirs, t.Symlinks, mib(t.Bytes>>10), t.Dir)
		b.WriteString("| op | ostree median | strata median | ratio (strata/ostree) | ostree CPU (sys) | strata CPU (sys) | ostree peak RSS | strata peak RSS | RSS ratio | same result |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n")
		var errs []string
		for _, o := range t.Ops {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", o.Name,
				secs(o.Ostree), secs(o.Strata), ratio(o.Ratio), cpu(o.Ostree), cpu(o.Strata),
				rss(o.Ostree), rss(o.Strata), ratio(o.RSSRatio), orDash(o.Same))
			for _, s := range []struct {
				name string
				r    sideReport
			}{{"ostree", o.Ostree}, {"strata", o.Strata}} {
				if s.r.Error != "" {
					errs = append(errs, fmt.Sprintf("- %s: %s: %s", o.Name, s.name, oneLine(s.r.Error)))
				} else if strings.HasPrefix(s.r.Result, "error:") {
					errs = append(errs, fmt.Sprintf("- %s: %s: result: %s", o.Name, s.name, oneLine(s.r.Result)))
				}
			}
			if o.Same == "no" {
				errs = append(errs, fmt.Sprintf("- %s: results differ: ostree %s, strata %s", o.Name, o.Ostree.Result, o.Strata.Result))
			}
		}
		if len(errs) > 0 {
			b.WriteString("\n" + strings.Join(errs, "\n") + "\n")
		}
		t.trafficTable(&b)
		if t.OSChanged > 0 {
			fmt.Fprintf(&b, "\nThe v2 update of the deploy and pull ops rewrites %d files (%s).\n", t.OSChanged, mib(t.OSChangedBytes>>10))
		}
	}
	r.deploySizeTable(&b)
	return b.String()
}

// trafficTable renders the HTTP counters of a tree's ops, if any.
func (t *treeReport) trafficTable(b *strings.Builder) {
	header := false
	for _, o := range t.Ops {
		if o.Ostree.Counters == nil && o.Strata.Counters == nil {
			continue
		}
		if !header {
			b.WriteString("\nHTTP traffic (medians, from nginx's access log; bytes are $bytes_sent: headers and bodies):\n\n")
			b.WriteString("| op | ostree requests | strata requests | ostree bytes | strata bytes | bytes ratio | ostree 4xx/5xx | strata 4xx/5xx |\n")
			b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
			header = true
		}
		br := "—"
		if ob, sb := o.Ostree.Counters["bytes_sent"], o.Strata.Counters["bytes_sent"]; ob > 0 && sb > 0 {
			br = fmt.Sprintf("%.3f", float64(sb)/float64(ob))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", o.Name,
			counter(o.Ostree, "requests"), counter(o.Strata, "requests"),
			counter(o.Ostree, "bytes_sent"), counter(o.Strata, "bytes_sent"), br,
			counter(o.Ostree, "not_ok"), counter(o.Strata, "not_ok"))
	}
}

// deploySizeTable relates the admin-deploy ops' times to tree sizes.
func (r *report) deploySizeTable(b *strings.Builder) {
	header := false
	for _, t := range r.Trees {
		for _, o := range t.Ops {
			if !strings.HasPrefix(o.Name, "admin-deploy") || t.Files == 0 {
				continue
			}
			if !header {
				b.WriteString("\n## admin deploy vs tree size\n\n")
				b.WriteString("Per 1,000 files and per GiB of the input tree (a deploy is a hard-link checkout: its cost follows the file count).\n\n")
				b.WriteString("| tree | op | files | size | ostree | strata | ratio | ostree ms/1k files | strata ms/1k files | ostree s/GiB | strata s/GiB |\n")
				b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
				header = true
			}
			perK := func(s sideReport) string {
				if !s.OK {
					return "—"
				}
				return fmt.Sprintf("%.1f", s.MedianSec*1000/(float64(t.Files)/1000))
			}
			perG := func(s sideReport) string {
				if !s.OK {
					return "—"
				}
				return fmt.Sprintf("%.2f", s.MedianSec/(float64(t.Bytes)/(1<<30)))
			}
			fmt.Fprintf(b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", t.Name, o.Name,
				t.Files, mib(t.Bytes>>10), secs(o.Ostree), secs(o.Strata), ratio(o.Ratio),
				perK(o.Ostree), perK(o.Strata), perG(o.Ostree), perG(o.Strata))
		}
	}
}

func counter(s sideReport, name string) string {
	v, ok := s.Counters[name]
	if !s.OK || !ok {
		return "—"
	}
	return groupDigits(v)
}

// groupDigits writes n with a comma every three digits.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func secs(s sideReport) string {
	if !s.OK {
		if s.Error != "" {
			return "failed"
		}
		return "—"
	}
	return fmt.Sprintf("%.3f s", s.MedianSec)
}

// cpu renders the median CPU time with its system part.
func cpu(s sideReport) string {
	if !s.OK {
		return "—"
	}
	return fmt.Sprintf("%.2f s (%.2f)", s.MedianCPUSec, s.MedianSysSec)
}

func rss(s sideReport) string {
	if !s.OK {
		return "—"
	}
	return mib(s.PeakRSSKiB)
}

func mib(kib int64) string {
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

func ratio(x *float64) string {
	if x == nil {
		return "—"
	}
	return fmt.Sprintf("%.2f", *x)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// writeResults writes latest.md and latest.json under dir.
func writeResults(dir string, r *report, md string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := r.json()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(md), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "latest.json"), js, 0o644)
}
