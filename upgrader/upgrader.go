// Package upgrader is the bootc-style porcelain over a sysroot: switch a
// system to a container image, and upgrade whatever the merge deployment's
// origin follows, a container image (container-image-reference) or an
// OSTree refspec (sysroot.Upgrade, as `ostree admin upgrade`).
package upgrader

import (
	"context"
	"fmt"

	"github.com/strata-os/strata/container"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/sysroot"
)

// Options tune Switch and Upgrade; the zero value works.
type Options struct {
	// OS is the stateroot; "" means the booted one.
	OS string
	// Pull tunes image pulls.
	Pull container.PullOptions
	// Retain keeps every current deployment.
	Retain bool
	// Stage writes the deployment to become the default at shutdown
	// (the default on a booted system, as bootc does).
	Stage bool
	// Check only reports whether an update is available: for an image,
	// its manifest and config are read (no layer); for a refspec, the
	// commit is pulled without deploying.
	Check bool
	// DownloadOnly fetches the update without deploying it.
	DownloadOnly bool
	// Puller pulls OSTree refspecs with a remote.
	Puller sysroot.Puller
}

// Result reports what Switch or Upgrade did.
type Result struct {
	// Image is the image the system follows (zero for a refspec).
	Image container.OstreeImageRef
	// Changed is false when there was nothing newer.
	Changed bool
	From    objects.Checksum
	To      objects.Checksum // zero after a Check of an image
	// Digest and Version of the image's (new) manifest.
	Digest, Version string
	Pull            *container.PullResult
	Deploy          *sysroot.DeployResult
	// Refspec is set when the origin follows an OSTree ref.
	Refspec string
}

func osName(s *sysroot.Sysroot, o Options) (string, error) {
	if o.OS != "" {
		return o.OS, nil
	}
	if b := s.Booted(); b != nil {
		return b.OS, nil
	}
	return "", fmt.Errorf("%w: not booted into this sysroot: name the stateroot (--os)", errdefs.ErrInvalid)
}

// Switch pulls ref and deploys it with an origin that follows it from
// now on (container-image-reference), keeping /etc and kernel arguments
// from the current deployment.
func Switch(ctx context.Context, s *sysroot.Sysroot, ref container.ImageRef, o Options) (*Result, error) {
	osname, err := osName(s, o)
	if err != nil {
		return nil, err
	}
	img := container.OstreeImageRef{SigVerify: container.SigUnverified, Image: ref}
	res := &Result{Image: img, Changed: true}
	if m := s.MergeDeployment(osname); m != nil {
		res.From = m.Checksum
	}
	return res, pullDeploy(ctx, s, osname, img, o, res)
}

func pullDeploy(ctx context.Context, s *sysroot.Sysroot, osname string, img container.OstreeImageRef, o Options, res *Result) error {
	pr, err := container.Pull(ctx, s.Repo(), img.Image, o.Pull)
	if err != nil {
		return err
	}
	res.Pull, res.To, res.Digest, res.Version = pr, pr.MergeCommit, pr.ManifestDigest, pr.Version
	img.SigVerify = container.SigVerifyOf(pr)
	res.Image = img
	if res.To == res.From {
		res.Changed = false
		return nil
	}
	if o.DownloadOnly {
		return nil
	}
	dr, err := s.Deploy(ctx, sysroot.DeployOptions{
		OS: osname, Revision: pr.MergeCommit.String(), Origin: container.Origin(img, pr.ManifestDigest),
		Retain: o.Retain, Stage: o.Stage,
	})
	if err != nil {
		return err
	}
	res.Deploy = dr
	return nil
}

// Upgrade follows the merge deployment's origin: an image is resolved
// and, when its manifest digest changed, pulled (only missing layers)
// and deployed; a refspec goes through sysroot.Upgrade.
func Upgrade(ctx context.Context, s *sysroot.Sysroot, o Options) (*Result, error) {
	osname, err := osName(s, o)
	if err != nil {
		return nil, err
	}
	merge := s.MergeDeployment(osname)
	if merge == nil {
		return nil, fmt.Errorf("%w: no deployment of %s to upgrade", errdefs.ErrNotFound, osname)
	}
	img, isImage, err := container.OriginImage(merge.Origin)
	if err != nil {
		return nil, fmt.Errorf("origin of %s: %w", merge.Name(), err)
	}
	if !isImage {
		ur, err := s.Upgrade(ctx, sysroot.UpgradeOptions{OS: osname, Stage: o.Stage, PullOnly: o.Check || o.DownloadOnly, Puller: o.Puller})
		if err != nil {
			return nil, err
		}
		res := &Result{Changed: ur.Changed, From: ur.From, To: ur.To, Deploy: ur.Deploy, Refspec: merge.Refspec()}
		return res, nil
	}
	res := &Result{Image: img, From: merge.Checksum, Changed: true}
	deployed, _ := merge.Origin.Get("origin", "container-image-digest")
	if deployed == "" {
		if info, err := container.Inspect(s.Repo(), merge.Checksum); err == nil {
			deployed = info.ManifestDigest
		}
	}
	rs, err := container.Resolve(ctx, img.Image, o.Pull.Access)
	if err != nil {
		return nil, err
	}
	res.Digest, res.Version = rs.ManifestDigest, rs.Version
	if rs.ManifestDigest == deployed {
		res.Changed = false
		res.To = merge.Checksum
		return res, nil
	}
	if o.Check {
		return res, nil
	}
	return res, pullDeploy(ctx, s, osname, img, o, res)
}
