package huntress

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// testToken looks like a Huntress HEC token (a GUID).
const testToken = "B5A79AAD-D822-46CC-80D1-819F80D7BFB0"

// sampleEvent returns a realistic EZSSH audit event of about 1.5 KB: a
// certificate (incompressible base64) and a handful of short fields.
func sampleEvent(i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 42))
	cert := make([]byte, 760)
	for j := range cert {
		cert[j] = byte(r.Uint32())
	}
	key := make([]byte, 51)
	for j := range key {
		key[j] = byte(r.Uint32())
	}
	return fmt.Appendf(nil, `{"EventType":"EZSSH_SSH","RequestDate":"2026-01-02T03:04:05.%03dZ","ActionPerformed":"Certificate Issued","EventId":"0194f3a2-7c1e-7b3a-9f00-%012d","SubscriptionId":"sub-%d","Criticality":"Medium","RequestorFriendlyName":"Jane Example \u00e9 <jane@example.com>","UserPublicKey":"ssh-ed25519 %s jane@laptop","Certificate":"ssh-ed25519-cert-v01@openssh.com %s"}`,
		i%1000, i, i%7, base64.StdEncoding.EncodeToString(key), base64.StdEncoding.EncodeToString(cert))
}

func sampleEvents(n int) []delivery.Event {
	evs := make([]delivery.Event, n)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range evs {
		evs[i] = delivery.Event{Time: base.Add(time.Duration(i) * time.Millisecond), Body: sampleEvent(i)}
	}
	return evs
}

// collectorServer serves a new Collector with opts on an httptest server.
func collectorServer(t testing.TB, opts CollectorOptions) (*httptest.Server, *Collector) {
	t.Helper()
	col := NewCollector(opts)
	srv := httptest.NewServer(col)
	t.Cleanup(srv.Close)
	return srv, col
}

// newClient returns a Client for url with testToken; edit adjusts the config.
func newClient(t testing.TB, url string, edit ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{URL: url, Token: testToken, Host: "test-host"}
	for _, e := range edit {
		e(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// closedURL returns an http URL on loopback where nothing listens.
func closedURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/services/collector"
}
