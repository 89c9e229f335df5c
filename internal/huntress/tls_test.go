package huntress

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate and its key, PEM-encoded: a server
// certificate for 127.0.0.1 and localhost, or a client certificate.
func (ca *testCA) issue(t testing.TB, name string, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses, tmpl.DNSNames = nil, nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// writeFile writes data to a new file in dir and returns its path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsHEC starts a collector behind TLS with a certificate issued by ca. With
// clientCA, it requires a client certificate issued by clientCA.
func tlsHEC(t testing.TB, ca, clientCA *testCA) (*httptest.Server, *Collector) {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, "hec", false)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	col := NewCollector(CollectorOptions{Token: testToken})
	srv := httptest.NewUnstartedServer(col)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.cert)
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		srv.TLS.ClientCAs = pool
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, col
}

func TestTLSSelfSignedHECIsRefusedWithAdvice(t *testing.T) {
	srv, col := tlsHEC(t, newTestCA(t, "private CA"), nil)
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
	ca := newTestCA(t, "private CA")
	srv, col := tlsHEC(t, ca, nil)
	caFile := writeFile(t, t.TempDir(), "ca.pem", ca.pem)
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
	other := writeFile(t, t.TempDir(), "other.pem", newTestCA(t, "other CA").pem)
	err := newClient(t, srv.URL, func(c *Config) { c.CAFile = other }).Send(context.Background(), sampleEvents(1))
	if delivery.ClassOf(err) != delivery.Misconfigured {
		t.Errorf("Send with another CA = %v, want misconfigured", err)
	}
}

func TestTLSClientCertificate(t *testing.T) {
	serverCA, clientCA := newTestCA(t, "server CA"), newTestCA(t, "client CA")
	srv, col := tlsHEC(t, serverCA, clientCA)
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.pem", serverCA.pem)
	certPEM, keyPEM := clientCA.issue(t, "forwarder", true)
	certFile, keyFile := writeFile(t, dir, "client.pem", certPEM), writeFile(t, dir, "client.key", keyPEM)

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
		certPEM, keyPEM := newTestCA(t, "rogue CA").issue(t, "forwarder", true)
		cf, kf := writeFile(t, t.TempDir(), "c.pem", certPEM), writeFile(t, t.TempDir(), "c.key", keyPEM)
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
	serverCA, clientCA := newTestCA(t, "server CA"), newTestCA(t, "client CA")
	srv, _ := tlsHEC(t, serverCA, clientCA)
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.pem", serverCA.pem)
	rogueCert, rogueKey := newTestCA(t, "rogue CA").issue(t, "forwarder", true)
	certFile, keyFile := writeFile(t, dir, "client.pem", rogueCert), writeFile(t, dir, "client.key", rogueKey)
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

	goodCert, goodKey := clientCA.issue(t, "forwarder", true)
	later := time.Now().Add(time.Minute)
	for path, data := range map[string][]byte{certFile: goodCert, keyFile: goodKey} {
		writeFile(t, dir, filepath.Base(path), data)
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
	ca := newTestCA(t, "CA")
	certPEM, keyPEM := ca.issue(t, "forwarder", true)
	_, otherKey := ca.issue(t, "other", true)
	caFile := writeFile(t, dir, "ca.pem", ca.pem)
	certFile, keyFile := writeFile(t, dir, "c.pem", certPEM), writeFile(t, dir, "c.key", keyPEM)
	garbage := writeFile(t, dir, "garbage.pem", []byte("not a certificate\n"))
	wrongKey := writeFile(t, dir, "wrong.key", otherKey)
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
