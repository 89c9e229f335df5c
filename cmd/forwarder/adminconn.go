package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/natsconn"
)

// adminDefaultURL is where the forwarder's embedded server listens by default.
const adminDefaultURL = "nats://127.0.0.1:4222"

// adminConn are the connection settings of the commands that talk to the
// NATS of running forwarders (dlq, routes, replay, status). They never start
// a server of their own.
type adminConn struct {
	nats natsconn.Options
}

func (c *adminConn) bind(s *cliflag.Set) {
	c.nats.Bind(s)
	c.nats.URL = adminDefaultURL
	if f := s.FlagSet().Lookup("nats-url"); f != nil {
		f.DefValue = adminDefaultURL
		f.Usage = "NATS server URL(s), comma-separated"
	}
}

func (c *adminConn) validate() error {
	if c.nats.URL == "" {
		c.nats.URL = adminDefaultURL
	}
	return c.nats.Validate()
}

// connect connects as ezssh-forwarder-<component>, logging connection
// trouble to stderr. The caller closes the connection.
func (c *adminConn) connect(ctx context.Context, stderr io.Writer, component string) (*connection, error) {
	return c.connectLog(ctx, newLogger(stderr, "warn", "text").With("component", component), component)
}

// connectLog is connect with its own logger. On the default URL a failure
// says what to set.
func (c *adminConn) connectLog(ctx context.Context, log *slog.Logger, component string) (*connection, error) {
	conn, err := connect(ctx, c.nats, "", "", "ezssh-forwarder-"+component, log)
	if err != nil {
		if c.nats.URL == adminDefaultURL {
			return nil, fmt.Errorf("%w (is a forwarder running on this machine? if not, set NATS_URL or --nats-url)", err)
		}
		return nil, err
	}
	return conn, nil
}
