package main

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/embedded"
	"github.com/ezssh/siem-forwarder/internal/embedded/embeddedtest"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// startTestJetStream starts an embedded JetStream server for the test and
// returns its URL and a JetStream context on it.
func startTestJetStream(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	srv := embeddedtest.Start(t, embedded.Config{})
	_, js := embeddedtest.Connect(t, srv.URL())
	return srv.URL(), js
}

// runPipeline runs fw until the test ends, then checks that Run returned
// cleanly.
func runPipeline(t *testing.T, fw *pipeline.Forwarder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
