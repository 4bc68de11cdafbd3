package main

// pull: Debian's nginx on 127.0.0.1 serves the archive osRepo as it was
// after v1 or after v2; both binaries pull it into fresh repos, and the
// access log says how many requests and bytes each pull cost.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A server is nginx serving <www>/repo, a symlink to one view of the
// archive osRepo.
type server struct {
	dir  string // its prefix: nginx.conf, logs, pid, temp dirs
	www  string // document root
	url  string // of the served repo
	log  string // access log
	cmd  *exec.Cmd
	done chan error // receives cmd.Wait's result
}

// server starts nginx serving the archive osRepo on first use; env.close
// stops it.
func (e *env) server(ctx context.Context) (*server, error) {
	if e.srv != nil {
		return e.srv, nil
	}
	fix, err := e.osRepo(ctx, "archive")
	if err != nil {
		return nil, err
	}
	srv, err := startNginx(ctx, filepath.Join(e.work, "nginx"))
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, srv.stop)
	e.srv = srv
	if err := srv.serve(fix.views["v1"]); err != nil {
		return nil, err
	}
	logf("  nginx (pid %d) serving %s", srv.cmd.Process.Pid, srv.url)
	return srv, nil
}

// nginxConf is a throwaway configuration: one worker, run as root so that
// it reads what the harness wrote, HTTP/1.1 keep-alive with no request
// limit per connection, sendfile, and an access log with one line per
// request: method, URI, status, bytes sent (headers and body), body bytes.
func nginxConf(dir, www string, port int) string {
	return fmt.Sprintf(`# written by strata's bench harness; removed when it ends
daemon off;
master_process on;
worker_processes 1;
user root root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events {
	worker_connections 1024;
}
http {
	log_format bench '$request_method $request_uri $status $bytes_sent $body_bytes_sent';
	access_log %[1]s/access.log bench;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	sendfile on;
	tcp_nopush on;
	keepalive_timeout 65s;
	keepalive_requests 1000000;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:%[3]d;
		root %[2]s;
	}
}
`, dir, www, port)
}

// startNginx writes a configuration under dir and starts nginx in the
// foreground in its own process group, waiting until it accepts
// connections.
func startNginx(ctx context.Context, dir string) (*server, error) {
	return startNginxWith(ctx, dir, nil)
}

// startNginxWith is startNginx with the configuration passed through edit
// (when not nil) before it is written.
func startNginxWith(ctx context.Context, dir string, edit func(string) string) (*server, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			return nil, errors.New("nginx not found: run bench/setup.sh (apt-get install nginx)")
		}
	}
	if err := removeTree(dir); err != nil {
		return nil, err
	}
	s := &server{dir: dir, www: filepath.Join(dir, "www"), log: filepath.Join(dir, "access.log")}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.www, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.url = fmt.Sprintf("http://127.0.0.1:%d/repo", port)
	conf := filepath.Join(dir, "nginx.conf")
	text := nginxConf(dir, s.www, port)
	if edit != nil {
		text = edit(text)
	}
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	out, err := os.Create(filepath.Join(dir, "nginx.out"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	s.cmd = exec.Command(bin, "-p", dir+"/", "-c", conf, "-e", filepath.Join(dir, "error.log"))
	s.cmd.Stdout, s.cmd.Stderr = out, out
	// Its own process group: a terminal's Ctrl-C reaches the harness only,
	// which then stops nginx itself.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting nginx: %w", err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case werr := <-s.done:
			s.done <- werr
			return nil, fmt.Errorf("nginx exited: %v: %s", werr, tail(filepath.Join(dir, "error.log"), 3))
		case <-ctx.Done():
			_ = s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.stop()
			return nil, fmt.Errorf("nginx does not accept connections on port %d: %s", port, tail(filepath.Join(dir, "error.log"), 3))
		}
	}
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stop ends nginx: SIGTERM (fast shutdown: the master stops its workers),
// then SIGKILL to its process group if it has not exited after 5 s.
func (s *server) stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
	return nil
}

// serve points the served repo at dir.
func (s *server) serve(dir string) error {
	link := filepath.Join(s.www, "repo")
	tmp := link + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(dir, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

// mark returns the access log's size once nginx has stopped appending to
// it: requests logged before it belong to earlier commands.
func (s *server) mark() (int64, error) {
	var last int64 = -1
	deadline := time.Now().Add(3 * time.Second)
	for {
		fi, err := os.Stat(s.log)
		var size int64
		if err == nil {
			size = fi.Size()
		} else if !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
		// nginx logs a request once it has sent the response, which may be
		// a moment after the client has read it and exited.
		if size == last || time.Now().After(deadline) {
			return size, nil
		}
		last = size
		time.Sleep(100 * time.Millisecond)
	}
}

// traffic is what the access log says about a span of requests.
type traffic struct {
	Requests int64 // lines
	Bytes    int64 // $bytes_sent: status line, headers and body
	Body     int64 // $body_bytes_sent
	NotOK    int64 // status >= 400 (404s of optional files, ...)
}

// trafficSince parses the access log from offset off to its settled end.
func (s *server) trafficSince(off int64) (traffic, error) {
	end, err := s.mark()
	if err != nil {
		return traffic{}, err
	}
	f, err := os.Open(s.log)
	if err != nil {
		return traffic{}, err
	}
	defer f.Close()
	return parseAccessLog(io.NewSectionReader(f, off, end-off))
}

// parseAccessLog sums lines in nginxConf's log_format.
func parseAccessLog(r io.Reader) (traffic, error) {
	var t traffic
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 {
			return t, fmt.Errorf("access log: unexpected line %q", sc.Text())
		}
		status, err1 := strconv.Atoi(f[2])
		sent, err2 := strconv.ParseInt(f[3], 10, 64)
		body, err3 := strconv.ParseInt(f[4], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return t, fmt.Errorf("access log: line %q: %w", sc.Text(), err)
		}
		t.Requests++
		t.Bytes += sent
		t.Body += body
		if status >= 400 {
			t.NotOK++
		}
	}
	return t, sc.Err()
}

func (t traffic) counters() map[string]int64 {
	return map[string]int64{
		"requests":   t.Requests,
		"bytes_sent": t.Bytes,
		"body_bytes": t.Body,
		"not_ok":     t.NotOK,
	}
}

// pullOp times a pull of ref bench from the server into a fresh repo of
// the given mode made by the binary itself (`init`, `remote add
// --no-gpg-verify`, untimed). With update, the repo first pulls v1
// (untimed) and the timed pull fetches v2 on top of it.
func pullOp(mode string, update bool) func(context.Context, *env, binary) (*trial, error) {
	return func(ctx context.Context, e *env, b binary) (*trial, error) {
		srv, err := e.server(ctx)
		if err != nil {
			return nil, err
		}
		fix := e.osRepos["archive"]
		if err := srv.serve(fix.views["v1"]); err != nil {
			return nil, err
		}
		repo := e.scratch("pull-" + mode + "-" + b.Name)
		fail := func(err error) (*trial, error) {
			_ = removeTree(repo)
			return nil, err
		}
		steps := [][]string{
			{"--repo=" + repo, "init", "--mode=" + mode},
			{"--repo=" + repo, "remote", "add", "--no-gpg-verify", "origin", srv.url},
		}
		if update {
			steps = append(steps, []string{"--repo=" + repo, "pull", "origin", "bench"})
		}
		for _, st := range steps {
			if _, err := run(ctx, b.Path, st...); err != nil {
				return fail(err)
			}
		}
		want := fix.v1
		if update {
			want = fix.v2
			if err := srv.serve(fix.views["v2"]); err != nil {
				return fail(err)
			}
		}
		off, err := srv.mark()
		if err != nil {
			return fail(err)
		}
		return &trial{
			Args: []string{"--repo=" + repo, "pull", "origin", "bench"},
			Counters: func() (map[string]int64, error) {
				t, err := srv.trafficSince(off)
				return t.counters(), err
			},
			Result: func([]byte) (string, error) {
				got, err := readRef(repo, "remotes/origin/bench")
				if err != nil {
					return "", err
				}
				if got != want {
					return "", fmt.Errorf("origin:bench is %s, want %s", got, want)
				}
				// The reference checks every object of the pulled repo.
				if _, err := run(ctx, e.reference.Path, "--repo="+repo, "fsck", "--quiet"); err != nil {
					return "", err
				}
				return "commit " + got[:16] + ", ostree fsck ok", nil
			},
			Cleanup: func() error { return removeTree(repo) },
		}, nil
	}
}
