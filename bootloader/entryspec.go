package bootloader

import (
	"fmt"

	"github.com/strata-os/strata/ghash"
)

// EntrySpec is what ostree's install_deployment_kernel puts into a
// deployment's boot entry: the facts about one deployment (of
// sysroot.Deployment) that its entry is made from.
type EntrySpec struct {
	OSName string
	// ShowOSName adds ":OSNAME" to the title (ostree does when deployments
	// of more than one stateroot are written).
	ShowOSName bool
	// Name is DeploymentName of the deployment tree (PRETTY_NAME or ID);
	// Version the commit's "version" metadata ("" if none).
	Name, Version string
	// Index is the deployment's position (0 = default) among Count.
	Index, Count int
	// BootVersion is the loader.N being written, BootSerial the
	// deployment's boot serial.
	BootVersion, BootSerial int
	Kernel                  *KernelLayout
	// OverlayInitrds are the overlay initrd paths in /boot
	// ("/ostree/initramfs-overlays/$csum.img"); used only with an
	// initramfs.
	OverlayInitrds []string
	// BLSAppend are the key=value pairs of sysroot.bls-append-except-default
	// in the order of the configuration; they go into every entry but the
	// default's.
	BLSAppend [][2]string
}

// SetSpec sets on e what install_deployment_kernel sets, in its
// order (which decides where keys ostree does not know are written; see
// Format): title, version, linux, initrd and overlay initrds (or, without
// an initramfs, an init= argument for ostree-prepare-root), devicetree or
// fdtdir, then options (e's options with init= and ostree= set), then the
// BLSAppend pairs, in ostree's hash table order, unless Index is 0.
//
// e is the deployment's current entry: ParseEntry of its file for an
// existing deployment; for a new one, a NewEntry on which "options" was
// set first when the arguments are inherited from the merge deployment or
// given on the command line (as ostree does), or left unset otherwise.
func (e *Entry) SetSpec(d EntrySpec) {
	l := d.Kernel
	csumDir := fmt.Sprintf("/ostree/%s-%s/", d.OSName, l.BootCsum)
	e.Set("title", Title(d.Name, d.Version, d.OSName, d.ShowOSName, d.Index))
	e.Set("version", fmt.Sprint(d.Count-d.Index))
	e.Set("linux", csumDir+l.KernelName)
	kargs := ParseKargs(e.Value("options"))
	if l.InitramfsName != "" {
		e.Set("initrd", csumDir+l.InitramfsName)
		if len(d.OverlayInitrds) > 0 {
			e.SetOverlayInitrds(d.OverlayInitrds)
		}
	} else {
		kargs.Set(fmt.Sprintf("init=/ostree/boot.%d/%s/%s/%d/usr/lib/ostree/ostree-prepare-root",
			d.BootVersion, d.OSName, l.BootCsum, d.BootSerial))
	}
	switch {
	case l.DevicetreeName != "":
		e.Set("devicetree", csumDir+l.DevicetreeName)
	case l.Devicetree != "":
		e.Set("fdtdir", csumDir+l.Devicetree)
	}
	kargs.Set(OstreeKarg(d.BootVersion, d.OSName, l.BootCsum, d.BootSerial))
	e.Set("options", kargs.String())
	if d.Index != 0 && len(d.BLSAppend) > 0 {
		vals := map[string]string{}
		var keys []string
		for _, kv := range d.BLSAppend {
			keys = append(keys, kv[0])
			vals[kv[0]] = kv[1] // the last of a repeated key wins
		}
		// ostree applies sysroot.bls-append-except-default in the order
		// of the hash table it reads the pairs into.
		for _, k := range ghash.Order(keys) {
			e.Set(k, vals[k])
		}
	}
}
