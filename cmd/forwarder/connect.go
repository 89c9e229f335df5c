package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/embedded"
	"github.com/ezssh/siem-forwarder/internal/natsconn"
	"github.com/ezssh/siem-forwarder/internal/telemetry"
)

// connection is a NATS connection and, with no NATS_URL, the embedded server
// behind it.
type connection struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	srv *embedded.Server
}

// connect connects to opts.URL or, when it is empty, starts an embedded
// JetStream server listening on listen with its data in dir.
func connect(ctx context.Context, opts natsconn.Options, dir, listen, name string, log *slog.Logger) (*connection, error) {
	c := &connection{}
	if opts.URL == "" {
		host, portStr, err := net.SplitHostPort(listen)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS listen address %q: %w", listen, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS listen port %q: %w", portStr, err)
		}
		abs, _ := filepath.Abs(dir)
		srv, err := embedded.Start(embedded.Config{Host: host, Port: port, StoreDir: abs})
		if err != nil {
			return nil, err
		}
		c.srv = srv
		opts.URL = srv.URL()
		log.Info("no NATS_URL: started an embedded JetStream server (fsync before acknowledge); producers can connect to it",
			"url", srv.URL(), "data", abs)
	}
	nc, err := opts.Connect(ctx, name, log)
	if err != nil {
		c.close()
		return nil, err
	}
	c.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		c.close()
		return nil, err
	}
	c.js = js
	return c, nil
}

// close drains the connection, so every acknowledgement is sent, then stops
// the embedded server.
func (c *connection) close() {
	if c.nc != nil {
		done := make(chan struct{})
		c.nc.SetClosedHandler(func(*nats.Conn) { close(done) })
		if err := c.nc.Drain(); err == nil {
			<-done
		} else {
			c.nc.Close()
		}
	}
	if c.srv != nil {
		c.srv.Shutdown()
	}
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	l, err := parseLevel(level)
	if err != nil {
		l = slog.LevelInfo
	}
	o := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(w, o)))
	}
	return slog.New(telemetry.NewLogHandler(slog.NewTextHandler(w, o)))
}
