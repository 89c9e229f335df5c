// Package embeddedtest starts an embedded JetStream server and connects to a
// NATS server for a test, and cleans both up when the test ends. It is
// imported by tests only.
package embeddedtest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/embedded"
)

// Start starts an embedded server with cfg and shuts it down when the test
// ends. An empty cfg.StoreDir defaults to t.TempDir(). It fails the test if
// the server does not start.
func Start(t testing.TB, cfg embedded.Config) *embedded.Server {
	t.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	srv, err := embedded.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// Connect connects to the server at url with opts and returns the connection
// and a JetStream context on it; the connection is closed when the test ends.
// It fails the test if either cannot be made.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
