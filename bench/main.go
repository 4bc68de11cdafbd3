// Command bench runs strata and the reference ostree on the same input trees
// and reports, per tree and operation, the median wall-clock time of each,
// their ratio, and their peak resident set sizes.
//
//	go run ./bench [-trees minbase,usr] [-ops commit-bare,...] [-runs 5] [-json]
//
// See bench/README.md. It is run by `make bench`, not by CI: it needs root,
// the network (once, to build the Debian tree) and minutes to hours.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config holds the flags.
type config struct {
	runs, warmup int
	trees, ops   []string
	ostree       string
	strata       string // "" builds ./cmd/strata
	cache        string
	results      string
	mirror       string
	suite        string
	usrMiB       int
	timestamp    string
	timeout      time.Duration
	json         bool
	keep         bool
	cpuprofile   string // directory for strata's CPU profiles, "" for none
	ociUpdate    bool   // run the oci-update comparison instead of the ops
	testosStrata string // strata binary of the cached test OS ("" finds it)
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := benchMain(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func parseFlags(args []string) (*config, error) {
	cfg := &config{}
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	runs, err := strconv.Atoi(envOr("STRATA_BENCH_RUNS", "5"))
	if err != nil {
		return nil, fmt.Errorf("STRATA_BENCH_RUNS: %w", err)
	}
	var trees, opNames string
	fl.IntVar(&cfg.runs, "runs", runs, "measured runs per op and binary (env STRATA_BENCH_RUNS)")
	fl.IntVar(&cfg.warmup, "warmup", 1, "untimed warm-up runs per op and binary")
	fl.StringVar(&trees, "trees", envOr("STRATA_BENCH_TREES", "minbase,usr"), "comma-separated trees: small, minbase, usr, or all (env STRATA_BENCH_TREES)")
	fl.StringVar(&opNames, "ops", envOr("STRATA_BENCH_OPS", "all"), "comma-separated ops, or all (env STRATA_BENCH_OPS): "+strings.Join(opNamesList(), ", "))
	fl.StringVar(&cfg.ostree, "ostree", "/usr/bin/ostree", "the reference ostree binary")
	fl.StringVar(&cfg.strata, "strata", os.Getenv("STRATA_BENCH_STRATA"), "strata binary to measure (default: build ./cmd/strata into bench/.bin); -strata=/usr/bin/ostree checks the harness")
	fl.StringVar(&cfg.cache, "cache", envOr("STRATA_BENCH_CACHE", "/var/tmp/strata-bench"), "where trees are built once and runs work (env STRATA_BENCH_CACHE)")
	fl.StringVar(&cfg.results, "results", "", "directory for latest.md and latest.json (default: bench/results)")
	fl.StringVar(&cfg.mirror, "mirror", "", "Debian mirror for the minbase tree (default: the one apt uses, from /etc/apt)")
	fl.StringVar(&cfg.suite, "suite", "bookworm", "Debian suite for the minbase tree")
	fl.IntVar(&cfg.usrMiB, "usr-mib", 1024, "size of the usr tree in MiB")
	fl.StringVar(&cfg.timestamp, "timestamp", "2024-01-01T00:00:00Z", "commit --timestamp for both binaries, so equal trees give equal checksums")
	fl.DurationVar(&cfg.timeout, "timeout", time.Hour, "limit for any one command")
	fl.BoolVar(&cfg.json, "json", false, "print the report as JSON instead of markdown")
	fl.BoolVar(&cfg.keep, "keep", false, "keep the work directory (repos, checkouts) after the run")
	fl.StringVar(&cfg.cpuprofile, "cpuprofile", "", "after the measured runs of each op, run strata once more (unmeasured) with STRATA_CPUPROFILE=DIR/TREE-OP.pprof")
	fl.BoolVar(&cfg.ociUpdate, "oci-update", false, "instead of the ops: a realistic Debian update (the test OS + curl less vim-tiny python3-minimal) fetched by ostree pull, an ostree static delta and strata's image update; requests and bytes (see bench/README.md)")
	fl.StringVar(&cfg.testosStrata, "testos-strata", "", "with -oci-update: the strata binary the cached test OS was composed with (default: the newest in $STRATA_CACHE/testos with a finished build)")
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fl.Args())
	}
	if cfg.runs < 1 || cfg.warmup < 0 {
		return nil, errors.New("-runs must be at least 1 and -warmup at least 0")
	}
	if cfg.trees, err = pickNames(trees, treeNamesList(), "tree"); err != nil {
		return nil, err
	}
	if cfg.ops, err = pickNames(opNames, opNamesList(), "op"); err != nil {
		return nil, err
	}
	return cfg, nil
}

func treeNamesList() []string {
	var n []string
	for _, t := range treeSpecs {
		n = append(n, t.Name)
	}
	return n
}

func opNamesList() []string {
	var n []string
	for _, o := range ops {
		n = append(n, o.Name)
	}
	return n
}

func pickNames(list string, known []string, kind string) ([]string, error) {
	if list == "all" {
		return known, nil
	}
	var out []string
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		found := false
		for _, k := range known {
			found = found || k == n
		}
		if !found {
			return nil, fmt.Errorf("unknown %s %q (known: %s)", kind, n, strings.Join(known, ", "))
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s selected", kind)
	}
	return out, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func benchMain(ctx context.Context, cfg *config) error {
	if os.Geteuid() != 0 {
		logf("warning: not root; debootstrap, bare repos and hard-linked checkouts need root")
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if cfg.results == "" {
		cfg.results = filepath.Join(root, "bench", "results")
	}
	rep := &report{
		Date:      time.Now().UTC().Format(time.RFC3339),
		Host:      hostInfo(),
		Runs:      cfg.runs,
		Warmup:    cfg.warmup,
		Timestamp: cfg.timestamp,
	}
	ostree := binary{Name: "ostree", Path: cfg.ostree}
	rep.Ostree = binaryInfo{Path: cfg.ostree, Version: version(ctx, cfg.ostree)}
	strata := binary{Name: "strata", Path: cfg.strata}
	var strataErr error
	if cfg.strata == "" {
		strata.Path = filepath.Join(root, "bench", ".bin", "strata")
		logf("go build -o %s ./cmd/strata", strata.Path)
		build := exec.CommandContext(ctx, "go", "build", "-o", strata.Path, "./cmd/strata")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			strataErr = fmt.Errorf("go build ./cmd/strata: %w: %s", err, strings.TrimSpace(string(out)))
			logf("strata: %v", strataErr)
		}
		rep.Strata = binaryInfo{Path: strata.Path, Version: gitVersion(ctx, root)}
	} else {
		rep.Strata = binaryInfo{Path: cfg.strata, Version: version(ctx, cfg.strata)}
	}
	if strataErr != nil {
		rep.Strata.Error = strataErr.Error()
	}
	if cfg.ociUpdate {
		if strataErr != nil {
			return strataErr
		}
		return ociUpdateMain(ctx, cfg, root, strata.Path)
	}

	workRoot := filepath.Join(cfg.cache, "work")
	if err := removeTree(workRoot); err != nil {
		return err
	}
	defer func() {
		if cfg.keep {
			logf("kept %s", workRoot)
		} else if err := removeTree(workRoot); err != nil {
			logf("cleaning up: %v", err)
		}
	}()

	for _, name := range cfg.trees {
		spec, _ := lookupTree(name)
		tr := treeReport{Name: name, Desc: spec.Desc(cfg)}
		rep.Trees = append(rep.Trees, &tr)
		dir, err := ensureTree(ctx, cfg, spec)
		if err != nil {
			tr.Error = err.Error()
			logf("%v", err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		tr.Dir = dir
		st, err := statTree(dir)
		if err != nil {
			tr.Error = err.Error()
			continue
		}
		tr.Files, tr.Dirs, tr.Symlinks, tr.Bytes = st.Files, st.Dirs, st.Symlinks, st.Bytes
		logf("tree %s: %d files, %d directories, %d symlinks, %.1f MiB", name, st.Files, st.Dirs, st.Symlinks, float64(st.Bytes)/(1<<20))
		e := &env{
			name:      name,
			cfg:       cfg,
			tree:      dir,
			work:      filepath.Join(workRoot, name),
			reference: ostree,
			fixtures:  map[string]string{},
		}
		if err := os.MkdirAll(e.work, 0o755); err != nil {
			return err
		}
		for _, opName := range cfg.ops {
			o, _ := lookupOp(opName)
			tr.Ops = append(tr.Ops, benchOp(ctx, cfg, e, o, ostree, strata, strataErr))
			if ctx.Err() != nil {
				break
			}
		}
		if e.os != nil {
			tr.OSChanged, tr.OSChangedBytes = e.os.changed, e.os.bytes
		}
		if err := e.close(); err != nil {
			logf("stopping %s's servers: %v", name, err)
		}
		if !cfg.keep {
			if err := removeTree(e.work); err != nil {
				logf("cleaning up: %v", err)
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil {
		rep.Interrupted = true
	}

	md := rep.markdown()
	if err := writeResults(cfg.results, rep, md); err != nil {
		logf("writing results: %v", err)
	}
	if cfg.json {
		js, err := rep.json()
		if err != nil {
			return err
		}
		os.Stdout.Write(js)
	} else {
		fmt.Print(md)
	}
	if rep.Interrupted {
		return ctx.Err()
	}
	return nil
}

// sideState is one binary's progress through an op.
type sideState struct {
	bin      binary
	res      *sideReport
	samples  []sample
	failed   bool
	cleanups []func() error // of this op's runs, run when the op ends
}

// cleanUp runs the cleanups of the op's runs.
func (s *sideState) cleanUp() {
	for _, c := range s.cleanups {
		if err := c(); err != nil {
			s.fail(fmt.Errorf("cleaning up: %w", err))
		}
	}
	s.cleanups = nil
}

// benchOp runs o for both binaries: warm-up runs, then measured runs,
// alternating which binary goes first so that drift (page cache, thermal,
// write-back) does not favour one. A failure of one binary stops only that
// binary's runs. What the runs made is removed when the op ends, not
// between runs: on an ext4 without a journal (this project's VMs) the
// inode allocator skips inodes freed in the last seconds, one buffer
// lookup each, so a run that follows the deletion of a large tree pays
// for it, and whichever binary ran second would be charged.
func benchOp(ctx context.Context, cfg *config, e *env, o op, ostree, strata binary, strataErr error) opReport {
	r := opReport{Name: o.Name, Desc: o.Desc}
	sides := []*sideState{
		{bin: ostree, res: &r.Ostree},
		{bin: strata, res: &r.Strata},
	}
	if strataErr != nil {
		sides[1].fail(strataErr)
	}
	if o.Setup != nil {
		teardown, err := o.Setup(ctx, e)
		if err != nil {
			for _, s := range sides {
				s.fail(fmt.Errorf("setup: %w", err))
			}
			return r
		}
		if teardown != nil {
			defer teardown()
		}
	}
	total := cfg.warmup + cfg.runs
	for i := range total {
		order := sides
		if i%2 == 1 {
			order = []*sideState{sides[1], sides[0]}
		}
		for _, s := range order {
			if s.failed || ctx.Err() != nil {
				continue
			}
			label := fmt.Sprintf("run %d/%d", i-cfg.warmup+1, cfg.runs)
			if i < cfg.warmup {
				label = "warm-up"
			}
			kind := measured
			switch {
			case i < cfg.warmup:
				kind = warmUp
			case i == total-1:
				kind = lastMeasured
			}
			s.runOnce(ctx, cfg, e, o, label, kind, "")
		}
	}
	if cfg.cpuprofile != "" && !sides[1].failed && ctx.Err() == nil {
		prof := filepath.Join(cfg.cpuprofile, e.name+"-"+o.Name+".pprof")
		if err := os.MkdirAll(cfg.cpuprofile, 0o755); err != nil {
			logf("%s", err)
		} else {
			sides[1].runOnce(ctx, cfg, e, o, "profile "+prof, warmUp, prof)
		}
	}
	for _, s := range sides {
		s.cleanUp()
		s.finish()
	}
	r.compare()
	return r
}

func (s *sideState) fail(err error) {
	s.failed = true
	if s.res.Error == "" {
		s.res.Error = err.Error()
	}
}

// runKind says what runOnce keeps of a run.
type runKind int

const (
	warmUp       runKind = iota // nothing (a warm-up or profiling run)
	measured                    // its sample
	lastMeasured                // its sample and its result
)

// runOnce prepares, times and cleans up one run; measured runs are kept
// as samples, the last one's result is kept, and a non-empty profile runs
// the binary with STRATA_CPUPROFILE=profile.
func (s *sideState) runOnce(ctx context.Context, cfg *config, e *env, o op, label string, kind runKind, profile string) {
	t, err := o.Prepare(ctx, e, s.bin)
	if err != nil {
		s.fail(fmt.Errorf("preparing: %w", err))
		return
	}
	if t.Cleanup != nil {
		s.cleanups = append(s.cleanups, t.Cleanup)
	}
	rctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	var env []string
	if profile != "" {
		env = []string{"STRATA_CPUPROFILE=" + profile}
	}
	smp, stdout, err := timedRun(rctx, s.bin.Path, t.Args, env)
	if err != nil {
		s.fail(fmt.Errorf("%s %s: %w", s.bin.Name, strings.Join(t.Args, " "), err))
		logf("%s %s %s (%s): failed: %v", e.name, o.Name, s.bin.Name, label, err)
		return
	}
	if t.Counters != nil {
		if smp.Counters, err = t.Counters(); err != nil {
			s.fail(fmt.Errorf("counting: %w", err))
			return
		}
	}
	logf("%s %s %s (%s): %.3fs, %.1f MiB%s", e.name, o.Name, s.bin.Name, label,
		smp.Wall.Seconds(), float64(smp.MaxRSSKiB)/1024, countersText(smp.Counters))
	if kind != warmUp {
		s.samples = append(s.samples, smp)
	}
	if kind == lastMeasured && t.Result != nil {
		tok, err := t.Result(stdout)
		if err != nil {
			s.res.Result = "error: " + err.Error()
		} else {
			s.res.Result = tok
		}
	}
}

func (s *sideState) finish() {
	if s.failed || len(s.samples) == 0 {
		return
	}
	var walls, cpus, syss []time.Duration
	for _, x := range s.samples {
		walls = append(walls, x.Wall)
		cpus = append(cpus, x.CPU)
		syss = append(syss, x.Sys)
		s.res.WallSec = append(s.res.WallSec, x.Wall.Seconds())
		s.res.CPUSec = append(s.res.CPUSec, x.CPU.Seconds())
		s.res.SysSec = append(s.res.SysSec, x.Sys.Seconds())
		s.res.MaxRSSKiB = append(s.res.MaxRSSKiB, x.MaxRSSKiB)
		if x.Counters != nil {
			s.res.CounterRuns = append(s.res.CounterRuns, x.Counters)
		}
		s.res.PeakRSSKiB = max(s.res.PeakRSSKiB, x.MaxRSSKiB)
	}
	for _, k := range counterNames(s.samples) {
		var xs []int64
		for _, x := range s.samples {
			xs = append(xs, x.Counters[k])
		}
		if s.res.Counters == nil {
			s.res.Counters = map[string]int64{}
		}
		s.res.Counters[k] = median(xs)
	}
	s.res.MedianSec = median(walls).Seconds()
	s.res.MedianCPUSec = median(cpus).Seconds()
	s.res.MedianSysSec = median(syss).Seconds()
	s.res.OK = true
}

// moduleRoot finds the directory holding go.mod, from `go env GOMOD` or by
// walking up from the working directory.
func moduleRoot() (string, error) {
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if p := strings.TrimSpace(string(out)); p != "" && p != os.DevNull {
			return filepath.Dir(p), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the strata module (no go.mod found)")
		}
		dir = parent
	}
}

// version asks a binary for its version (ostree prints "Version: '2022.7'").
func version(ctx context.Context, bin string) string {
	out, err := run(ctx, bin, "--version")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "Version:"); ok {
			return strings.Trim(strings.TrimSpace(v), "'")
		}
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

func gitVersion(ctx context.Context, root string) string {
	cmd := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty")
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return "git " + strings.TrimSpace(string(out))
}

func hostInfo() string {
	var uts syscall.Utsname
	kernel := ""
	if syscall.Uname(&uts) == nil {
		b := make([]byte, 0, len(uts.Release))
		for _, c := range uts.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		kernel = string(b)
	}
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	return fmt.Sprintf("%d CPUs, Linux %s, %s/%s, %s, load average at start %s",
		runtime.NumCPU(), kernel, runtime.GOOS, runtime.GOARCH, runtime.Version(), load)
}
