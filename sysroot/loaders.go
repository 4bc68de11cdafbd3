package sysroot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-os/strata/bootloader"
	"github.com/strata-os/strata/esp"
	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/grubcfg"
)

// Boot loader backends beside the BLS entries of loader.N (which every
// sysroot keeps, as ostree does). `strata install` records the backend
// in the repo config, group [strata], key bootloader (ostree ignores the
// group):
//
//   - "systemd-boot": after every switch the live entries and their
//     kernels are projected onto the vfat ESP mounted at ESPDir (package
//     esp); boot counting and blessing happen on the ESP's entries.
//   - "grub": every boot version gets loader.N/grub.cfg (package
//     grubcfg), reached through boot/grub/grub.cfg -> ../loader/grub.cfg,
//     so the boot/loader swap switches it too; the boot counter of a new
//     default lives in boot/grub/grubenv.
const (
	LoaderSystemdBoot = "systemd-boot"
	LoaderGRUB        = "grub"
)

// LoaderBackend returns the configured backend ("" for BLS entries only).
func (s *Sysroot) LoaderBackend() (string, error) {
	v, _ := s.repo.Config().Get("strata", "bootloader")
	switch v {
	case "", "none":
		return "", nil
	case LoaderSystemdBoot, LoaderGRUB:
		return v, nil
	}
	return "", fmt.Errorf("%w: repo config strata.bootloader=%q (want systemd-boot, grub or none)", ErrInvalid, v)
}

// ESPDir returns where the EFI System Partition is mounted.
func (s *Sysroot) ESPDir() string {
	if s.opts.ESPDir != "" {
		return s.opts.ESPDir
	}
	return filepath.Join(s.boot, "efi")
}

// grubEnvPath is GRUB's environment block (beside Debian's grub.cfg).
func (s *Sysroot) grubEnvPath() string { return filepath.Join(s.boot, "grub/grubenv") }

// espEntries returns the live deployments' entries for the ESP, default
// first.
func (s *Sysroot) espEntries() ([]esp.Entry, error) {
	var out []esp.Entry
	dir := filepath.Join(s.boot, fmt.Sprintf("loader.%d/entries", s.bootVersion))
	for _, d := range s.deployments {
		if d.Staged || d.EntryFile == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, d.EntryFile))
		if err != nil {
			return nil, fmt.Errorf("sysroot: %w", err)
		}
		out = append(out, esp.Entry{Key: d.Name(), OS: d.OS, Conf: data, Counter: counterSuffix(d.EntryFile)})
	}
	return out, nil
}

// checkESP fails unless an ESP strata installed is mounted at ESPDir.
func (s *Sysroot) checkESP() error {
	dir := s.ESPDir()
	if st, err := os.Stat(filepath.Join(dir, "loader/loader.conf")); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%w: no EFI System Partition with loader/loader.conf mounted at %s (the boot loader is systemd-boot)", ErrNotFound, dir)
	}
	return nil
}

// syncLoader projects the live entries onto the ESP (systemd-boot); a
// no-op for other backends. It runs after every switch and at the start
// of every change, so an interrupted projection is finished by the next.
func (s *Sysroot) syncLoader(ctx context.Context) error {
	kind, err := s.LoaderBackend()
	if err != nil || kind != LoaderSystemdBoot {
		return err
	}
	if err := s.checkESP(); err != nil {
		return err
	}
	entries, err := s.espEntries()
	if err != nil || len(entries) == 0 {
		return err
	}
	if err := esp.Sync(ctx, s.ESPDir(), s.boot, entries); err != nil {
		return fmt.Errorf("projecting boot entries onto the ESP: %w", err)
	}
	return nil
}

// SyncLoader is syncLoader under the sysroot lock (`strata admin
// sync-loader`).
func (s *Sysroot) SyncLoader(ctx context.Context) error {
	return s.withLock(ctx, func() error { return s.syncLoader(ctx) })
}

// writeGrubConfig writes boot/loader.NBV/grub.cfg for list (GRUB
// backend only) and, when a new deployment becomes the default with boot
// counting on, arms the grubenv counter for it. Both before the switch:
// the old grub.cfg ignores a counter armed for another default.
func (s *Sysroot) writeGrubConfig(nbv int, list []*Deployment, entries [][]byte, o writeOptions, tries int) error {
	kind, err := s.LoaderBackend()
	if err != nil || kind != LoaderGRUB {
		return err
	}
	ges := make([]grubcfg.Entry, len(list))
	for i, d := range list {
		e, err := bootloader.ParseEntry(entries[i])
		if err != nil {
			return err
		}
		ges[i] = grubcfg.Entry{Key: d.Name(), Entry: e}
	}
	prefix := ""
	if sameFS(s.path, s.boot) {
		prefix = "/boot"
	}
	cfg, err := grubcfg.Config(ges, prefix)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFile(filepath.Join(s.boot, fmt.Sprintf("loader.%d/grub.cfg", nbv)), cfg, 0o644); err != nil {
		return err
	}
	if o.newDeployment != nil && same(list[0], o.newDeployment) && tries > 0 {
		if err := fsutil.MkdirAllSync(filepath.Dir(s.grubEnvPath()), 0o755); err != nil {
			return fmt.Errorf("sysroot: %w", err)
		}
		t := min(tries, grubcfg.MaxTries)
		return grubcfg.UpdateEnv(s.grubEnvPath(), map[string]string{grubcfg.PendingKey: list[0].Name(), grubcfg.LeftKey: fmt.Sprint(t)})
	}
	return nil
}

// blessLoader marks the booted deployment good in the backend: its ESP
// entry loses its counter, or the grubenv counter armed for it is
// cleared.
func (s *Sysroot) blessLoader(d *Deployment) (bool, error) {
	kind, err := s.LoaderBackend()
	if err != nil {
		return false, err
	}
	switch kind {
	case LoaderSystemdBoot:
		if err := s.checkESP(); err != nil {
			return false, err
		}
		return esp.Bless(s.ESPDir(), d.Name())
	case LoaderGRUB:
		env, err := grubcfg.ReadEnv(s.grubEnvPath())
		if err != nil {
			return false, err
		}
		if env[grubcfg.PendingKey] != d.Name() {
			return false, nil
		}
		return true, grubcfg.UpdateEnv(s.grubEnvPath(), map[string]string{grubcfg.PendingKey: "", grubcfg.LeftKey: ""})
	}
	return false, nil
}

// MarkBootBad marks the booted deployment's boot as failed so that the
// boot loader starts the previous deployment from the next boot on,
// without further tries: its entries (sysroot and ESP) get a counter
// with no tries left (systemd-boot sorts them last), or the grubenv
// counter is set to 0 for it (the grub.cfg then boots the second entry).
// The deployment list is not changed: `strata status` still shows it as
// the default that failed.
func (s *Sysroot) MarkBootBad(ctx context.Context) error {
	return s.withLock(ctx, func() error {
		b := s.booted
		if b == nil {
			return fmt.Errorf("mark bad: %w", ErrNotBooted)
		}
		kind, err := s.LoaderBackend()
		if err != nil {
			return err
		}
		dir := filepath.Join(s.boot, fmt.Sprintf("loader.%d/entries", s.bootVersion))
		_, done, _ := bootloader.Tries(b.EntryFile)
		bad := withCounter(bootloader.Blessed(b.EntryFile), fmt.Sprintf("+0-%d", done))
		if bad != b.EntryFile {
			if err := fsutil.Rename(filepath.Join(dir, b.EntryFile), filepath.Join(dir, bad)); err != nil {
				return fmt.Errorf("mark bad: %w", err)
			}
		}
		switch kind {
		case LoaderSystemdBoot:
			if err := s.checkESP(); err != nil {
				return err
			}
			if _, err := esp.MarkBad(s.ESPDir(), b.Name()); err != nil {
				return err
			}
		case LoaderGRUB:
			if err := grubcfg.UpdateEnv(s.grubEnvPath(), map[string]string{grubcfg.PendingKey: b.Name(), grubcfg.LeftKey: "0"}); err != nil {
				return err
			}
		}
		return nil
	})
}
