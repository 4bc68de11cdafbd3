package bootloader

import "testing"

func TestSetSpec(t *testing.T) {
	l := &KernelLayout{Kernel: "vmlinuz", KernelName: "vmlinuz-6.1", Initramfs: "initramfs.img", InitramfsName: "initramfs-6.1.img", BootCsum: "c"}
	e := NewEntry()
	e.Set("options", "root=/dev/vda ostree=/old")
	e.SetSpec(EntrySpec{
		OSName: "os", Name: "OS", Version: "2", Index: 1, Count: 3, BootVersion: 1, BootSerial: 0, Kernel: l,
		OverlayInitrds: []string{"/ostree/initramfs-overlays/x.img"},
		BLSAppend:      [][2]string{{"grub_users", "a"}, {"grub_users", "b"}},
	})
	want := "title OS 2 (ostree:1)\nversion 2\noptions root=/dev/vda ostree=/ostree/boot.1/os/c/0\n" +
		"linux /ostree/os-c/vmlinuz-6.1\ninitrd /ostree/os-c/initramfs-6.1.img\ninitrd /ostree/initramfs-overlays/x.img\ngrub_users b\n"
	if got := string(e.Format()); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	// No initramfs: init= for ostree-prepare-root, before ostree=; the
	// default deployment gets no bls-append; overlays need an initrd.
	l = &KernelLayout{Kernel: "vmlinuz", KernelName: "vmlinuz-6.1", Devicetree: "dtb", BootCsum: "c"}
	e = NewEntry()
	e.SetSpec(EntrySpec{
		OSName: "os", Name: "OS", Index: 0, Count: 1, BootVersion: 0, BootSerial: 2, Kernel: l, ShowOSName: true,
		OverlayInitrds: []string{"/x.img"}, BLSAppend: [][2]string{{"k", "v"}},
	})
	want = "title OS (ostree:os:0)\nversion 1\n" +
		"options init=/ostree/boot.0/os/c/2/usr/lib/ostree/ostree-prepare-root ostree=/ostree/boot.0/os/c/2\n" +
		"linux /ostree/os-c/vmlinuz-6.1\nfdtdir /ostree/os-c/dtb\n"
	if got := string(e.Format()); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
