package huntress

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// tlsConfig returns the TLS settings of c: c.TLS (cloned) with the CAs of
// CAFile added to the system's and the client certificate of CertFile and
// KeyFile. It returns nil when c has neither TLS nor files, and one
// *configError per problem (InsecureSkipVerify is one).
func (c Config) tlsConfig() (*tls.Config, []error) {
	if c.TLS != nil && c.TLS.InsecureSkipVerify {
		return nil, []error{&configError{msg: "TLS.InsecureSkipVerify is not supported: give the HEC's CA certificate in CAFile (or TLS.RootCAs) instead"}}
	}
	if c.CAFile == "" && c.CertFile == "" && c.KeyFile == "" {
		return c.TLS, nil
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, &configError{msg: fmt.Sprintf(format, args...)})
	}
	out := &tls.Config{}
	if c.TLS != nil {
		out = c.TLS.Clone()
	}
	if c.CAFile != "" {
		if out.RootCAs != nil {
			bad("CAFile and TLS.RootCAs are both set: give the HEC's CAs once")
		} else if pool, err := loadCAFile(c.CAFile); err != nil {
			bad("CAFile: %v", err)
		} else {
			out.RootCAs = pool
		}
	}
	switch {
	case c.CertFile == "" && c.KeyFile == "":
	case c.CertFile == "" || c.KeyFile == "":
		bad("CertFile and KeyFile go together: give the client certificate and its private key, or neither")
	case len(out.Certificates) > 0 || out.GetClientCertificate != nil:
		bad("CertFile and TLS.Certificates are both set: give the client certificate once")
	default:
		cert, err := loadKeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			bad("CertFile and KeyFile: %v", err)
			break
		}
		out.Certificates = []tls.Certificate{*cert}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// The parsed contents of the PEM files, by path. A thousand routes sharing
// one CA bundle share one pool (a copy of the system's CAs costs tens of
// kilobytes), and a file changed on disk is read again by the next client
// created, which is how a renewed client certificate takes effect.
var tlsFiles = struct {
	sync.Mutex
	cas   map[string]cachedCAs
	certs map[[2]string]cachedCert
}{cas: map[string]cachedCAs{}, certs: map[[2]string]cachedCert{}}

type fileStamp struct {
	mod  time.Time
	size int64
}

type cachedCAs struct {
	stamp fileStamp
	pool  *x509.CertPool
}

type cachedCert struct {
	stamps [2]fileStamp
	cert   *tls.Certificate
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// loadCAFile returns the system's CAs plus those of the PEM file at path.
// The pool is shared and must not be modified.
func loadCAFile(path string) (*x509.CertPool, error) {
	st, err := stampOf(path)
	if err != nil {
		return nil, err
	}
	tlsFiles.Lock()
	defer tlsFiles.Unlock()
	if c, ok := tlsFiles.cas[path]; ok && c.stamp == st {
		return c.pool, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate: give the PEM file (-----BEGIN CERTIFICATE-----) of the CA that issued the HEC's certificate", path)
	}
	tlsFiles.cas[path] = cachedCAs{stamp: st, pool: pool}
	return pool, nil
}

// loadKeyPair returns the client certificate of the PEM files certFile and
// keyFile. The certificate is shared and must not be modified.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	var st [2]fileStamp
	for i, p := range []string{certFile, keyFile} {
		s, err := stampOf(p)
		if err != nil {
			return nil, err
		}
		st[i] = s
	}
	key := [2]string{certFile, keyFile}
	tlsFiles.Lock()
	defer tlsFiles.Unlock()
	if c, ok := tlsFiles.certs[key]; ok && c.stamps == st {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", certFile, keyFile, err)
	}
	tlsFiles.certs[key] = cachedCert{stamps: st, cert: &cert}
	return &cert, nil
}

// certAskedKey is the request context key of an *atomic.Bool that
// clientCertificate sets when a HEC asks for a client certificate during a
// handshake made for the request (the transport dials with the request's
// context values).
type certAskedKey struct{}

// clientCertificate is the tls.Config.GetClientCertificate of a client: it
// chooses among certs as crypto/tls does without the callback (the first
// the HEC accepts, else none), and records that the HEC asked.
func clientCertificate(certs []tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if asked, ok := cri.Context().Value(certAskedKey{}).(*atomic.Bool); ok {
			asked.Store(true)
		}
		for i := range certs {
			if cri.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
		return &tls.Certificate{}, nil
	}
}

// certRefusedError is a connection that broke right after the HEC asked for
// a client certificate. In TLS 1.3 the client finishes its handshake before
// the server has checked the client's certificate, so a refusal arrives as
// an alert after the request is on its way; when the server closes first,
// the request fails with a broken pipe or a reset instead of the alert.
type certRefusedError struct{ err error }

func (e *certRefusedError) Error() string {
	return "the HEC asked for a client certificate, then closed the connection (" + e.err.Error() + ")"
}

func (e *certRefusedError) Unwrap() error { return e.err }

// brokenConn reports whether err is a connection closed or reset by the
// peer.
func brokenConn(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
