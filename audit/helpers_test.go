package audit_test

import (
	"context"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/embedded"
	"github.com/ezssh/siem-forwarder/internal/embedded/embeddedtest"
)

// startJS starts an embedded JetStream server for the test and returns a
// JetStream context connected to it.
func startJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	s := embeddedtest.Start(t, embedded.Config{NoSync: true})
	_, js := embeddedtest.Connect(t, s.URL())
	return js
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func utf8Valid(b []byte) bool { return utf8.Valid(b) }
