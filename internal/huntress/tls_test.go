package huntress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/delivery"
	"github.com/ezssh/siem-forwarder/internal/testpki"
)

// tlsHEC starts a collector behind TLS with a certificate issued by ca. With
// clientCA, it requires a client certificate issued by clientCA.
func tlsHEC(t testing.TB, ca, clientCA *testpki.CA) (*httptest.Server, *Collector) {
	t.Helper()
	col := NewCollector(CollectorOptions{Token: testToken})
	srv := httptest.NewUnstartedServer(col)
	srv.TLS = ca.ServerTLS(t)
	if clientCA != nil {
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		srv.TLS.ClientCAs = clientCA.Pool
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, col
}

// forwarderCert is the client certificate the tests give the forwarder.
var forwarderCert = testpki.Leaf{CommonName: "forwarder", Client: true}

func TestTLSSelfSignedHECIsRefusedWithAdvice(t *testing.T) {
	srv, col := tlsHEC(t, testpki.NewCA(t, "private CA"), nil)
	err := newClient(t, srv.URL).Send(context.Background(), sampleEvents(1))
	var e *Error
	if !errors.As(err, &e) || e.Class != delivery.Misconfigured || e.Status != 0 {
		t.Fatalf("Send = %v, want a misconfigured TLS failure", err)
	}
	for _, want := range []string{"certificate", "self-signed", "--hec-ca-file", "HUNTRESS_HEC_CA_FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	d := TestConnection(context.Background(), Config{URL: srv.URL, Token: testToken})
	if d.OK || d.Problem != ProblemTLS || !strings.Contains(d.Message, "--hec-ca-file") || !strings.Contains(d.Message, "self-signed") {
		t.Errorf("TestConnection = %+v, want a TLS problem telling to pass the CA bundle", d)
	}
	if n := len(col.Events()); n != 0 {
		t.Errorf("the HEC received %d events over an unverified connection", n)
	}
}

func TestTLSCAFileIsTrusted(t *testing.T) {
	ca := testpki.NewCA(t, "private CA")
	srv, col := tlsHEC(t, ca, nil)
	caFile := ca.CertFile
	c := newClient(t, srv.URL, func(c *Config) { c.CAFile = caFile })
	if err := c.Send(context.Background(), sampleEvents(3)); err != nil {
		t.Fatalf("Send with the CA bundle: %v", err)
	}
	if n := len(col.Events()); n != 3 {
		t.Errorf("the HEC received %d events, want 3", n)
	}
	if d := TestConnection(context.Background(), Config{URL: srv.URL, Token: testToken, CAFile: caFile}); !d.OK {
		t.Errorf("TestConnection with the CA bundle = %+v", d)
	}

	// Another CA's bundle does not make the HEC trusted.
	other := testpki.NewCA(t, "other CA").CertFile
	err := newClient(t, srv.URL, func(c *Config) { c.CAFile = other }).Send(context.Background(), sampleEvents(1))
	if delivery.ClassOf(err) != delivery.Misconfigured {
		t.Errorf("Send with another CA = %v, want misconfigured", err)
	}
}

func TestTLSClientCertificate(t *testing.T) {
	serverCA, clientCA := testpki.NewCA(t, "server CA"), testpki.NewCA(t, "client CA")
	srv, col := tlsHEC(t, serverCA, clientCA)
	caFile := serverCA.CertFile
	certFile, keyFile := clientCA.IssueFiles(t, t.TempDir(), forwarderCert)

	t.Run("with the certificate", func(t *testing.T) {
		c := newClient(t, srv.URL, func(c *Config) { c.CAFile, c.CertFile, c.KeyFile = caFile, certFile, keyFile })
		if err := c.Send(context.Background(), sampleEvents(2)); err != nil {
			t.Fatalf("Send with the client certificate: %v", err)
		}
		if n := len(col.Events()); n != 2 {
			t.Errorf("the HEC received %d events, want 2", n)
		}
		cfg := Config{URL: srv.URL, Token: testToken, CAFile: caFile, CertFile: certFile, KeyFile: keyFile}
		if d := TestConnection(context.Background(), cfg); !d.OK {
			t.Errorf("TestConnection with the client certificate = %+v", d)
		}
	})
	t.Run("without", func(t *testing.T) {
		err := newClient(t, srv.URL, func(c *Config) { c.CAFile = caFile }).Send(context.Background(), sampleEvents(1))
		if delivery.ClassOf(err) != delivery.Misconfigured {
			t.Fatalf("Send without a client certificate = %v, want misconfigured", err)
		}
		if !strings.Contains(err.Error(), "--hec-cert-file") {
			t.Errorf("error %q does not say to pass a client certificate", err)
		}
		d := TestConnection(context.Background(), Config{URL: srv.URL, Token: testToken, CAFile: caFile})
		if d.OK || d.Problem != ProblemTLS || !strings.Contains(d.Message, "client certificate") {
			t.Errorf("TestConnection without a client certificate = %+v", d)
		}
	})
	t.Run("from another CA", func(t *testing.T) {
		cf, kf := testpki.NewCA(t, "rogue CA").IssueFiles(t, t.TempDir(), forwarderCert)
		err := newClient(t, srv.URL, func(c *Config) { c.CAFile, c.CertFile, c.KeyFile = caFile, cf, kf }).
			Send(context.Background(), sampleEvents(1))
		if delivery.ClassOf(err) != delivery.Misconfigured || !strings.Contains(err.Error(), "--hec-cert-file") {
			t.Fatalf("Send with a certificate of another CA = %v, want misconfigured with advice", err)
		}
	})
}

// A client created after a certificate file changed on disk uses the new
// file; routes share what a file holds until then.
func TestTLSFilesAreReadAgainWhenChanged(t *testing.T) {
	serverCA, clientCA := testpki.NewCA(t, "server CA"), testpki.NewCA(t, "client CA")
	srv, _ := tlsHEC(t, serverCA, clientCA)
	dir := t.TempDir()
	caFile := serverCA.CertFile
	certFile, keyFile := testpki.NewCA(t, "rogue CA").IssueFiles(t, dir, forwarderCert)
	cfg := Config{URL: srv.URL, Token: testToken, CAFile: caFile, CertFile: certFile, KeyFile: keyFile}

	a, err := cfg.resolve()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cfg.resolve()
	if a.TLS.RootCAs != b.TLS.RootCAs || a.TLS.Certificates[0].PrivateKey != b.TLS.Certificates[0].PrivateKey {
		t.Error("two clients of the same files do not share what the files hold")
	}
	if err := newClient(t, cfg.URL, func(c *Config) { *c = cfg }).Send(context.Background(), sampleEvents(1)); delivery.ClassOf(err) != delivery.Misconfigured {
		t.Fatalf("Send with the rogue certificate = %v, want misconfigured", err)
	}

	goodCert, goodKey := clientCA.Issue(t, forwarderCert)
	later := time.Now().Add(time.Minute)
	for path, data := range map[string][]byte{certFile: goodCert, keyFile: goodKey} {
		testpki.WriteFile(t, dir, filepath.Base(path), data)
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if err := newClient(t, cfg.URL, func(c *Config) { *c = cfg }).Send(context.Background(), sampleEvents(1)); err != nil {
		t.Fatalf("Send after the certificate was renewed: %v", err)
	}
}

func TestTLSBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "CA")
	caFile := ca.CertFile
	certFile, keyFile := ca.IssueFiles(t, dir, forwarderCert)
	_, otherKey := ca.Issue(t, testpki.Leaf{CommonName: "other", Client: true})
	garbage := testpki.WriteFile(t, dir, "garbage.pem", []byte("not a certificate\n"))
	wrongKey := testpki.WriteFile(t, dir, "wrong.key", otherKey)
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"missing CA file", func(c *Config) { c.CAFile = missing }, "CAFile: stat " + missing},
		{"CA file without a certificate", func(c *Config) { c.CAFile = garbage }, "holds no PEM certificate"},
		{"CA file and RootCAs", func(c *Config) { c.CAFile = caFile; c.TLS = &tls.Config{RootCAs: x509.NewCertPool()} }, "both set"},
		{"certificate without key", func(c *Config) { c.CertFile = certFile }, "CertFile and KeyFile go together"},
		{"key without certificate", func(c *Config) { c.KeyFile = keyFile }, "CertFile and KeyFile go together"},
		{"key of another certificate", func(c *Config) { c.CertFile, c.KeyFile = certFile, wrongKey }, "private key does not match"},
		{"certificate file is garbage", func(c *Config) { c.CertFile, c.KeyFile = garbage, keyFile }, garbage},
		{"missing key file", func(c *Config) { c.CertFile, c.KeyFile = certFile, missing }, missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{URL: "https://hec.example.com", Token: testToken}
			tc.edit(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig saying %q", err, tc.want)
			}
			if _, err := New(cfg); err == nil {
				t.Error("New accepted what Validate refused")
			}
			if d := TestConnection(context.Background(), cfg); d.Problem != ProblemConfig || !strings.Contains(d.Message, tc.want) {
				t.Errorf("TestConnection = %+v, want a config problem", d)
			}
		})
	}
	ok := Config{URL: "https://hec.example.com", Token: testToken, CAFile: caFile, CertFile: certFile, KeyFile: keyFile}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(good files) = %v", err)
	}
}
