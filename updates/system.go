package updates

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/strata-os/strata/container"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/sysroot"
	"github.com/strata-os/strata/upgrader"
)

// SysrootSystem is the System of a booted strata/OSTree machine: it
// checks and stages with the upgrader (what `strata upgrade` runs: the
// merge deployment's origin, a container image or an OSTree refspec,
// downloaded, then deployed staged, finalized at shutdown) and reboots
// with systemctl. `strata upgrade --apply` is the same staging followed
// by a reboot that no strategy gates.
type SysrootSystem struct {
	// Open opens the sysroot afresh (its state changes between calls).
	Open func() (*sysroot.Sysroot, error)
	// Puller pulls the origin's remote ref (the CLI's puller).
	Puller sysroot.Puller
	// Access reaches the registry of an image origin (credentials,
	// registries.conf; the zero value is anonymous).
	Access container.Access
	// RebootCommand defaults to systemctl reboot.
	RebootCommand []string
	// BootIDPath defaults to /proc/sys/kernel/random/boot_id.
	BootIDPath string
}

func (s *SysrootSystem) Facts(ctx context.Context) (Facts, error) {
	sr, err := s.Open()
	if err != nil {
		return Facts{}, err
	}
	var f Facts
	if b := sr.Booted(); b != nil {
		f.Booted = b.Checksum.String()
	}
	if st := sr.Staged(); st != nil {
		f.Staged = st.Checksum.String()
	}
	p := s.BootIDPath
	if p == "" {
		p = "/proc/sys/kernel/random/boot_id"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return f, err
	}
	f.BootID = strings.TrimSpace(string(b))
	return f, nil
}

func (s *SysrootSystem) Check(ctx context.Context) (*Candidate, error) {
	sr, err := s.Open()
	if err != nil {
		return nil, err
	}
	res, err := upgrader.Upgrade(ctx, sr, upgrader.Options{DownloadOnly: true, Puller: s.Puller, Pull: container.PullOptions{Access: s.Access}})
	if err != nil {
		return nil, err
	}
	if !res.Changed || res.To.IsZero() {
		return nil, nil
	}
	return CandidateFromCommit(sr, res.To)
}

// CandidateFromCommit describes a commit of the sysroot's repository:
// its time, "version" and string metadata.
func CandidateFromCommit(sr *sysroot.Sysroot, c objects.Checksum) (*Candidate, error) {
	cm, err := sr.Repo().ReadCommit(c)
	if err != nil {
		return nil, err
	}
	cand := &Candidate{Checksum: c.String(), Timestamp: time.Unix(int64(cm.Timestamp), 0).UTC(), Metadata: map[string]string{}}
	for _, e := range cm.Metadata {
		if v, ok := cm.Metadata.String(e.Key); ok {
			cand.Metadata[e.Key] = v
		}
	}
	cand.Version = cand.Metadata["version"]
	return cand, nil
}

func (s *SysrootSystem) Stage(ctx context.Context, c *Candidate) error {
	sr, err := s.Open()
	if err != nil {
		return err
	}
	res, err := upgrader.Upgrade(ctx, sr, upgrader.Options{Stage: true, Puller: s.Puller, Pull: container.PullOptions{Access: s.Access}})
	if err != nil {
		return err
	}
	if res.To.String() != c.Checksum {
		return fmt.Errorf("the origin moved to %s while staging %s", res.To, c.Checksum)
	}
	return nil
}

func (s *SysrootSystem) Reboot(ctx context.Context) error {
	argv := s.RebootCommand
	if len(argv) == 0 {
		argv = []string{"systemctl", "reboot"}
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
