package commit

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
)

// Source is one tree of a commit, overlaid on those before it: a
// directory (Kind "dir"), a tar archive ("tar"; "-" is Stdin) or the tree
// of an existing commit ("ref").
type Source struct {
	Kind, Arg string
}

// ParseSource reads `commit --tree`'s KIND=ARG.
func ParseSource(spec string) (Source, error) {
	kind, arg, ok := strings.Cut(spec, "=")
	if !ok {
		return Source{}, fmt.Errorf("--tree: expected dir=PATH, tar=FILE or ref=REV, got %q", spec)
	}
	switch kind {
	case "dir", "tar", "ref":
		return Source{Kind: kind, Arg: arg}, nil
	}
	return Source{}, fmt.Errorf("--tree: unknown kind %q (want dir, tar or ref)", kind)
}

// Request is a whole `commit`: sources overlaid in order, the filter
// applied to dir and tar sources, the commit's Options.
type Request struct {
	Sources []Source
	Filter  Filter
	// Tar applies to tar sources (its Reporter is Progress).
	Tar TarOptions
	// Stdin is read by a tar source named "-".
	Stdin io.Reader
	// Progress receives one phase per dir or tar source.
	Progress progress.Reporter
	// Warner receives the transaction's best-effort failures.
	Warner progress.Warner
	Options
	// BeforePublish, when set, runs once the commit object is written and
	// before the transaction publishes it (signing, so that the commit
	// never appears unsigned). It is not called when SkipIfUnchanged
	// found the tree unchanged.
	BeforePublish func(ctx context.Context, t *repo.Txn, c objects.Checksum) error
}

// Run commits req in one transaction of r: nothing is published unless
// every source was read, the commit written and BeforePublish succeeded.
func Run(ctx context.Context, r *repo.Repo, req Request) (Result, error) {
	rep := progress.OrNop(req.Progress)
	t, err := r.BeginWith(ctx, repo.TxnOptions{Warner: req.Warner})
	if err != nil {
		return Result{}, err
	}
	defer t.Abort()
	m := NewMTree(nil)
	for _, s := range req.Sources {
		switch s.Kind {
		case "dir":
			rep.Phase("commit "+s.Arg, "files", 0)
			err = AddDir(ctx, t, m, s.Arg, req.Filter, rep)
			rep.Done()
		case "tar":
			err = addTarSource(ctx, t, m, s.Arg, req, rep)
		case "ref":
			err = AddRef(t, m, s.Arg)
		default:
			err = fmt.Errorf("%w: unknown tree kind %q (want dir, tar or ref)", repo.ErrInvalid, s.Kind)
		}
		if err != nil {
			return Result{}, err
		}
	}
	res, err := Write(ctx, t, m, req.Options)
	if err != nil || res.Skipped {
		return res, err
	}
	if req.BeforePublish != nil {
		if err := req.BeforePublish(ctx, t, res.Checksum); err != nil {
			return Result{}, err
		}
	}
	return res, t.Commit()
}

// addTarSource overlays a tar archive (a file, or Stdin for "-").
func addTarSource(ctx context.Context, t *repo.Txn, m *MTree, file string, req Request, rep progress.Reporter) error {
	rd, name := req.Stdin, "standard input"
	if file != "-" {
		fh, err := os.Open(file)
		if err != nil {
			return err
		}
		defer fh.Close()
		rd, name = fh, file
	}
	if rd == nil {
		return fmt.Errorf("%w: tar from standard input, but no input given", repo.ErrInvalid)
	}
	rep.Phase("commit "+name, "files", 0)
	defer rep.Done()
	o := req.Tar
	o.Reporter = rep
	if err := AddTar(ctx, t, m, rd, req.Filter, o); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// ParseTimestamp reads what `ostree commit --timestamp` accepts in
// practice: RFC 3339, "YYYY-MM-DD HH:MM:SS" (UTC) and @SECONDS.
func ParseTimestamp(s string) (time.Time, error) {
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("could not parse timestamp %q", s)
		}
		return time.Unix(n, 0), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04:05Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("could not parse timestamp %q", s)
}

// ParseDate reads the dates `ostree prune --keep-younger-than` is given: absolute ones (local time unless a zone is written) and "N UNIT
// ago", "now", "today", "yesterday".
func ParseDate(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "now":
		return now, nil
	case "today":
		y, m, d := now.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, now.Location()), nil
	case "yesterday":
		y, m, d := now.Date()
		return time.Date(y, m, d-1, 0, 0, 0, 0, now.Location()), nil
	}
	if rest, ok := strings.CutSuffix(strings.ToLower(s), " ago"); ok {
		f := strings.Fields(rest)
		if len(f) == 2 {
			n, err := strconv.Atoi(f[0])
			unit := strings.TrimSuffix(f[1], "s")
			if err == nil && n >= 0 {
				switch unit {
				case "second", "sec":
					return now.Add(-time.Duration(n) * time.Second), nil
				case "minute", "min":
					return now.Add(-time.Duration(n) * time.Minute), nil
				case "hour":
					return now.Add(-time.Duration(n) * time.Hour), nil
				case "day":
					return now.AddDate(0, 0, -n), nil
				case "week":
					return now.AddDate(0, 0, -7*n), nil
				case "month":
					return now.AddDate(0, -n, 0), nil
				case "year":
					return now.AddDate(-n, 0, 0), nil
				}
			}
		}
		return time.Time{}, fmt.Errorf("could not parse date %q", s)
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return ParseTimestamp(s)
}
