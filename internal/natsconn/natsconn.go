// Package natsconn turns the NATS ecosystem's connection settings (NATS_URL,
// NATS_CREDS, NATS_NKEY, NATS_USER, NATS_PASSWORD, NATS_CA, NATS_CERT,
// NATS_KEY) into a connection, for every command of this repository.
package natsconn

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
)

// Options are the connection settings. The zero value connects to nothing:
// URL must be set (the commands start an embedded server when it is empty).
type Options struct {
	// URL is a comma-separated list of server URLs.
	URL string
	// Creds is a path to a credentials file (JWT and nkey seed).
	Creds string
	// NKey is a path to an nkey seed file.
	NKey string
	// User and Password authenticate with a user and password.
	User     string
	Password string
	// CA is a PEM bundle to verify the server's certificate with.
	CA string
	// Cert and Key are a client certificate and its key (mutual TLS).
	Cert string
	Key  string
}

// Bind registers the options as flags with their NATS_* environment variables.
func (o *Options) Bind(s *cliflag.Set) {
	s.String(&o.URL, "nats-url", "NATS_URL", "", "NATS server URL(s), comma-separated; empty starts an embedded JetStream server")
	s.String(&o.Creds, "nats-creds", "NATS_CREDS", "", "path to a NATS credentials file")
	s.String(&o.NKey, "nats-nkey", "NATS_NKEY", "", "path to a NATS nkey seed file")
	s.String(&o.User, "nats-user", "NATS_USER", "", "NATS user name")
	s.String(&o.Password, "nats-password", "NATS_PASSWORD", "", "NATS password (prefer the environment variable)")
	s.String(&o.CA, "nats-ca", "NATS_CA", "", "PEM file of CAs that sign the NATS server's certificate")
	s.String(&o.Cert, "nats-cert", "NATS_CERT", "", "client certificate for NATS mutual TLS")
	s.String(&o.Key, "nats-key", "NATS_KEY", "", "client key for NATS mutual TLS")
}

// Validate reports settings that cannot work together.
func (o *Options) Validate() error {
	if (o.Cert == "") != (o.Key == "") {
		return cliflag.Usagef("--nats-cert and --nats-key (NATS_CERT, NATS_KEY) must be given together")
	}
	if o.Password != "" && o.User == "" {
		return cliflag.Usagef("--nats-password (NATS_PASSWORD) needs --nats-user (NATS_USER)")
	}
	if o.Creds != "" && o.NKey != "" {
		return cliflag.Usagef("give either --nats-creds (NATS_CREDS) or --nats-nkey (NATS_NKEY), not both")
	}
	return nil
}

// Connect connects with the options. name identifies the client in the
// server's monitoring. The connection reconnects forever; disconnections are
// logged to log (which may be nil).
func (o *Options) Connect(ctx context.Context, name string, log *slog.Logger) (*nats.Conn, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS error", "err", err)
		}),
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.NKey != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKey)
		if err != nil {
			return nil, fmt.Errorf("natsconn: nkey seed %s: %w", o.NKey, err)
		}
		opts = append(opts, opt)
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.CA != "" {
		opts = append(opts, nats.RootCAs(o.CA))
	}
	if o.Cert != "" {
		opts = append(opts, nats.ClientCert(o.Cert, o.Key))
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(o.URL, opts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("natsconn: connect to %s: %w", redactURL(o.URL), r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, ctx.Err()
	}
}
