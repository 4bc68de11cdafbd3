package commit

import (
	"testing"
	"time"
)

func TestParseDate(t *testing.T) {
	now := time.Date(2024, 3, 10, 15, 30, 0, 0, time.Local)
	cases := []struct {
		in   string
		want time.Time
	}{
		{"now", now},
		{"3 days ago", now.AddDate(0, 0, -3)},
		{"1 week ago", now.AddDate(0, 0, -7)},
		{"2 hours ago", now.Add(-2 * time.Hour)},
		{"1 month ago", now.AddDate(0, -1, 0)},
		{"yesterday", time.Date(2024, 3, 9, 0, 0, 0, 0, time.Local)},
		{"2024-01-02", time.Date(2024, 1, 2, 0, 0, 0, 0, time.Local)},
		{"2024-01-02 12:00:00", time.Date(2024, 1, 2, 12, 0, 0, 0, time.Local)},
		{"2024-01-02T12:00:00Z", time.Date(2024, 1, 2, 12, 0, 0, 0, time.UTC)},
		{"@1700000000", time.Unix(1700000000, 0)},
	}
	for _, c := range cases {
		got, err := ParseDate(c.in, now)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%q: %v %v, want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "soon", "x days ago", "3 fortnights ago", "2024-13-01"} {
		if _, err := ParseDate(bad, now); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
