package updates

import (
	"fmt"
	"strings"
	"time"
)

// Window is a weekly maintenance window: on each of Days, from Start
// (minutes after midnight) for Length minutes; it may run into the next
// day and the next week.
type Window struct {
	Days   [7]bool // indexed by time.Weekday
	Start  int     // minutes after midnight
	Length int     // minutes, > 0
}

var dayNames = map[string]time.Weekday{}

func init() {
	for d := time.Sunday; d <= time.Saturday; d++ {
		dayNames[strings.ToLower(d.String())] = d
		dayNames[strings.ToLower(d.String()[:3])] = d
	}
}

// NewWindow checks a window's values as Zincati does: days by English
// name, full or three letters (case-insensitive); start_time "hh:mm"
// (24h); length_minutes > 0. On error field names the bad key.
func NewWindow(days []string, start string, length int64) (w Window, field string, err error) {
	for _, d := range days {
		wd, ok := dayNames[strings.ToLower(d)]
		if !ok {
			return w, "days", fmt.Errorf("day %q: want Mon..Sun or Monday..Sunday", d)
		}
		w.Days[wd] = true
	}
	var h, m int
	if n, err := fmt.Sscanf(start, "%d:%d", &h, &m); err != nil || n != 2 || len(start) < 4 || len(start) > 5 || h < 0 || h > 23 || m < 0 || m > 59 || start[len(start)-3] != ':' {
		return w, "start_time", fmt.Errorf("start_time %q: want hh:mm, 00:00 to 23:59", start)
	}
	if length <= 0 || length > 7*24*60 {
		return w, "length_minutes", fmt.Errorf("length_minutes %d: want 1 to %d", length, 7*24*60)
	}
	w.Start, w.Length = h*60+m, int(length)
	return w, "", nil
}

// opening returns the last start of w at or before t and whether t is
// inside the window that starts there.
func (w Window) lastStart(t time.Time) (time.Time, bool) {
	y, mo, d := t.Date()
	for back := 0; back <= 14; back++ {
		day := time.Date(y, mo, d-back, 0, 0, 0, 0, t.Location())
		if !w.Days[day.Weekday()] {
			continue
		}
		s := day.Add(time.Duration(w.Start) * time.Minute)
		if s.After(t) {
			continue
		}
		return s, t.Before(s.Add(time.Duration(w.Length) * time.Minute))
	}
	return time.Time{}, false
}

// nextStart returns the first start of w strictly after t.
func (w Window) nextStart(t time.Time) time.Time {
	y, mo, d := t.Date()
	for fwd := 0; fwd <= 8; fwd++ {
		day := time.Date(y, mo, d+fwd, 0, 0, 0, 0, t.Location())
		if !w.Days[day.Weekday()] {
			continue
		}
		if s := day.Add(time.Duration(w.Start) * time.Minute); s.After(t) {
			return s
		}
	}
	return time.Time{}
}

// InWindow reports whether t (taken in loc) is inside one of ws, and if
// so when that window ends.
func InWindow(ws []Window, t time.Time, loc *time.Location) (bool, time.Time) {
	t = t.In(loc)
	for _, w := range ws {
		if s, in := w.lastStart(t); in {
			return true, s.Add(time.Duration(w.Length) * time.Minute)
		}
	}
	return false, time.Time{}
}

// NextWindow returns the start of the next window after t (t itself when
// t is inside one).
func NextWindow(ws []Window, t time.Time, loc *time.Location) time.Time {
	if in, _ := InWindow(ws, t, loc); in {
		return t
	}
	var best time.Time
	for _, w := range ws {
		if s := w.nextStart(t.In(loc)); !s.IsZero() && (best.IsZero() || s.Before(best)) {
			best = s
		}
	}
	return best.UTC()
}

func (w Window) String() string {
	var ds []string
	for d := time.Sunday; d <= time.Saturday; d++ {
		if w.Days[d] {
			ds = append(ds, d.String()[:3])
		}
	}
	return fmt.Sprintf("%s %02d:%02d for %d min", strings.Join(ds, ","), w.Start/60, w.Start%60, w.Length)
}
