package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"slices"
	"testing"
)

func parse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestServerCertificateVerifiesForLoopback(t *testing.T) {
	ca := NewCA(t, "test CA")
	certPEM, _ := ca.Issue(t, Leaf{CommonName: "server"})
	cert := parse(t, certPEM)
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: ca.Pool}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: NewCA(t, "other CA").Pool}); err == nil {
		t.Error("verified against another CA")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a server certificate verified as a client's")
	}
}

func TestClientCertificate(t *testing.T) {
	ca := NewCA(t, "test CA")
	certFile, keyFile := ca.IssueFiles(t, t.TempDir(), Leaf{CommonName: "forwarder", Email: "forwarder@ezssh.test", Client: true})
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert := pair.Leaf
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ExtKeyUsage = %v, want client auth only", cert.ExtKeyUsage)
	}
	if len(cert.IPAddresses)+len(cert.DNSNames) != 0 || !slices.Equal(cert.EmailAddresses, []string{"forwarder@ezssh.test"}) {
		t.Errorf("addresses %v %v %v, want the email alone", cert.IPAddresses, cert.DNSNames, cert.EmailAddresses)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify as a client certificate: %v", err)
	}
	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil || !parse(t, caPEM).Equal(ca.Cert) {
		t.Errorf("CertFile does not hold the CA's certificate (%v)", err)
	}
}
