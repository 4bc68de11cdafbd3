package demoos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MakeDisk creates a sparse ext4 image of sizeMB megabytes, populated from
// dir when dir is not empty.
func MakeDisk(img string, sizeMB int, dir string) error {
	if err := os.Truncate(img, 0); err != nil && !os.IsNotExist(err) {
		return err
	}
	f, err := os.Create(img)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(sizeMB) << 20); err != nil {
		f.Close()
		return err
	}
	f.Close()
	args := []string{"-q", "-F", "-E", "root_owner=0:0"}
	if dir != "" {
		args = append(args, "-d", dir)
	}
	args = append(args, img)
	if out, err := exec.Command("mkfs.ext4", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %v: %s", img, err, out)
	}
	return nil
}

// MountImage loop-mounts img at dir; the returned function unmounts it.
func MountImage(img, dir string) (func() error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if out, err := exec.Command("mount", "-o", "loop", img, dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mount %s: %v: %s", img, err, out)
	}
	return func() error {
		exec.Command("sync").Run()
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("umount %s: %v: %s", dir, err, out)
		}
		return nil
	}, nil
}

// QEMU boots a kernel under TCG (no KVM) with the disks attached as
// virtio drives (vda, vdb, ...) and the serial console on stdio.
type QEMU struct {
	Kernel, Initrd, Append string
	Disks                  []string
	// ReadOnlyDisks are attached after Disks, read-only (shared update
	// media). A disk whose name ends in .qcow2 is attached as qcow2 (an
	// overlay of a booted-once image), any other as raw.
	ReadOnlyDisks []string
	Timeout       time.Duration // default 3 minutes
	MemoryMB      int           // default 512
	// Cut, when set, cuts the power: QEMU is killed Cut.Delay after the
	// console first prints a line containing Cut.Marker.
	Cut *PowerCut
	// Console, when set, receives the console output as it comes.
	Console io.Writer
	// Firmware boots the first disk through a real boot loader instead
	// of Kernel/Initrd/Append: "bios" (SeaBIOS, QEMU's default) or
	// "ovmf" (UEFI; OVMFVars is the writable variable store, a copy of
	// OVMF_VARS_4M.fd kept between the boots of one machine).
	Firmware, OVMFVars string
}

// OVMF's firmware code, from Debian's ovmf package.
const OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"

// OVMFVarsTemplate is the empty variable store to copy per machine.
const OVMFVarsTemplate = "/usr/share/OVMF/OVMF_VARS_4M.fd"

// PowerCut names the instant of a power cut.
type PowerCut struct {
	Marker string
	Delay  time.Duration
}

// Result is what one boot printed and how it ended.
type Result struct {
	Console string
	Cut     bool          // the power was cut as asked
	Elapsed time.Duration // from QEMU's start to its end
	// Marks holds, for each console line starting with "STRATA-", the
	// time since QEMU started at which it was first seen.
	Marks map[string]time.Duration
}

// Run boots and waits for the guest to power off or reboot (QEMU runs
// with -no-reboot), for the power cut, or for the timeout (an error).
func (q *QEMU) Run(ctx context.Context) (*Result, error) {
	mem := q.MemoryMB
	if mem == 0 {
		mem = 512
	}
	args := []string{"-m", strconv.Itoa(mem), "-smp", "1", "-nographic", "-no-reboot", "-nodefaults", "-nic", "none",
		"-serial", "stdio"}
	switch q.Firmware {
	case "":
		args = append(args, "-kernel", q.Kernel, "-append", q.Append+" console=ttyS0 panic=-1")
		if q.Initrd != "" {
			args = append(args, "-initrd", q.Initrd)
		}
	case "bios":
	case "ovmf":
		args = append(args, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+q.OVMFVars)
	default:
		return nil, fmt.Errorf("qemu: unknown firmware %q", q.Firmware)
	}
	for _, d := range q.Disks {
		args = append(args, "-drive", "file="+d+",format="+diskFormat(d)+",if=virtio,cache=writeback")
	}
	for _, d := range q.ReadOnlyDisks {
		args = append(args, "-drive", "file="+d+",format="+diskFormat(d)+",if=virtio,readonly=on")
	}
	timeout := q.Timeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, "qemu-system-x86_64", args...)
	cmd.Stdin = nil
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = pw
	cmd.Stderr = pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	pw.Close()
	res := &Result{Marks: map[string]time.Duration{}}
	var out bytes.Buffer
	var cutTimer *time.Timer
	var cutMu sync.Mutex
	sc := bufio.NewReader(pr)
	for {
		line, rerr := sc.ReadString('\n')
		if line != "" {
			now := time.Since(start)
			out.WriteString(line)
			if q.Console != nil {
				q.Console.Write([]byte(line))
			}
			clean := strings.TrimSpace(stripEscapes(line))
			if i := strings.Index(clean, "STRATA-"); i >= 0 {
				key := clean[i:]
				if _, ok := res.Marks[key]; !ok {
					res.Marks[key] = now
				}
			}
			if q.Cut != nil && cutTimer == nil && strings.Contains(line, q.Cut.Marker) {
				cutTimer = time.AfterFunc(q.Cut.Delay, func() {
					cutMu.Lock()
					defer cutMu.Unlock()
					res.Cut = true
					cmd.Process.Kill()
				})
			}
		}
		if rerr != nil {
			break
		}
	}
	pr.Close()
	werr := cmd.Wait()
	res.Elapsed = time.Since(start)
	if cutTimer != nil {
		cutTimer.Stop()
	}
	cutMu.Lock()
	defer cutMu.Unlock()
	res.Console = out.String()
	switch {
	case res.Cut:
		return res, nil
	case cctx.Err() != nil && ctx.Err() == nil:
		return res, fmt.Errorf("qemu: no power-off within %s", timeout)
	case ctx.Err() != nil:
		return res, ctx.Err()
	case werr != nil:
		return res, fmt.Errorf("qemu: %w", werr)
	}
	return res, nil
}

func diskFormat(path string) string {
	if strings.HasSuffix(path, ".qcow2") {
		return "qcow2"
	}
	return "raw"
}

// Mark returns when the first console line starting with "STRATA-" and
// with the given prefix was seen.
func (r *Result) Mark(prefix string) (time.Duration, bool) {
	var at time.Duration
	found := false
	for k, v := range r.Marks {
		if strings.HasPrefix(k, prefix) && (!found || v < at) {
			at, found = v, true
		}
	}
	return at, found
}

// stripEscapes drops ANSI escape sequences and carriage returns, which
// the firmware and the serial console mix into the output.
func stripEscapes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0x1b {
			// ESC c, or ESC [ params final-byte.
			if i+1 < len(s) && s[i+1] == '[' {
				i += 2
				for i < len(s) && (s[i] < 0x40 || s[i] > 0x7e) {
					i++
				}
			} else {
				i++
			}
			continue
		}
		if c == '\r' {
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Lines returns the console output without escape sequences, one string
// per line.
func (r *Result) Lines() []string {
	return strings.Split(stripEscapes(r.Console), "\n")
}
