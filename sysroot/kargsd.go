package sysroot

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/tree"
)

// KargsDir is where an image keeps its kernel arguments, as bootc reads
// them: every *.toml file, in name order, with `kargs = [...]` and an
// optional `match-architectures = [...]` (Rust's names: x86_64, aarch64).
const KargsDir = "/usr/lib/bootc/kargs.d"

var goToRustArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "x86", "ppc64le": "powerpc64", "s390x": "s390x", "riscv64": "riscv64"}

// maxKargsFile bounds one kargs.d file.
const maxKargsFile = 1 << 20

// ImageKargs reads the kernel arguments of commit c's kargs.d (none when
// the directory is absent).
func ImageKargs(r *repo.Repo, c objects.Checksum) ([]string, error) {
	cm, err := r.ReadCommit(c)
	if err != nil {
		return nil, err
	}
	root := tree.RepoTree(r, cm.RootTree, cm.RootMeta)
	dir, err := tree.Lookup(r, root, KargsDir)
	if err != nil {
		// Missing, or a component of the path is not a directory (a
		// symlinked usr is refused by the deploy's own check, naming
		// the commit and the path): no kargs.d.
		if errdefs.IsNotFound(err) || errdefs.IsInvalid(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("commit %s: %s: %w", c, KargsDir, err)
	}
	if !dir.Dir {
		return nil, nil
	}
	dt, err := r.ReadDirTree(dir.Tree)
	if err != nil {
		return nil, err
	}
	files := append([]objects.TreeFile(nil), dt.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	var out []string
	for _, f := range files {
		if !strings.HasSuffix(f.Name, ".toml") {
			continue
		}
		hdr, rc, err := r.OpenFileVerified(f.Checksum)
		if err != nil {
			return nil, err
		}
		if hdr.Mode&objects.ModeTypeMask != objects.ModeRegular {
			rc.Close()
			continue
		}
		// Read to EOF (where the reader verifies the object), at most
		// maxKargsFile bytes.
		b, err := io.ReadAll(io.LimitReader(rc, maxKargsFile+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", KargsDir, f.Name, err)
		}
		if len(b) > maxKargsFile {
			return nil, fmt.Errorf("%s/%s: %w (%d bytes)", KargsDir, f.Name, fsutil.ErrTooLarge, maxKargsFile)
		}
		var doc struct {
			Kargs              []string `toml:"kargs"`
			MatchArchitectures []string `toml:"match-architectures"`
		}
		if err := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields().Decode(&doc); err != nil {
			return nil, fmt.Errorf("%s/%s: %v: %w", KargsDir, f.Name, err, errdefs.ErrInvalid)
		}
		if len(doc.MatchArchitectures) > 0 && !slices.Contains(doc.MatchArchitectures, goToRustArch[runtime.GOARCH]) {
			continue
		}
		out = append(out, doc.Kargs...)
	}
	return out, nil
}

// applyImageKargs adds the new commit's kargs.d arguments to a deployment's
// kernel arguments and drops those that only the merge deployment's
// commit had, as bootc does on deploy and upgrade. ka nil means "inherit
// the merge deployment's"; the result is nil when neither commit has
// kargs.d.
func (s *Sysroot) applyImageKargs(ka *bootloader.Kargs, csum objects.Checksum, merge *Deployment) (*bootloader.Kargs, error) {
	newArgs, err := ImageKargs(s.repo, csum)
	if err != nil {
		return nil, err
	}
	if err := checkKargs(newArgs); err != nil {
		return nil, fmt.Errorf("commit %s: %s: %w", csum, KargsDir, err)
	}
	var oldArgs []string
	if merge != nil {
		if oldArgs, err = ImageKargs(s.repo, merge.Checksum); err != nil {
			oldArgs = nil // the old commit may be pruned: nothing to remove
		}
	}
	if len(newArgs) == 0 && len(oldArgs) == 0 {
		return ka, nil
	}
	if ka == nil {
		if merge != nil {
			ka = bootloader.ParseKargs(merge.Options())
		} else {
			ka = &bootloader.Kargs{}
		}
	} else {
		ka = ka.Clone()
	}
	for _, a := range oldArgs {
		if !slices.Contains(newArgs, a) && slices.Contains(ka.Strings(), a) {
			_ = ka.Delete(a)
		}
	}
	for _, a := range newArgs {
		if !slices.Contains(ka.Strings(), a) {
			ka.Append(a)
		}
	}
	return ka, nil
}
