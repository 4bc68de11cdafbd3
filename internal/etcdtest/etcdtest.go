// Package etcdtest starts Debian's real etcd (package etcd-server) for
// tests, on 127.0.0.1 ports the kernel picked, with a data directory in
// the test's temporary directory, and stops it when the test ends.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Etcd is a running etcd.
type Etcd struct {
	// Endpoint is the client URL, http://127.0.0.1:PORT.
	Endpoint string
	cmd      *exec.Cmd
	done     chan struct{}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs etcd and waits until it answers. It fails the test when
// etcd is not installed (scripts/install-deps.sh installs etcd-server).
func Start(t testing.TB) *Etcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd not found (Debian package etcd-server; scripts/install-deps.sh installs it): %v", err)
	}
	for attempt := 0; ; attempt++ {
		e, err := start(t, bin)
		if err == nil {
			return e
		}
		if attempt == 2 {
			t.Fatal(err)
		}
	}
}

func start(t testing.TB, bin string) (*Etcd, error) {
	dir := t.TempDir()
	cport, pport := freePort(t), freePort(t)
	client := fmt.Sprintf("http://127.0.0.1:%d", cport)
	peer := fmt.Sprintf("http://127.0.0.1:%d", pport)
	cmd := exec.Command(bin,
		"--name=test", "--data-dir="+filepath.Join(dir, "data"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=test="+peer, "--initial-cluster-state=new",
		"--log-outputs=stderr", "--logger=zap", "--log-level=error")
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	e := &Etcd{Endpoint: client, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(e.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", cport), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-e.done:
			b, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			return nil, fmt.Errorf("etcd exited: %s", b)
		case <-ctx.Done():
			e.Stop()
			return nil, fmt.Errorf("etcd did not listen on %s", client)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Cleanup(e.Stop)
	return e, nil
}

// Stop kills etcd and waits for it.
func (e *Etcd) Stop() {
	select {
	case <-e.done:
		return
	default:
	}
	e.cmd.Process.Kill()
	<-e.done
}
