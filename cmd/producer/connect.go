package main

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/natsconn"
)

// defaultURL is where the forwarder's embedded server listens by default.
const defaultURL = "nats://127.0.0.1:4222"

// conn holds the flags every command shares: the NATS connection and whether
// to create the stream.
type conn struct {
	nats         natsconn.Options
	ensureStream bool
	maxInFlight  int
}

func (c *conn) bind(s *cliflag.Set) {
	c.nats.Bind(s)
	// The producer never starts a server: it talks to the forwarder's.
	c.nats.URL = defaultURL
	if f := s.FlagSet().Lookup("nats-url"); f != nil {
		f.DefValue = defaultURL
		f.Usage = "NATS server URL(s), comma-separated"
	}
	s.Bool(&c.ensureStream, "ensure-stream", "PRODUCER_ENSURE_STREAM", false,
		"create or update the stream "+audit.StreamName+" with its default settings before publishing")
	s.Int(&c.maxInFlight, "max-in-flight", "PRODUCER_MAX_IN_FLIGHT", 1024,
		"most asynchronous publishes awaiting their acknowledgement")
}

func (c *conn) validate() error {
	if c.nats.URL == "" {
		c.nats.URL = defaultURL
	}
	if c.maxInFlight <= 0 {
		return cliflag.Usagef("--max-in-flight (PRODUCER_MAX_IN_FLIGHT) must be positive")
	}
	return c.nats.Validate()
}

// connect connects, ensures the stream if asked and returns a Publisher. The
// caller closes the connection.
func (c *conn) connect(ctx context.Context) (*nats.Conn, jetstream.JetStream, *audit.Publisher, error) {
	nc, err := c.nats.Connect(ctx, "ezssh-producer", nil)
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(c.maxInFlight))
	if err != nil {
		nc.Close()
		return nil, nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	if c.ensureStream {
		if _, err := audit.EnsureStream(ctx, js, audit.StreamOptions{}); err != nil {
			nc.Close()
			return nil, nil, nil, err
		}
	}
	p := audit.NewPublisher(js, audit.PublisherOptions{MaxInFlight: c.maxInFlight})
	return nc, js, p, nil
}
