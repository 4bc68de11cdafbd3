package updates

import (
	"os"
	"strings"
	"testing"
)

// The units compose installs keep the promises docs/updates.md makes.
func TestSystemdUnits(t *testing.T) {
	for file, wants := range map[string][]string{
		"../dist/systemd/strata-update.timer":   {"OnBootSec=", "OnUnitInactiveSec=", "RandomizedDelaySec=", "WantedBy=timers.target"},
		"../dist/systemd/strata-update.service": {"Requires=boot-complete.target", "After=boot-complete.target", "ExecStart=/usr/bin/strata update run", "Type=oneshot"},
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wants {
			found := strings.Contains("\n"+string(b), "\n"+w)
			if !found {
				t.Errorf("%s: no %s", file, w)
			}
		}
	}
}
