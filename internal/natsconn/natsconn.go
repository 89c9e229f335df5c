// Package natsconn turns the NATS ecosystem's connection settings (NATS_URL,
// NATS_CREDS, NATS_NKEY, NATS_USER, NATS_PASSWORD or NATS_PASSWORD_FILE,
// NATS_CA, NATS_CERT, NATS_KEY, NATS_INBOX_PREFIX) into a connection, for
// every command of this repository. docs/nats-security.md shows a
// least-privilege server setup.
package natsconn

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
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
	// PasswordFile is a file holding the password, instead of Password; a
	// trailing newline is not part of it.
	PasswordFile string
	// CA is a PEM bundle to verify the server's certificate with.
	CA string
	// Cert and Key are a client certificate and its key (mutual TLS).
	Cert string
	Key  string
	// InboxPrefix starts the subjects replies come back on. Default
	// "_INBOX". Give each user its own (e.g. "_INBOX.forwarder") and allow
	// it to subscribe only there, so that no user of the account can read
	// the replies another one gets: the events a forwarder pulls, the routes
	// it reads (docs/nats-security.md).
	InboxPrefix string
}

// Bind registers the options as flags with their NATS_* environment variables.
func (o *Options) Bind(s *cliflag.Set) {
	s.String(&o.URL, "nats-url", "NATS_URL", "", "NATS server URL(s), comma-separated; empty starts an embedded JetStream server")
	s.String(&o.Creds, "nats-creds", "NATS_CREDS", "", "path to a NATS credentials file")
	s.String(&o.NKey, "nats-nkey", "NATS_NKEY", "", "path to a NATS nkey seed file")
	s.String(&o.User, "nats-user", "NATS_USER", "", "NATS user name")
	s.String(&o.Password, "nats-password", "NATS_PASSWORD", "", "NATS password (prefer the environment variable or the file)")
	s.String(&o.PasswordFile, "nats-password-file", "NATS_PASSWORD_FILE", "", "file holding the NATS password (a trailing newline is ignored)")
	s.String(&o.CA, "nats-ca", "NATS_CA", "", "PEM file of CAs that sign the NATS server's certificate")
	s.String(&o.Cert, "nats-cert", "NATS_CERT", "", "client certificate for NATS mutual TLS")
	s.String(&o.Key, "nats-key", "NATS_KEY", "", "client key for NATS mutual TLS")
	s.String(&o.InboxPrefix, "nats-inbox-prefix", "NATS_INBOX_PREFIX", "", "subject prefix of this client's reply inboxes, to match its subscribe permission (default _INBOX)")
}

// Validate reports settings that cannot work together, and a password file
// that cannot be read, as a *cliflag.UsageError.
func (o *Options) Validate() error {
	if (o.Cert == "") != (o.Key == "") {
		return cliflag.Usagef("--nats-cert and --nats-key (NATS_CERT, NATS_KEY) must be given together")
	}
	if o.Password != "" && o.PasswordFile != "" {
		return cliflag.Usagef("give the NATS password once: either NATS_PASSWORD (--nats-password) or NATS_PASSWORD_FILE (--nats-password-file), not both")
	}
	if (o.Password != "" || o.PasswordFile != "") && o.User == "" {
		return cliflag.Usagef("a NATS password (NATS_PASSWORD, NATS_PASSWORD_FILE) needs --nats-user (NATS_USER)")
	}
	if _, err := o.password(); err != nil {
		return err
	}
	if o.InboxPrefix != "" && !validInboxPrefix(o.InboxPrefix) {
		return cliflag.Usagef("--nats-inbox-prefix (NATS_INBOX_PREFIX) %q must be subject tokens separated by dots, without wildcards or spaces", o.InboxPrefix)
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
		password, err := o.password()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserInfo(o.User, password))
	}
	if o.CA != "" {
		opts = append(opts, nats.RootCAs(o.CA))
	}
	if o.Cert != "" {
		opts = append(opts, nats.ClientCert(o.Cert, o.Key))
	}
	if o.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(o.InboxPrefix))
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
			return nil, fmt.Errorf("natsconn: connect to %s: %w%s", redactURL(o.URL), r.err, hint(r.err, o))
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

// password is Password, or the content of PasswordFile without its trailing
// newline. A file that cannot be read or holds nothing is a usage error; the
// error never holds the file's content.
func (o *Options) password() (string, error) {
	if o.PasswordFile == "" {
		return o.Password, nil
	}
	b, err := os.ReadFile(o.PasswordFile)
	if err != nil {
		return "", cliflag.Usagef("--nats-password-file (NATS_PASSWORD_FILE): cannot read the NATS password file: %v", err)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return "", cliflag.Usagef("--nats-password-file (NATS_PASSWORD_FILE): %s is empty", o.PasswordFile)
	}
	return p, nil
}

func validInboxPrefix(p string) bool {
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return false
		}
	}
	return true
}
