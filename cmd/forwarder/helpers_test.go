package main

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/embedded"
	"github.com/ezssh/siem-forwarder/internal/embedded/embeddedtest"
)

// startTestJetStream starts an embedded JetStream server for the test and
// returns its URL and a JetStream context on it.
func startTestJetStream(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	srv := embeddedtest.Start(t, embedded.Config{})
	_, js := embeddedtest.Connect(t, srv.URL())
	return srv.URL(), js
}
