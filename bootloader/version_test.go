package bootloader

import "testing"

func TestVersionCompareOrder(t *testing.T) {
	// Each string sorts strictly above the one before it (examples from
	// the Version Format Specification's rules).
	ordered := []string{
		"~1", "", "a", "b", "strata-1-2-os", "strata-2-1-os", "strata-10-1-os",
		"1~rc1", "1", "1-0", "1^post", "1.a", "1.1", "1.2", "1.10", "1a", "2", "10", "010a",
	}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := VersionCompare(ordered[i], ordered[j]); got != want {
				t.Errorf("VersionCompare(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	if VersionCompare("a+3-0", "a_3-0") != 0 {
		t.Error("'+' and '_' must be skipped alike")
	}
}
