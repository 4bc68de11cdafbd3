package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/container"
	"github.com/strata-os/strata/imgpolicy"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/progress"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sysroot"
)

const imgrefHelp = `IMGREF is registry:HOST/NAME[:TAG|@DIGEST] (or docker://...), oci:DIR[:TAG] or
oci-archive:FILE[:TAG]. Registries on 127.0.0.1, localhost and private addresses
are spoken to over plain HTTP, others over HTTPS, except as registries.conf says.
` + accessHelp + `

Signatures: the policy (--policy, else /etc/containers/policy.json when it
exists) is checked before anything is written. Supported requirements:
insecureAcceptAnything, reject, sigstoreSigned with keyPath/keyData (cosign's
sha256-<hex>.sig tag; "strata container sign" makes them), signedBy GPGKeys
(skopeo copy --sign-by, read from the lookaside in registries.d). An origin
says ostree-image-signed when signatures were required and verified, else
ostree-unverified-registry / ostree-unverified-image.`

const accessHelp = `Credentials (containers-auth.json): --authfile=FILE, else for pull,
unencapsulate, encapsulate and sign as podman and skopeo: $REGISTRY_AUTH_FILE
alone, else $XDG_RUNTIME_DIR/containers/auth.json (/run/containers/UID/auth.json),
~/.config/containers/auth.json, ~/.docker/config.json; for the system's pulls
(deploy, switch, upgrade, the update agent) as bootc/ostree-ext: the first of
/run/ostree/auth.json, /etc/ostree/auth.json, /usr/lib/ostree/auth.json, else
anonymous. A file's "credHelpers": {"HOST[:PORT]": "NAME"} runs
docker-credential-NAME get (from PATH, 30s at most) for that registry before
the file's "auths"; a helper that holds nothing passes to the next file.
Docker's "credsStore" and registries.conf's credential-helpers are not read.
registries.conf (--registries-conf, else $CONTAINERS_REGISTRIES_CONF, else
/etc/containers/registries.conf, plus the *.conf drop-ins of FILE.d): a
registry marked blocked is refused; insecure is reached over HTTPS without
certificate verification, or plain HTTP; a pull tries the [[registry.mirror]]s
that apply (pull-from-mirror, mirror-by-digest-only), then the registry's
location (a prefix remapped to it), and takes the whole image from the first
that serves its manifest; refs and the origin keep the name as written.
Pushes go to the name as written, never to a mirror. Short-name aliases and
search are not supported.`

func init() { rootCmd.AddCommand(newContainerCmd()) }

func newContainerCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "container",
		Short: "Container images: pull, deploy, encapsulate (ostree-ext compatible)",
		Long: `Container images as OS trees, with ostree-ext's formats and refs (docs/oci.md).

` + imgrefHelp,
	}
	img := &cobra.Command{Use: "image", Short: "Pull, deploy, list, remove and prune container images"}
	img.AddCommand(newImagePullCmd(), newImageDeployCmd(), newImageListCmd(), newImageRemoveCmd(), newImagePruneCmd())
	c.AddCommand(img, newEncapsulateCmd(), newUnencapsulateCmd(), newSignCmd())
	return c
}

// jsonReporter prints progress as JSON lines.
type jsonReporter struct {
	w     io.Writer
	mu    sync.Mutex
	phase string
	unit  string
	total int64
	n     int64
	last  time.Time
}

func (j *jsonReporter) Phase(name, unit string, total int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.phase, j.unit, j.total, j.n = name, unit, total, 0
	writeJSONLine(j.w, map[string]any{"event": "phase", "phase": name, "unit": unit, "total": total})
}

func (j *jsonReporter) Add(n int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.n += n
	if time.Since(j.last) >= 200*time.Millisecond {
		j.last = time.Now()
		writeJSONLine(j.w, map[string]any{"event": "progress", "phase": j.phase, "unit": j.unit, "done": j.n, "total": j.total})
	}
}

func (j *jsonReporter) Done() {
	j.mu.Lock()
	defer j.mu.Unlock()
	writeJSONLine(j.w, map[string]any{"event": "done", "phase": j.phase, "unit": j.unit, "done": j.n, "total": j.total})
}

type imagePullFlags struct {
	jobs        int
	json        bool
	retries     int
	policy      string
	registriesD string
	access      accessFlags
}

// accessFlags are --authfile and --registries-conf.
type accessFlags struct {
	authfile       string
	registriesConf string
	// system: the system's pulls, whose credentials are ostree-ext's
	// (/run/ostree/auth.json...), not the user's.
	system bool
}

func (a *accessFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.authfile, "authfile", "", "registry credentials (containers-auth.json); default: see --help")
	cmd.Flags().StringVar(&a.registriesConf, "registries-conf", "", "registries.conf (default $CONTAINERS_REGISTRIES_CONF, else "+container.DefaultRegistriesConf+")")
}

// get reads registries.conf and chooses the credentials files.
func (a *accessFlags) get() (container.Access, error) {
	var acc container.Access
	switch {
	case a.authfile != "":
		acc.Keychain = container.AuthFileKeychain(a.authfile)
	case a.system:
		acc.Keychain = container.SystemKeychain("/")
	default:
		acc.Keychain = container.NewKeychain(container.UserAuthFiles()...)
	}
	path, required := a.registriesConf, a.registriesConf != ""
	if path == "" {
		path = os.Getenv("CONTAINERS_REGISTRIES_CONF")
		required = path != ""
	}
	if path == "" {
		path = container.DefaultRegistriesConf
	}
	var err error
	acc.Registries, err = container.LoadRegistries(path, required)
	return acc, err
}

func (p *imagePullFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&p.jobs, "jobs", 4, "layers fetched at once")
	cmd.Flags().IntVar(&p.retries, "retries", 5, "times a broken layer download resumes (HTTP Range) before failing")
	cmd.Flags().BoolVar(&p.json, "json", false, "report progress and the result as JSON lines on stdout")
	cmd.Flags().StringVar(&p.policy, "policy", "", "signature policy (containers-policy.json; default "+imgpolicy.DefaultPath+" when it exists)")
	cmd.Flags().StringVar(&p.registriesD, "registries.d", container.DefaultRegistriesD, "where lookaside signature locations are configured")
	p.access.add(cmd)
}

func (p *imagePullFlags) options(cmd *cobra.Command) (container.PullOptions, error) {
	var rep progress.Reporter = newReporter(cmd)
	if p.json {
		rep = &jsonReporter{w: cmd.OutOrStdout()}
	}
	o := container.PullOptions{Jobs: p.jobs, Retries: p.retries, Reporter: rep, RegistriesD: p.registriesD}
	var err error
	if o.Access, err = p.access.get(); err != nil {
		return o, err
	}
	pol, err := loadPolicy(p.policy)
	o.Policy = pol
	return o, err
}

// loadPolicy reads the signature policy at path, else at
// imgpolicy.DefaultPath when it exists; nil without one (images are
// taken unverified).
func loadPolicy(path string) (*imgpolicy.Policy, error) {
	if path == "" {
		if _, err := os.Stat(imgpolicy.DefaultPath); err != nil {
			return nil, nil
		}
		path = imgpolicy.DefaultPath
	}
	return imgpolicy.Load(path)
}

func printPull(cmd *cobra.Command, p *imagePullFlags, res *container.PullResult) {
	if p.json {
		writeJSONLine(cmd.OutOrStdout(), map[string]any{"event": "pulled", "merge-commit": res.MergeCommit.String(),
			"base-commit": nonZero(res.BaseCommit), "manifest-digest": res.ManifestDigest, "layers-fetched": res.LayersFetched,
			"layers-reused": res.LayersReused, "layers-partial": res.LayersPartial, "bytes-fetched": res.BytesFetched, "version": res.Version})
		return
	}
	fmt.Fprintln(cmd.OutOrStdout(), res.MergeCommit)
	w := cmd.ErrOrStderr()
	fmt.Fprintf(w, "Image %s: %d layers fetched (%d of them in part; %d bytes), %d already present\n", res.ManifestDigest, res.LayersFetched, res.LayersPartial, res.BytesFetched, res.LayersReused)
	if !res.BaseCommit.IsZero() {
		fmt.Fprintf(w, "Encapsulated commit: %s\n", res.BaseCommit)
	}
}

func nonZero(c objects.Checksum) string {
	if c.IsZero() {
		return ""
	}
	return c.String()
}

func newImagePullCmd() *cobra.Command {
	var p imagePullFlags
	cmd := &cobra.Command{
		Use:   "pull IMGREF",
		Short: "Pull an image into the repository (--repo); prints the merge commit",
		Long: `Pull an image into the repository (--repo) and print its merge commit.

Only the layers the repository lacks are fetched, --jobs at once; a broken
download resumes with HTTP Range; free space is checked against the manifest
before the first byte. Every blob is checked against its digest while it
streams; a layer's ref is written only after the whole layer verified, and the
image's ref (ostree/container/image/...) last.

` + imgrefHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := pullToRepo(cmd, &p, args[0])
			if err != nil {
				return err
			}
			printPull(cmd, &p, res)
			return nil
		},
	}
	p.add(cmd)
	return cmd
}

// deployImage pulls ref into s's repository and deploys its merge commit
// with ostree-ext's origin.
func deployImage(cmd *cobra.Command, s *sysroot.Sysroot, ref container.ImageRef, p *imagePullFlags, o sysroot.DeployOptions) (*sysroot.DeployResult, *container.PullResult, error) {
	po, err := p.options(cmd)
	if err != nil {
		return nil, nil, err
	}
	res, err := container.Pull(cmd.Context(), s.Repo(), ref, po)
	if err != nil {
		return nil, nil, err
	}
	o.Revision = res.MergeCommit.String()
	o.Origin = container.Origin(container.OstreeImageRef{SigVerify: container.SigVerifyOf(res), Image: ref}, res.ManifestDigest)
	dr, err := s.Deploy(cmd.Context(), o)
	return dr, res, err
}

func newImageDeployCmd() *cobra.Command {
	p := imagePullFlags{access: accessFlags{system: true}}
	var o sysroot.DeployOptions
	var imgref string
	cmd := &cobra.Command{
		Use:   "deploy --imgref=IMGREF [--stateroot=OS]",
		Short: "Pull an image and deploy it (ostree container image deploy)",
		Long: `Pull an image into the sysroot's repository and deploy its merge commit. The
origin records container-image-reference=ostree-unverified-registry:NAME (or
ostree-unverified-image:TRANSPORT:NAME) as ostree-ext writes it, and
container-image-digest, the manifest digest strata verified.

` + imgrefHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := container.ParseImageRef(imgref)
			if err != nil {
				return err
			}
			s, err := openSysroot(cmd)
			if err != nil {
				return err
			}
			dr, _, err := deployImage(cmd, s, ref, &p, o)
			if err != nil {
				return err
			}
			printDeployResult(cmd.OutOrStdout(), dr)
			return nil
		},
	}
	p.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&imgref, "imgref", "", "the image to deploy (required)")
	fl.StringVar(&o.OS, "stateroot", "", "the stateroot (default: the booted one)")
	fl.StringArrayVar(&o.Karg, "karg", nil, "set a kernel argument")
	fl.BoolVar(&o.Retain, "retain", false, "keep every current deployment")
	fl.BoolVar(&o.Stage, "stage", false, "complete the deployment at shutdown")
	_ = cmd.MarkFlagRequired("imgref")
	return cmd
}

func newImageListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the images pulled into the repository",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			images, err := container.List(r)
			if err != nil {
				return err
			}
			for _, im := range images {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", im.Ref, im.MergeCommit, im.ManifestDigest)
			}
			return nil
		},
	}
}

func newImageRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove IMGREF...",
		Short: "Remove images' refs (their layers go at the next prune)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			for _, a := range args {
				ref, err := container.ParseImageRef(a)
				if err != nil {
					return err
				}
				if err := container.Remove(r, ref); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func newImagePruneCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove layers no image uses, then unreachable objects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo()
			if err != nil {
				return err
			}
			n, st, err := container.Prune(cmd.Context(), r, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed %d layer refs; deleted %d objects, %d bytes freed\n", n, st.Deleted, st.Freed)
			return nil
		},
	}
}

func newEncapsulateCmd() *cobra.Command {
	var o container.EncapsulateOptions
	var labels map[string]string
	var previous string
	var access accessFlags
	cmd := &cobra.Command{
		Use:   "encapsulate REV IMGREF",
		Short: "Export a commit as a chunked, reproducible container image (oci:, oci-archive: or registry:)",
		Long: `Export commit REV as an image in ostree-ext's encapsulated format: the commit
layer, then up to --max-layers-1 chunks of content objects, grouped by directory
so that an update touching few files changes few layers; the same commit always
gives the same manifest digest. Labels: ostree.commit, ostree.final-diffid,
containers.bootc=1, ostree.bootable=true, the commit's version. IMGREF is
oci:DIR[:TAG], oci-archive:FILE[:TAG] (the file is replaced and holds only this
image) or registry:HOST/NAME:TAG.

Layers are zstd by default and chunked: every content object of a chunk layer
is a zstd frame of its own, and the commit layer carries a table of contents
(in a zstd skippable frame, invisible to other tools), so that strata fetches
from a changed layer only the objects a repository lacks, with HTTP Range
requests. --compression=gzip writes one gzip stream a layer (fetched whole) for
consumers that cannot read zstd layers (Docker before 23). The grouping is a
function of each file's path, so it is stable from one version to the next;
--previous=IMGREF (an earlier export by strata with zstd layers) keeps every
object of it in its layer even where the rule would move it (a directory that
grew past a layer's share). Not supported yet: zstd:chunked's own table of
contents (podman's partial pulls read these layers as plain zstd).

` + accessHelp,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dest, err := container.ParseImageRef(args[1])
			if err != nil {
				return err
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			c, err := r.ResolveRev(args[0])
			if err != nil {
				return err
			}
			o.Labels = labels
			if o.Access, err = access.get(); err != nil {
				return err
			}
			if previous != "" {
				p, err := container.ParseImageRef(previous)
				if err != nil {
					return fmt.Errorf("--previous: %w", err)
				}
				o.Previous = &p
			}
			res, err := container.Encapsulate(cmd.Context(), r, c, dest, o)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.ManifestDigest)
			return nil
		},
	}
	cmd.Flags().IntVar(&o.MaxLayers, "max-layers", 64, "most layers in the image (2-128)")
	cmd.Flags().StringVar(&o.Compression, "compression", container.CompressionZstd, "layer compression: zstd (chunked, fetched in part) or gzip")
	cmd.Flags().StringVar(&previous, "previous", "", "an earlier export (IMGREF, zstd) whose layout to keep: its objects stay in their layers")
	cmd.Flags().StringToStringVar(&labels, "label", nil, "add a label KEY=VALUE")
	access.add(cmd)
	return cmd
}

func newUnencapsulateCmd() *cobra.Command {
	var p imagePullFlags
	cmd := &cobra.Command{
		Use:   "unencapsulate IMGREF",
		Short: "Import an encapsulated image and print the OSTree commit it carries",
		Long:  "Pull an encapsulated image (see pull) and print the commit it carries: the\nsame checksum as the commit it was exported from.\n\n" + imgrefHelp,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := pullToRepo(cmd, &p, args[0])
			if err != nil {
				return err
			}
			if res.BaseCommit.IsZero() {
				return fmt.Errorf("%w: image %s is not an encapsulated OSTree commit (no ostree.commit label)", repo.ErrInvalid, args[0])
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.BaseCommit)
			return nil
		},
	}
	p.add(cmd)
	return cmd
}

func newSignCmd() *cobra.Command {
	var keyPath string
	var access accessFlags
	cmd := &cobra.Command{
		Use:   "sign --key=KEY.pem registry:HOST/NAME:TAG",
		Short: "Sign an image in a registry, cosign-compatible (ECDSA P-256)",
		Long: `Sign the image a registry reference names: a simple-signing payload (the
reference and its manifest digest) signed with ECDSA P-256, pushed under the tag
sha256-<hex>.sig as cosign does, so policies with sigstoreSigned (and cosign
verify --key) accept it. KEY.pem is an unencrypted EC PRIVATE KEY or PKCS #8
PRIVATE KEY (openssl ecparam -name prime256v1 -genkey -noout); cosign's
encrypted key files are not read. Prints the signed manifest digest.

` + accessHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := container.ParseImageRef(args[0])
			if err != nil {
				return err
			}
			data, err := os.ReadFile(keyPath)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			key, err := container.ParsePrivateKey(data)
			if err != nil {
				return fmt.Errorf("--key %s: %w", keyPath, err)
			}
			acc, err := access.get()
			if err != nil {
				return err
			}
			d, err := container.Sign(cmd.Context(), ref, key, acc)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), d)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "the private key (PEM, required)")
	access.add(cmd)
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

// pullToRepo pulls the image imgref names into the repository the global
// flags name, with the pull flags p: the first steps of pull and
// unencapsulate.
func pullToRepo(cmd *cobra.Command, p *imagePullFlags, imgref string) (*container.PullResult, error) {
	ref, err := container.ParseImageRef(imgref)
	if err != nil {
		return nil, err
	}
	r, err := openRepo()
	if err != nil {
		return nil, err
	}
	po, err := p.options(cmd)
	if err != nil {
		return nil, err
	}
	return container.Pull(cmd.Context(), r, ref, po)
}
