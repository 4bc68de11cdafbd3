package etcmerge

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/fsutil"
)

func threeTrees(t *testing.T, orig, local, next tree) (string, string, string) {
	t.Helper()
	root := t.TempDir()
	o, l, n := filepath.Join(root, "orig"), filepath.Join(root, "local"), filepath.Join(root, "next")
	buildTree(t, o, orig)
	buildTree(t, l, local)
	buildTree(t, n, next)
	return o, l, n
}

func TestCancel(t *testing.T) {
	o, l, n := threeTrees(t, tree{"a": F("1")}, tree{"a": F("2")}, tree{"a": F("3")})
	ctx, cancel := context.WithCancel(context.Background())
	p, err := NewPlan(ctx, o, l, n)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := p.Apply(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(n, "a")); string(data) != "3" {
		t.Errorf("cancelled Apply wrote %q", data)
	}
	if _, err := NewPlan(ctx, o, l, n); !errors.Is(err, context.Canceled) {
		t.Fatalf("NewPlan: %v", err)
	}
}

// TestFailpoint stops Apply before each path in turn: the steps are named
// after the paths, and a stopped merge reports the failpoint's error.
func TestFailpoint(t *testing.T) {
	orig := tree{"a": F("1"), "b": F("1"), "gone": F("g")}
	local := tree{"a": F("2"), "b": F("2"), "new/x": F("x")}
	o, l, _ := threeTrees(t, orig, local, tree{})
	p, err := NewPlan(context.Background(), o, l, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, c := range p.Changes() {
		steps = append(steps, "etcmerge:"+c.Path)
	}
	if len(steps) != 5 { // M a, M b, D gone, A new, A new/x
		t.Fatalf("changes %v", p.Changes())
	}
	boom := errors.New("boom")
	for _, stop := range steps {
		next := filepath.Join(t.TempDir(), "etc")
		buildTree(t, next, orig)
		p, err := NewPlan(context.Background(), o, l, next)
		if err != nil {
			t.Fatal(err)
		}
		f := func(step string) error {
			if step == stop {
				return boom
			}
			return nil
		}
		fsutil.Failpoint.Store(&f)
		err = p.Apply(context.Background())
		fsutil.Failpoint.Store(nil)
		if !errors.Is(err, boom) {
			t.Fatalf("stop at %s: %v", stop, err)
		}
	}
}

// TestApplyRechecks: a conflict that appears between NewPlan and Apply is
// still refused.
func TestApplyRechecks(t *testing.T) {
	o, l, n := threeTrees(t, tree{"a": F("1")}, tree{"a": F("2")}, tree{"a": F("3")})
	p, err := NewPlan(context.Background(), o, l, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(n, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(n, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(context.Background()); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "'a'") {
		t.Fatalf("Apply: %v", err)
	}
}

func TestPlanErrors(t *testing.T) {
	ctx := context.Background()
	o, l, n := threeTrees(t, tree{}, tree{}, tree{})
	if _, err := NewPlan(ctx, filepath.Join(o, "missing"), l, n); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing orig: %v", err)
	}
	if _, err := NewPlan(ctx, o, l, filepath.Join(n, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing new: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPlan(ctx, o, l, f); !errors.Is(err, ErrConflict) {
		t.Errorf("file as new /etc: %v", err)
	}
	if _, err := Diff(ctx, o, f); err == nil {
		t.Error("Diff against a file")
	}
}

func TestCountsAndString(t *testing.T) {
	o, l, n := threeTrees(t, tree{"a": F("1"), "b": F("b")}, tree{"a": F("2"), "c/d": F("d")}, tree{})
	p, err := NewPlan(context.Background(), o, l, n)
	if err != nil {
		t.Fatal(err)
	}
	m, d, a := p.Counts()
	if m != 1 || d != 1 || a != 2 {
		t.Errorf("counts %d %d %d", m, d, a)
	}
	var lines []string
	for _, c := range p.Changes() {
		lines = append(lines, c.String())
	}
	if got := strings.Join(lines, "\n"); got != "M    a\nD    b\nA    c\nA    c/d" {
		t.Errorf("changes:\n%s", got)
	}
	if Added.String() != "added" || Deleted.Letter() != 'D' || Kind(9).Letter() != '?' {
		t.Error("Kind strings")
	}
}

// TestMsortComparator pins GLib's inode comparator: only the low 32 bits
// of the difference count, so inodes 2^32 apart compare equal and keep
// their order, and a difference above 2^31 compares the wrong way round.
func TestMsortComparator(t *testing.T) {
	ents := []dirent{{"c", 3}, {"big", 1<<32 + 1}, {"a", 1}, {"far", 1 << 31}, {"b", 2}}
	msort(ents, make([]dirent, len(ents)))
	var names []string
	for _, e := range ents {
		names = append(names, e.name)
	}
	// By hand: [c big] sorts to [big c] (3-(2^32+1) truncates to +2);
	// [a far b] to [a b far] (far-b = 2^31-2 > 0); merging, big-a
	// truncates to 0 so big (left run) goes first, then a, b, and c
	// before far (3-2^31 < 0).
	if got := strings.Join(names, " "); got != "big a b c far" {
		t.Errorf("order %s", got)
	}
}
