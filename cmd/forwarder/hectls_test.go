package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/delivery"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/routes"
	"github.com/ezssh/siem-forwarder/internal/testpki"
)

const tlsTestToken = "tls-token-0123456789abcdef"

// clearHECEnv keeps the machine's HUNTRESS_HEC_* variables out of a test.
func clearHECEnv(t *testing.T) {
	for _, v := range []string{"HUNTRESS_HEC_URL", "HUNTRESS_HEC_TOKEN", "HUNTRESS_HEC_TOKEN_FILE", "HUNTRESS_HEC_CA_FILE",
		"HUNTRESS_HEC_CERT_FILE", "HUNTRESS_HEC_KEY_FILE", "FORWARDER_ALLOW_INSECURE_HTTP", "FORWARDER_ROUTES_FILE"} {
		t.Setenv(v, "")
	}
}

// tlsCollector serves a collector over TLS with httptest's certificate,
// which no system CA issued, and returns it with a PEM file of that
// certificate (its own CA). With clientCA, a client certificate issued by it
// is required.
func tlsCollector(t *testing.T, clientCA *testpki.CA) (srv *httptest.Server, col *huntress.Collector, caFile string) {
	t.Helper()
	col = huntress.NewCollector(huntress.CollectorOptions{Token: tlsTestToken})
	srv = httptest.NewUnstartedServer(col)
	if clientCA != nil {
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.Pool}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = testpki.WriteFile(t, t.TempDir(), "hec-ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	return srv, col, caFile
}

// clientCertificate makes a CA and a client certificate it issued, and
// returns the CA and the PEM files of the certificate and its key.
func clientCertificate(t *testing.T) (ca *testpki.CA, certFile, keyFile string) {
	t.Helper()
	ca = testpki.NewCA(t, "client CA")
	certFile, keyFile = ca.IssueFiles(t, t.TempDir(), testpki.Leaf{CommonName: "forwarder", Client: true})
	return ca, certFile, keyFile
}

func TestTestConnectionTLS(t *testing.T) {
	clearHECEnv(t)
	srv, _, caFile := tlsCollector(t, nil)
	ca, certFile, keyFile := clientCertificate(t)
	mtls, _, mtlsCAFile := tlsCollector(t, ca)
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr error
		want    []string
	}{
		{"self-signed HEC refused", []string{"--hec-url", srv.URL, "--hec-token", tlsTestToken},
			errTestFailed, []string{"FAILED (tls)", "--hec-ca-file", "HUNTRESS_HEC_CA_FILE"}},
		{"trusted with the CA file", []string{"--hec-url", srv.URL, "--hec-token", tlsTestToken, "--hec-ca-file", caFile},
			nil, []string{"OK"}},
		{"mutual TLS without a client certificate", []string{"--hec-url", mtls.URL, "--hec-token", tlsTestToken, "--hec-ca-file", mtlsCAFile},
			errTestFailed, []string{"FAILED (tls)", "--hec-cert-file"}},
		{"mutual TLS with the client certificate", []string{"--hec-url", mtls.URL, "--hec-token", tlsTestToken, "--hec-ca-file", mtlsCAFile,
			"--hec-cert-file", certFile, "--hec-key-file", keyFile}, nil, []string{"OK"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := runTestConnection(context.Background(), tt.args, &out, &out); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v\n%s", err, tt.wantErr, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output %q does not mention %q", out.String(), w)
				}
			}
		})
	}
}

// Bad TLS files, and http:// to a host that is not loopback, stop every
// command at start with a usage error (exit 2) naming the flag.
func TestHECSettingsRefusedAtStart(t *testing.T) {
	clearHECEnv(t)
	dir := t.TempDir()
	_, certFile, keyFile := clientCertificate(t)
	garbage := testpki.WriteFile(t, dir, "garbage.pem", []byte("not PEM\n"))
	missing := filepath.Join(dir, "missing.pem")
	hec := []string{"--hec-url", "https://hec.example.com/services/collector", "--hec-token", tlsTestToken}
	every := []string{"test-connection", "run", "replay"}
	for _, tt := range []struct {
		name string
		args []string
		want string
		cmds []string
	}{
		{"missing CA file", []string{"--hec-ca-file", missing}, "--hec-ca-file (HUNTRESS_HEC_CA_FILE)", every},
		{"CA file without a certificate", []string{"--hec-ca-file", garbage}, "--hec-ca-file (HUNTRESS_HEC_CA_FILE)", every},
		{"certificate without its key", []string{"--hec-cert-file", certFile}, "--hec-cert-file", every},
		{"key without its certificate", []string{"--hec-key-file", keyFile}, "--hec-key-file", every},
		{"key that is not a key", []string{"--hec-cert-file", certFile, "--hec-key-file", garbage}, "--hec-key-file", every},
		// replay checks the URL of the route it replays to once connected.
		{"http to a remote host", []string{"--hec-url", "http://hec.example.com/services/collector"}, "--allow-insecure-http", every[:2]},
	} {
		for _, cmd := range tt.cmds {
			t.Run(tt.name+"/"+cmd, func(t *testing.T) {
				args := append(append([]string{cmd}, hec...), tt.args...)
				if cmd == "run" {
					args = append(args, "--http-addr", "", "--nats-url", "nats://127.0.0.1:1")
				}
				if cmd == "replay" {
					args = append(args, "--since", "1h", "--nats-url", "nats://127.0.0.1:1")
				}
				var out bytes.Buffer
				err := run(context.Background(), args, &out, &out)
				if !cliflag.IsUsage(err) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("%v = %v, want a usage error naming %s", args, err, tt.want)
				}
			})
		}
	}

	// The flag that allows it.
	var out bytes.Buffer
	err := runTestConnection(context.Background(), []string{"--hec-url", "http://no-such-host.invalid/services/collector",
		"--hec-token", tlsTestToken, "--allow-insecure-http"}, &out, &out)
	if !errors.Is(err, errTestFailed) || !strings.Contains(out.String(), "unreachable") {
		t.Errorf("with --allow-insecure-http: err = %v, output %q; want the request tried", err, out.String())
	}
}

// The TLS flags reach every route's client: the global route, a static
// route and a subscription route from EZSSH_SIEM.
func TestHECTLSFilesApplyToEveryRoute(t *testing.T) {
	clearHECEnv(t)
	ca, certFile, keyFile := clientCertificate(t)
	srv, col, caFile := tlsCollector(t, ca)
	routesFile := testpki.WriteFile(t, t.TempDir(), "routes.json",
		[]byte(`{"routes":[{"name":"soc","hec_url":"`+srv.URL+`","hec_token":"`+tlsTestToken+`"}]}`))

	parse := func(t *testing.T, args ...string) *runFlags {
		t.Helper()
		var f runFlags
		s := cliflag.New("forwarder run", "", io.Discard)
		f.bind(s)
		if err := s.Parse(append([]string{"--hec-url", srv.URL, "--hec-token", tlsTestToken, "--routes-file", routesFile}, args...)); err != nil {
			t.Fatal(err)
		}
		return &f
	}
	send := func(t *testing.T, what string, c *huntress.Client) error {
		t.Helper()
		return c.Send(context.Background(), []delivery.Event{{Time: time.Now(), Body: []byte(`{"EventId":"` + what + `"}`)}})
	}
	entry := routes.Entry{Enabled: true, HECURL: srv.URL, HECToken: tlsTestToken}

	f := parse(t, "--hec-ca-file", caFile, "--hec-cert-file", certFile, "--hec-key-file", keyFile)
	table := newRouteTable()
	if _, err := f.staticRoutes(table); err != nil {
		t.Fatal(err)
	}
	defer table.closeAll()
	for _, name := range []string{"global", "soc"} {
		if err := send(t, name, table.routes[name].client); err != nil {
			t.Errorf("route %s: %v", name, err)
		}
	}
	cfg, err := entry.HECConfig("sub-1", nil, f.hec.base()) // what subscriptionRoutes.apply does
	if err != nil {
		t.Fatal(err)
	}
	c, err := huntress.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	if err := send(t, "sub-1", c); err != nil {
		t.Errorf("subscription route: %v", err)
	}
	if n := len(col.Events()); n != 3 {
		t.Errorf("the HEC received %d events, want 3", n)
	}

	// Without the files, the same routes are refused.
	f = parse(t)
	table = newRouteTable()
	if _, err := f.staticRoutes(table); err != nil {
		t.Fatal(err)
	}
	defer table.closeAll()
	if err := send(t, "soc", table.routes["soc"].client); delivery.ClassOf(err) != delivery.Misconfigured {
		t.Errorf("static route without the CA file: %v, want misconfigured", err)
	}
}
