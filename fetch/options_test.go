package fetch_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/fetch"
	fs "github.com/strata-os/strata/internal/faultserver"
)

func TestNewRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		base string
		o    fetch.Options
		want string
	}{
		{"ftp://example.com/repo", fetch.Options{}, `unsupported scheme "ftp"`},
		{"http:///repo", fetch.Options{}, "no host"},
		{"file://host/repo", fetch.Options{}, "file URL with host"},
		{"file://", fetch.Options{}, "no path"},
		{"http://[::1", fetch.Options{}, "base URL"},
		{"https://example.com", fetch.Options{TLSCAPath: filepath.Join(dir, "missing.pem")}, "tls-ca-path"},
		{"https://example.com", fetch.Options{TLSCAPath: notPEM}, "no PEM certificate"},
		{"https://example.com", fetch.Options{TLSClientCertPath: notPEM}, "go together"},
		{"https://example.com", fetch.Options{TLSClientCertPath: notPEM, TLSClientKeyPath: notPEM}, "client certificate"},
	} {
		_, err := fetch.New(c.base, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q, %+v): %v, want an error containing %q", c.base, c.o, err, c.want)
		}
	}
}

// TestTLS: the server certificate is checked against tls-ca-path (a
// failure is not retried), tls-permissive skips the check, and a client
// certificate is presented when configured.
func TestTLS(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	s := fs.New(t, fx.dir, fs.Options{TLS: true, HTTP2: true})

	f := newFetcher(t, s.URL, fast())
	_, err := f.Get(ctx, "config", 1000)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unknown CA: %v, want a certificate error", err)
	}
	if st := f.Stats(); st.Retries != 0 {
		t.Errorf("a certificate error was retried %d times", st.Retries)
	}
	o := fast()
	o.TLSPermissive = true
	if got, err := newFetcher(t, s.URL, o).Get(ctx, "config", 1000); err != nil || !bytes.Equal(got, fx.files["config"]) {
		t.Errorf("tls-permissive: %q, %v", got, err)
	}

	certFile, keyFile, pool := clientCert(t)
	sc := fs.New(t, fx.dir, fs.Options{TLS: true, HTTP2: true, ClientCAs: pool})
	o = fast()
	o.TLSCAPath = sc.CAFile()
	if _, err := newFetcher(t, sc.URL, o).Get(ctx, "config", 1000); err == nil {
		t.Errorf("no client certificate: no error")
	}
	o.TLSClientCertPath, o.TLSClientKeyPath = certFile, keyFile
	if got, err := newFetcher(t, sc.URL, o).Get(ctx, "config", 1000); err != nil || !bytes.Equal(got, fx.files["config"]) {
		t.Errorf("with a client certificate: %q, %v", got, err)
	}
}

// clientCert writes a self-signed client certificate and its key.
func clientCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "strata test client"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestHeaders: User-Agent and extra headers reach the server; no
// transparent gzip (it would break Range offsets).
func TestHeaders(t *testing.T) {
	fx := newFixture(t)
	s := fs.New(t, fx.dir, fs.Options{})
	o := fast()
	o.UserAgent = "strata-test/1"
	o.Header = http.Header{"X-Test": {"a"}}
	f := newFetcher(t, s.URL, o)
	if _, err := f.Get(context.Background(), "config", 100); err != nil {
		t.Fatal(err)
	}
	h := s.Requests()[0].Header
	if h.Get("User-Agent") != "strata-test/1" || h.Get("X-Test") != "a" || h.Get("Accept-Encoding") != "" {
		t.Errorf("request headers %v", h)
	}
}

// TestSlowConsumer: time the caller spends between reads is not taken for
// a slow server.
func TestSlowConsumer(t *testing.T) {
	fx := newFixture(t)
	s := fs.New(t, fx.dir, fs.Options{})
	o := fast()
	o.LowSpeedLimit = 1 << 20
	o.LowSpeedTime = 250 * time.Millisecond
	f := newFetcher(t, s.URL, o)
	var got []byte
	err := f.Stream(context.Background(), "objects/01/small.dirtree", 0, 0, func(r io.Reader) error {
		buf := make([]byte, 1024)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			time.Sleep(30 * time.Millisecond) // 16 reads of 1 KiB in ~500 ms: far below 1 MiB/s
		}
	})
	if err != nil || !bytes.Equal(got, fx.files["objects/01/small.dirtree"]) || f.Stats().Retries != 0 {
		t.Fatalf("slow consumer: %d bytes, %v, %d retries", len(got), err, f.Stats().Retries)
	}
}

// TestSwallowedError: Stream reports a read error even when fn ignores it.
func TestSwallowedError(t *testing.T) {
	fx := newFixture(t)
	s := fs.New(t, fx.dir, fs.Options{})
	s.Add(fs.Rule{Path: bigPath, Fault: fs.Fault{Kind: fs.Status, Status: 500}, Skip: 1})
	s.Add(fs.Rule{Path: bigPath, Fault: fs.Fault{Kind: fs.Truncate, After: 1000}})
	f := newFetcher(t, s.URL, fast())
	err := f.Stream(context.Background(), bigPath, 0, 0, func(r io.Reader) error {
		_, _ = io.Copy(io.Discard, r)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("%v, want the 500 that ended the retries", err)
	}
}

// TestKeepAlive: sequential requests share one connection, also after an
// error answer and a 404; parallel HTTP/2 requests share one too.
func TestKeepAlive(t *testing.T) {
	ctx := context.Background()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			fx := newFixture(t)
			s := fs.New(t, fx.dir, tr.srv)
			s.Add(fs.Rule{Path: "config", Times: 1, Fault: fs.Fault{Kind: fs.Status, Status: 503}})
			o := fast()
			if tr.opt != nil {
				tr.opt(&o, s)
			}
			f := newFetcher(t, s.URL, o)
			for range 10 {
				if _, err := f.Get(ctx, "config", 1000); err != nil {
					t.Fatal(err)
				}
				if _, err := f.Get(ctx, "missing", 1000); !errors.Is(err, fetch.ErrNotFound) {
					t.Fatal(err)
				}
			}
			if n := s.Conns(); n != 1 {
				t.Errorf("%d connections for %d requests", n, s.Count(""))
			}
		})
	}
}

// TestProxy: Options.Proxy routes requests through the proxy.
func TestProxy(t *testing.T) {
	fx := newFixture(t)
	s := fs.New(t, fx.dir, fs.Options{}) // serves absolute-URI requests too
	o := fast()
	o.Proxy = s.URL
	f := newFetcher(t, "http://repo.invalid/", o)
	got, err := f.Get(context.Background(), "config", 1000)
	if err != nil || !bytes.Equal(got, fx.files["config"]) || s.Count("config") != 1 {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}
}

// TestSlowHeaders: a server that takes too long to answer at all is caught
// by the low-speed check and by the per-request timeout.
func TestSlowHeaders(t *testing.T) {
	fx := newFixture(t)
	s := fs.New(t, fx.dir, fs.Options{})
	s.Add(fs.Rule{Path: "config", Times: 1, Fault: fs.Fault{Delay: time.Minute}})
	s.Add(fs.Rule{Path: "summary", Fault: fs.Fault{Delay: time.Minute}})
	o := fast()
	o.LowSpeedTime = 100 * time.Millisecond
	f := newFetcher(t, s.URL, o)
	start := time.Now()
	if got, err := f.Get(context.Background(), "config", 1000); err != nil || !bytes.Equal(got, fx.files["config"]) || f.Stats().Retries != 1 {
		t.Errorf("slow first answer: %q, %v, %+v", got, err, f.Stats())
	}
	o.LowSpeedLimit = -1
	o.Timeout = 100 * time.Millisecond
	o.Retries = -1
	f = newFetcher(t, s.URL, o)
	if _, err := f.Get(context.Background(), "summary", 1000); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("no answer within Timeout: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v", took)
	}
}

// TestHTTPSToPlainServer: an https URL for a plain HTTP server is a clear,
// unretried error.
func TestHTTPSToPlainServer(t *testing.T) {
	fx := newFixture(t)
	s := fs.New(t, fx.dir, fs.Options{})
	f := newFetcher(t, strings.Replace(s.URL, "http://", "https://", 1), fast())
	_, err := f.Get(context.Background(), "config", 1000)
	if err == nil || !strings.Contains(err.Error(), "HTTP response to HTTPS client") || f.Stats().Retries != 0 {
		t.Errorf("%v after %d retries", err, f.Stats().Retries)
	}
}
