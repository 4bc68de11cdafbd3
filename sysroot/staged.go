package sysroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/gvariant"
	"github.com/strata-os/strata/objects"
)

// Staged deployments, as ostree keeps them: the deployment directory is
// written at once, and RUN/ostree/staged-deployment (a tmpfs, so it does
// not survive a reboot) records what finalize-staged needs at shutdown, a
// GVariant a{sv}:
//
//	"target"           a{sv} {"name": "CSUM.SERIAL", "osname": s, "bootcsum": s}
//	"merge-deployment" a{sv} (the same keys), when there is one
//	"kargs"            as, when the kernel arguments were given
//
// RUN/ostree/staged-deployment-locked makes finalize-staged do nothing.

const (
	stagedFile       = "ostree/staged-deployment"
	stagedLockedFile = "ostree/staged-deployment-locked"
)

var (
	asvType = gvariant.MustParseType("a{sv}")
	asType  = gvariant.MustParseType("as")
	sType   = gvariant.MustParseType("s")
)

type stagedState struct {
	target   *Deployment
	merge    *Deployment // a stub: OS, Checksum, Serial, BootChecksum
	kargs    []string
	hasKargs bool
}

func (s *Sysroot) stagedPath() string { return filepath.Join(s.opts.RunDir, stagedFile) }

// readStaged reads the staged state, or returns nil when there is none.
func (s *Sysroot) readStaged() (*stagedState, error) {
	p := s.stagedPath()
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading staged deployment: %w", err)
	}
	md, err := objects.ParseMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("%w: loading staged deployment %s: %v", ErrCorrupt, p, err)
	}
	st := &stagedState{}
	if v, ok := md.Get("target"); ok {
		if st.target, err = stubFromVariant(v); err != nil {
			return nil, fmt.Errorf("loading staged deployment %s: %w", p, err)
		}
	}
	if st.target == nil {
		return nil, nil
	}
	if v, ok := md.Get("merge-deployment"); ok {
		if st.merge, err = stubFromVariant(v); err != nil {
			return nil, fmt.Errorf("loading staged deployment %s: %w", p, err)
		}
	}
	if v, ok := md.Get("kargs"); ok && v.Type.String() == "as" {
		st.hasKargs = true
		for _, a := range v.Value.([]any) {
			st.kargs = append(st.kargs, a.(string))
		}
	}
	d := st.target
	d.Staged, d.BootSerial = true, -1
	d.entry = bootloader.NewEntry()
	if st.hasKargs {
		ka := &bootloader.Kargs{}
		for _, a := range st.kargs {
			ka.Append(a)
		}
		d.entry.Set("options", ka.String())
	}
	if err := s.loadOrigin(d); err != nil {
		return nil, err
	}
	return st, nil
}

// stubFromVariant parses a serialized deployment {name, osname, bootcsum}.
func stubFromVariant(v gvariant.Variant) (*Deployment, error) {
	if v.Type.String() != "a{sv}" {
		return nil, fmt.Errorf("%w: deployment is a %s, not a{sv}", ErrCorrupt, v.Type)
	}
	keys := map[string]string{}
	for _, it := range v.Value.([]any) {
		kv := it.([]any)
		if vv := kv[1].(gvariant.Variant); vv.Type.String() == "s" {
			keys[kv[0].(string)] = vv.Value.(string)
		}
	}
	for _, k := range []string{"name", "osname", "bootcsum"} {
		if _, ok := keys[k]; !ok {
			return nil, fmt.Errorf("%w: missing key: %s", ErrCorrupt, k)
		}
	}
	csum, serial, err := parseDeployName(keys["name"])
	if err != nil {
		return nil, err
	}
	return &Deployment{OS: keys["osname"], Checksum: csum, Serial: serial, BootChecksum: keys["bootcsum"], BootSerial: -1}, nil
}

func stubVariant(d *Deployment) gvariant.Variant {
	str := func(s string) gvariant.Variant { return gvariant.Variant{Type: sType, Value: s} }
	return gvariant.Variant{Type: asvType, Value: []any{
		[]any{"name", str(d.Name())},
		[]any{"osname", str(d.OS)},
		[]any{"bootcsum", str(d.BootChecksum)},
	}}
}

// writeStaged records the staged deployment in RUN/ostree.
func (s *Sysroot) writeStaged(st *stagedState) error {
	var md objects.Metadata
	md.Set("target", stubVariant(st.target))
	if st.merge != nil {
		md.Set("merge-deployment", stubVariant(st.merge))
	}
	if st.hasKargs {
		md.Set("kargs", gvariant.Variant{Type: asType, Value: append([]string{}, st.kargs...)})
	}
	data, err := md.Marshal()
	if err != nil {
		return fmt.Errorf("staged deployment: %w", err)
	}
	if err := fsutil.MkdirAllSync(filepath.Dir(s.stagedPath()), 0o755); err != nil {
		return fmt.Errorf("staged deployment: %w", err)
	}
	if err := fsutil.CheckFailpoint("sysroot:stage-state"); err != nil {
		return err
	}
	return fsutil.WriteFile(s.stagedPath(), data, 0o644)
}

// removeStagedState deletes the staged state and the finalization lock.
func (s *Sysroot) removeStagedState() error {
	if err := fsutil.CheckFailpoint("sysroot:unstage"); err != nil {
		return err
	}
	for _, p := range []string{s.stagedPath(), filepath.Join(s.opts.RunDir, stagedLockedFile)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("staged deployment: %w", err)
		}
	}
	return fsutil.SyncDir(filepath.Dir(s.stagedPath()))
}
