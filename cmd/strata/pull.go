package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/pull"
	"github.com/strata-os/strata/remote"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sysroot"
)

// pullFlags are the flags pull and pull-local share.
type pullFlags struct {
	depth               int
	commitOnly          bool
	timestampCheck      bool
	disableBindings     bool
	disableStaticDeltas bool
	requireStaticDeltas bool
	untrusted           bool
	dryRun              bool
	json                bool
	parallel            int
}

func (f *pullFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&f.depth, "depth", 0, "traverse DEPTH parents (-1=infinite)")
	fl.BoolVar(&f.commitOnly, "commit-metadata-only", false, "fetch only the commit metadata")
	fl.BoolVarP(&f.timestampCheck, "timestamp-check", "T", false, "require fetched commits to have newer timestamps")
	fl.BoolVar(&f.disableBindings, "disable-verify-bindings", false, "do not verify commit bindings")
	fl.BoolVar(&f.disableStaticDeltas, "disable-static-deltas", false, "do not use static deltas (strata never uses them)")
	fl.BoolVar(&f.requireStaticDeltas, "require-static-deltas", false, "require static deltas (not supported)")
	fl.BoolVar(&f.untrusted, "untrusted", false, "verify checksums of local sources (strata always does)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "only print what would be downloaded")
	fl.BoolVar(&f.json, "json", false, "print progress and the result as JSON lines on stdout")
	fl.IntVar(&f.parallel, "max-fetches", pull.DefaultParallel, "objects to fetch at once")
}

// options returns the pull options the flags set.
func (f *pullFlags) options() (pull.Options, error) {
	if f.requireStaticDeltas {
		return pull.Options{}, fmt.Errorf("--require-static-deltas: static deltas are not supported")
	}
	if f.depth < -1 {
		return pull.Options{}, fmt.Errorf("--depth: %d is not a depth (-1 for all)", f.depth)
	}
	return pull.Options{Depth: f.depth, CommitOnly: f.commitOnly, TimestampCheck: f.timestampCheck, Parallel: f.parallel}, nil
}

var errDryRun = errors.New("dry run")

func init() { rootCmd.AddCommand(newPullCmd()) }

func newPullCmd() *cobra.Command {
	var (
		f        pullFlags
		mirror   bool
		subpaths []string
		urlFlag  string
		retries  int
		fromRev  string
	)
	cmd := &cobra.Command{
		Use:   "pull REMOTE [BRANCH...]",
		Short: "Download data from a remote repository",
		Long: `Pull BRANCHes (default: the remote's branches option; with --mirror and
none given, every ref of the remote's summary) and their commits' trees
from REMOTE. Signatures (gpg-verify, sign-verify), ref bindings and, with
-T, timestamps are checked before anything is written; every object is
verified against its checksum. An interrupted pull keeps what it verified,
and the next one fetches only the rest.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options()
			if err != nil {
				return err
			}
			r, cfg, rm, err := lookupRemote(args[0], true)
			if err != nil {
				return err
			}
			u := urlFlag
			if u == "" {
				if u, err = rm.URL(); err != nil {
					return err
				}
			}
			fo, err := pull.FetchOptions(rm)
			if err != nil {
				return err
			}
			fo.Retries, fo.MaxParallel = retries, f.parallel
			if retries == 0 {
				fo.Retries = -1
			}
			src, err := pull.OpenSource(u, rm.GetDefault("contenturl", ""), pull.PartialDir(r), fo)
			if err != nil {
				return err
			}
			if o.Policy, err = pull.PolicyFor(cfg, rm); err != nil {
				return err
			}
			if fromRev != "" {
				if o.TimestampCheckFrom, err = r.ResolveRev(fromRev); err != nil {
					return fmt.Errorf("--timestamp-check-from-rev: %w", err)
				}
			}
			o.Policy.DisableBindings = f.disableBindings
			o.Remote, o.Mirror, o.Subpaths = rm.Name, mirror, subpaths
			o.Refs = args[1:]
			if len(o.Refs) == 0 && !mirror {
				if o.Refs = rm.GetList("branches"); len(o.Refs) == 0 {
					return fmt.Errorf("no configured branches for remote %s", rm.Name)
				}
			}
			return runPull(cmd, r, src, o, &f)
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&mirror, "mirror", false, "write refs suitable for a mirror and fetch all refs if none provided")
	fl.StringArrayVar(&subpaths, "subpath", nil, "only pull the provided subpath(s)")
	fl.StringVar(&urlFlag, "url", "", "pull objects from this URL instead of the one from the remote config")
	fl.IntVar(&retries, "network-retries", 5, "how many times each download is retried upon error")
	fl.StringVar(&fromRev, "timestamp-check-from-rev", "", "require fetched commits to have newer timestamps than given rev")
	return cmd
}

// upgradePuller pulls the remote refspecs of `admin upgrade` through the
// pull package; a downgrade it refuses is sysroot's ErrDowngrade too.
func upgradePuller(cmd *cobra.Command) sysroot.Puller {
	return sysrootPuller{&pull.Puller{Warner: newWarner(cmd), Config: func(r *repo.Repo) (*remote.Config, error) {
		cfg, _, err := remoteConfig(r)
		return cfg, err
	}}}
}

// sysrootPuller is the sysroot.Puller of the CLI.
type sysrootPuller struct{ p *pull.Puller }

func (s sysrootPuller) Pull(ctx context.Context, r *repo.Repo, remoteName, ref string, from objects.Checksum) error {
	err := s.p.Pull(ctx, r, remoteName, ref, from)
	if errors.Is(err, pull.ErrDowngrade) {
		return fmt.Errorf("%w: %w", sysroot.ErrDowngrade, err)
	}
	return err
}

// runPull runs a pull and renders its progress and result.
func runPull(cmd *cobra.Command, r *repo.Repo, src pull.Source, o pull.Options, f *pullFlags) error {
	stats := &pull.Stats{}
	view := newPullView(cmd, stats, f.json)
	o.Stats, o.Progress, o.Warner = stats, view, newWarner(cmd)
	o.OnPlan = func(p pull.Plan) error {
		view.plan(p)
		if f.dryRun {
			return errDryRun
		}
		return nil
	}
	if os.Getenv("GOGC") == "" {
		// A pull makes garbage at the rate it receives bytes while its
		// live heap stays small; collecting 4x less often cut its CPU
		// time by 8% (peak RSS 25 -> 43 MB for a Debian minbase root).
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	view.start()
	res, err := pull.Pull(cmd.Context(), r, src, o)
	view.stop()
	if errors.Is(err, errDryRun) {
		if !f.json && !view.term {
			fmt.Fprintln(cmd.OutOrStdout(), view.planMsg)
		}
		return nil
	}
	if err != nil {
		return err
	}
	view.done(res)
	return nil
}

// pullView renders a pull: a status line on a terminal (stderr), JSON
// lines with --json (stdout), and ostree's one-line summary at the end.
type pullView struct {
	out, errOut io.Writer
	json        bool
	term        bool
	stats       *pull.Stats
	began       time.Time

	mu         sync.Mutex
	phase      string
	unit       string
	total      int64
	phaseStart time.Time
	phaseBase  int64 // stats counter at the phase's start
	drawn      bool
	planMsg    string
	quit       chan struct{}
	wg         sync.WaitGroup
}

func newPullView(cmd *cobra.Command, stats *pull.Stats, jsonOut bool) *pullView {
	v := &pullView{out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), json: jsonOut, stats: stats, began: time.Now()}
	if f, ok := v.errOut.(*os.File); ok && !jsonOut && term.IsTerminal(int(f.Fd())) {
		v.term = true
	}
	return v
}

// Phase implements progress.Reporter.
func (v *pullView) Phase(name, unit string, total int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.phase, v.unit, v.total, v.phaseStart = name, unit, total, time.Now()
	v.phaseBase = v.stats.BytesReceived.Load()
}

// Add implements progress.Reporter (the view redraws on a timer).
func (v *pullView) Add(int64) {}

// Done implements progress.Reporter.
func (v *pullView) Done() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.clear()
	v.phase = ""
}

func (v *pullView) clear() {
	if v.term && v.drawn {
		fmt.Fprint(v.errOut, "\r\x1b[K")
		v.drawn = false
	}
}

func (v *pullView) start() {
	if !v.term && !v.json {
		return
	}
	every := 200 * time.Millisecond
	if v.json {
		every = time.Second
	}
	v.quit = make(chan struct{})
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-v.quit:
				return
			case <-t.C:
				v.tick()
			}
		}
	}()
}

func (v *pullView) stop() {
	if v.quit != nil {
		close(v.quit)
		v.wg.Wait()
	}
	v.mu.Lock()
	v.clear()
	v.mu.Unlock()
}

// progressJSON is a "progress" line of `pull --json`.
type progressJSON struct {
	Event          string  `json:"event"`
	Phase          string  `json:"phase"`
	MetadataDone   int64   `json:"metadata_done"`
	ObjectsDone    int64   `json:"objects_done"`
	ObjectsTotal   int64   `json:"objects_total"`
	BytesDone      int64   `json:"bytes_done"`
	BytesTotal     *int64  `json:"bytes_total,omitempty"`
	BytesPerSecond float64 `json:"bytes_per_second"`
	ETASeconds     *int64  `json:"eta_seconds,omitempty"`
}

func (v *pullView) tick() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.phase == "" {
		return
	}
	s := v.stats
	bytes := s.BytesReceived.Load()
	elapsed := max(time.Since(v.phaseStart).Seconds(), 0.001)
	rate := float64(bytes-v.phaseBase) / elapsed
	done, total := s.ContentFetched.Load(), s.ContentTotal.Load()
	btotal := s.BytesTotal.Load()
	var eta int64 = -1
	switch {
	case v.phase != "Receiving objects":
	case btotal > 0 && rate > 0:
		eta = max(int64(float64(btotal-(bytes-v.phaseBase))/rate), 0)
	case total > 0 && done > 0:
		eta = int64(elapsed * float64(total-done) / float64(done))
	}
	if v.json {
		p := progressJSON{Event: "progress", Phase: v.phase, MetadataDone: s.MetadataFetched.Load(),
			ObjectsDone: done, ObjectsTotal: total, BytesDone: bytes, BytesPerSecond: float64(int64(rate))}
		if btotal >= 0 {
			p.BytesTotal = &btotal
		}
		if eta >= 0 {
			eta = max(eta, 0)
			p.ETASeconds = &eta
		}
		writeJSONLine(v.out, p)
		return
	}
	var line string
	if v.phase == "Receiving objects" {
		// Sizes from ostree.sizes are estimates of what is received:
		// the percentage follows the bytes, capped below 100 until the
		// objects are all in.
		got := max(bytes-v.phaseBase, 0)
		pct := 0.0
		if total > 0 {
			pct = float64(done) * 100 / float64(total)
		}
		if btotal > 0 {
			pct = min(float64(got)*100/float64(btotal), 99)
		}
		line = fmt.Sprintf("Receiving objects: %3.0f%% (%d/%d), %s", pct, done, total, gSize(uint64(got)))
		if btotal > 0 {
			line += " of " + gSize(uint64(btotal))
		}
		line += fmt.Sprintf(", %s/s", gSize(uint64(rate)))
		if eta >= 0 {
			line += fmt.Sprintf(", ETA %s", formatETA(eta))
		}
	} else {
		line = fmt.Sprintf("%s: %d objects, %s", v.phase, s.MetadataFetched.Load(), gSize(uint64(max(bytes, 0))))
	}
	fmt.Fprint(v.errOut, "\r\x1b[K"+line)
	v.drawn = true
}

func formatETA(s int64) string {
	s = max(s, 0)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// planJSON is the "plan" line of `pull --json`, printed before anything is
// written.
type planJSON struct {
	Event           string `json:"event"`
	Commits         int    `json:"commits"`
	MetadataObjects int    `json:"metadata_objects"`
	MetadataBytes   int64  `json:"metadata_bytes"`
	ContentObjects  int    `json:"content_objects"`
	ContentBytes    *int64 `json:"content_bytes,omitempty"`
	DiskBytes       *int64 `json:"disk_bytes,omitempty"`
}

func (v *pullView) plan(p pull.Plan) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.json {
		j := planJSON{Event: "plan", Commits: p.Commits, MetadataObjects: p.Metadata, MetadataBytes: p.MetadataBytes, ContentObjects: p.Content}
		if p.ContentBytes >= 0 {
			j.ContentBytes, j.DiskBytes = &p.ContentBytes, &p.DiskBytes
		}
		writeJSONLine(v.out, j)
		return
	}
	v.planMsg = planText(p)
	if v.term {
		v.clear()
		fmt.Fprintln(v.errOut, v.planMsg)
	}
}

// planText is the plan in words.
func planText(p pull.Plan) string {
	msg := fmt.Sprintf("%s, %s, %s to store", plural(p.Commits, "commit"), plural(p.Metadata, "metadata object"), plural(p.Content, "content object"))
	if p.ContentBytes >= 0 {
		msg += fmt.Sprintf("; %s to download, %s on disk", gSize(uint64(p.ContentBytes)), gSize(uint64(p.DiskBytes)))
	}
	return msg
}

// refJSONUpdate is a ref a pull moved.
type refUpdateJSON struct {
	Name string `json:"name"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new"`
}

// doneJSON is the last line of `pull --json`.
type doneJSON struct {
	Event           string          `json:"event"`
	Commits         []string        `json:"commits"`
	Refs            []refUpdateJSON `json:"refs"`
	Signatures      []string        `json:"signatures,omitempty"`
	MetadataFetched int64           `json:"metadata_fetched"`
	ContentFetched  int64           `json:"content_fetched"`
	BytesReceived   int64           `json:"bytes_received"`
	ContentWritten  int64           `json:"content_written"`
	Seconds         float64         `json:"seconds"`
}

func (v *pullView) done(res *pull.Result) {
	elapsed := time.Since(v.began)
	if v.json {
		d := doneJSON{Event: "done", Commits: []string{}, Refs: []refUpdateJSON{}, Signatures: res.Signatures,
			MetadataFetched: res.MetadataFetched, ContentFetched: res.ContentFetched,
			BytesReceived: res.BytesReceived, ContentWritten: res.ContentWritten,
			Seconds: float64(elapsed.Milliseconds()) / 1000}
		for _, c := range res.Commits {
			d.Commits = append(d.Commits, c.String())
		}
		for _, u := range res.Refs {
			j := refUpdateJSON{Name: u.Name, New: u.New.String()}
			if !u.Old.IsZero() {
				j.Old = u.Old.String()
			}
			d.Refs = append(d.Refs, j)
		}
		writeJSONLine(v.out, d)
		return
	}
	// ostree's closing line.
	var b strings.Builder
	verb := "fetched"
	if res.Local {
		verb = "imported"
	}
	fmt.Fprintf(&b, "%d metadata, %d content objects %s", res.MetadataFetched, res.ContentFetched, verb)
	if !res.Local && res.BytesReceived > 0 {
		if res.BytesReceived < 1024 {
			fmt.Fprintf(&b, "; %d B transferred in %d seconds", res.BytesReceived, int(elapsed.Seconds()))
		} else {
			fmt.Fprintf(&b, "; %d KiB transferred in %d seconds", res.BytesReceived/1024, int(elapsed.Seconds()))
		}
	}
	fmt.Fprintf(&b, "; %s content written", gSize(uint64(res.ContentWritten)))
	fmt.Fprintln(v.out, b.String())
}

func writeJSONLine(w io.Writer, v any) {
	data, _ := json.Marshal(v)
	fmt.Fprintf(w, "%s\n", data)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
