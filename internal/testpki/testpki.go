// Package testpki makes certificate authorities and the server and client
// certificates they issue, for tests of TLS and mutual TLS against real
// servers in the test process. Only tests import it: keys are generated
// fresh for each call and certificates are valid for an hour either side of
// now.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made for one test. It is safe for
// concurrent use; its fields must not be changed.
type CA struct {
	Cert     *x509.Certificate
	CertPEM  []byte
	CertFile string         // CertPEM in a file of the test's temporary folder
	Pool     *x509.CertPool // holds Cert alone: as RootCAs or ClientCAs, it trusts what the CA issued

	key *ecdsa.PrivateKey
}

// Leaf says what certificate Issue makes.
type Leaf struct {
	CommonName string
	// Email, when set, is the certificate's email address (NATS
	// verify_and_map takes it as the user).
	Email string
	// Client makes a client certificate (extended key usage client auth, no
	// addresses). Otherwise it is a server certificate for 127.0.0.1, ::1
	// and localhost.
	Client bool
}

// NewCA makes a CA whose subject's common name is name. It fails the test
// on error.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Cert: cert, CertPEM: encode("CERTIFICATE", der), Pool: x509.NewCertPool(), key: key}
	ca.Pool.AddCert(cert)
	ca.CertFile = WriteFile(t, t.TempDir(), "ca.pem", ca.CertPEM)
	return ca
}

// Issue signs a certificate for l with a new key and returns both
// PEM-encoded (the key as "EC PRIVATE KEY"). It fails the test on error.
func (ca *CA) Issue(t testing.TB, l Leaf) (certPEM, keyPEM []byte) {
	t.Helper()
	key := newKey(t)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: l.CommonName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if l.Email != "" {
		tmpl.EmailAddresses = []string{l.Email}
	}
	if l.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return encode("CERTIFICATE", der), encode("EC PRIVATE KEY", kder)
}

// IssueFiles is Issue writing the certificate and key to CommonName.pem and
// CommonName.key in dir; it returns their paths.
func (ca *CA) IssueFiles(t testing.TB, dir string, l Leaf) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, l)
	return WriteFile(t, dir, l.CommonName+".pem", certPEM), WriteFile(t, dir, l.CommonName+".key", keyPEM)
}

// ServerTLS returns a config for a TLS server (TLS 1.2 at least) with a new
// server certificate issued by ca for 127.0.0.1, ::1 and localhost. A client
// trusts it with ca.Pool as its RootCAs.
func (ca *CA) ServerTLS(t testing.TB) *tls.Config {
	t.Helper()
	cert, err := tls.X509KeyPair(ca.Issue(t, Leaf{CommonName: "localhost"}))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// WriteFile writes data to name in dir, readable by its owner only, and
// returns its path. It fails the test on error.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func encode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
