package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/notify"
	"github.com/ezssh/siem-forwarder/internal/notifyfeed"
)

// notifyFlags are the admin email settings of `forwarder run`.
type notifyFlags struct {
	smtpURL       string
	host          string
	port          int
	user          string
	password      string
	passwordFile  string
	from          string
	allowInsecure bool
	adminEmails   string
	window        time.Duration
}

func (n *notifyFlags) bind(s *cliflag.Set) {
	s.String(&n.smtpURL, "smtp-url", "SMTP_URL", "", "SMTP server for admin email: smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465 (TLS); empty (and no --smtp-host) disables admin email")
	s.String(&n.host, "smtp-host", "SMTP_HOST", "", "SMTP server host, instead of SMTP_URL")
	s.Int(&n.port, "smtp-port", "SMTP_PORT", 0, "SMTP server port (default 587 with STARTTLS; 465 means implicit TLS)")
	s.String(&n.user, "smtp-user", "SMTP_USER", "", "SMTP user name (AUTH PLAIN, only over TLS or to loopback)")
	s.String(&n.password, "smtp-password", "SMTP_PASSWORD", "", "SMTP password; prefer the environment variable or --smtp-password-file")
	s.String(&n.passwordFile, "smtp-password-file", "SMTP_PASSWORD_FILE", "", "file holding the SMTP password")
	s.String(&n.from, "smtp-from", "SMTP_FROM", "", "sender address of admin email (default: the SMTP user, if it is an address)")
	s.Bool(&n.allowInsecure, "smtp-allow-insecure", "SMTP_ALLOW_INSECURE", false, "allow unencrypted SMTP to a host that is not loopback when it offers no STARTTLS (the password is still never sent in clear)")
	s.String(&n.adminEmails, "admin-emails", "FORWARDER_ADMIN_EMAILS", "", "comma-separated addresses told about the global route's incidents")
	s.Duration(&n.window, "notify-window", "FORWARDER_NOTIFY_WINDOW", 15*time.Minute, "at most one digest email per route in this window")
}

// enabled reports whether an SMTP server is configured.
func (n *notifyFlags) enabled() bool { return n.smtpURL != "" || n.host != "" }

// smtpConfig returns the SMTP settings; ok is false when admin email is off.
func (n *notifyFlags) smtpConfig() (cfg notify.SMTPConfig, ok bool, err error) {
	if !n.enabled() {
		return notify.SMTPConfig{}, false, nil
	}
	switch {
	case n.smtpURL != "" && n.host != "":
		return cfg, false, errors.New("give the SMTP server once: either SMTP_URL (--smtp-url) or SMTP_HOST (--smtp-host)")
	case n.smtpURL != "":
		cfg, err = notify.ParseSMTPURL(n.smtpURL)
		if err != nil {
			return cfg, false, fmt.Errorf("SMTP_URL (--smtp-url): %w", err)
		}
		if n.port != 0 {
			return cfg, false, errors.New("SMTP_PORT (--smtp-port) goes with SMTP_HOST; put the port in SMTP_URL")
		}
		if n.user != "" {
			if cfg.User != "" {
				return cfg, false, errors.New("SMTP user given twice: in SMTP_URL and in SMTP_USER (--smtp-user)")
			}
			cfg.User = n.user
		}
	default:
		cfg = notify.SMTPConfig{Host: n.host, Port: n.port, User: n.user, Security: notify.StartTLS}
		if n.port == 465 {
			cfg.Security = notify.ImplicitTLS
		}
	}
	if n.password != "" {
		if cfg.Password != "" {
			return cfg, false, errors.New("SMTP password given twice: in SMTP_URL and in SMTP_PASSWORD (--smtp-password)")
		}
		cfg.Password = n.password
	}
	if n.passwordFile != "" && cfg.Password != "" {
		return cfg, false, errors.New("SMTP password given twice: use SMTP_PASSWORD_FILE (--smtp-password-file) alone, without a password in SMTP_URL or SMTP_PASSWORD")
	}
	cfg.PasswordFile = n.passwordFile
	cfg.From = n.from
	cfg.AllowInsecure = n.allowInsecure
	if err := cfg.Validate(); err != nil {
		return cfg, false, fmt.Errorf("admin email settings (SMTP_URL or SMTP_HOST, SMTP_USER, SMTP_PASSWORD, SMTP_FROM): %w", err)
	}
	return cfg, true, nil
}

// admins parses FORWARDER_ADMIN_EMAILS.
func (n *notifyFlags) admins() ([]string, error) {
	var out []string
	for _, part := range strings.Split(n.adminEmails, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, err := netmail.ParseAddress(part)
		if err != nil || !strings.Contains(a.Address, "@") {
			return nil, fmt.Errorf("FORWARDER_ADMIN_EMAILS (--admin-emails): %q is not an email address", part)
		}
		out = append(out, a.Address)
	}
	return out, nil
}

// validate reports every bad admin email setting.
func (n *notifyFlags) validate() []error {
	var errs []error
	if _, _, err := n.smtpConfig(); err != nil {
		errs = append(errs, err)
	}
	if _, err := n.admins(); err != nil {
		errs = append(errs, err)
	}
	if n.window <= 0 {
		errs = append(errs, fmt.Errorf("--notify-window (FORWARDER_NOTIFY_WINDOW) %v must be positive", n.window))
	}
	return errs
}

// notifyRoute is what the notifier needs to know of a route.

// startNotifier starts the admin email notifier when SMTP is configured:
// the shared state bucket, then the feed on its own goroutine. stop ends it
// and waits for it. With no SMTP server it logs that admin email is off and
// returns a no-op stop.
func startNotifier(ctx context.Context, n notifyFlags, js jetstream.JetStream, dlqStream string, replicas int, table *routeTable, base *slog.Logger) (stop func(), err error) {
	log := base.With("component", "forwarder")
	// Alerts from this start on get their email even if the notifier's
	// consumer is created after the pipeline raised them; the minute allows
	// for the server's clock being behind ours.
	started := time.Now().Add(-time.Minute)
	smtpCfg, ok, err := n.smtpConfig()
	if err != nil {
		return nil, &cliflag.UsageError{Msg: err.Error()}
	}
	if !ok {
		log.Info("admin email disabled: set SMTP_URL (or SMTP_HOST) and FORWARDER_ADMIN_EMAILS to be told about dead letters and outages")
		return func() {}, nil
	}
	mailer, err := notify.NewSMTPMailer(smtpCfg)
	if err != nil {
		return nil, &cliflag.UsageError{Msg: "admin email settings: " + err.Error()}
	}
	store, err := notifyfeed.OpenStore(ctx, js, notifyfeed.StoreOptions{Replicas: replicas})
	if err != nil {
		return nil, err
	}
	if table.has("global") && len(table.recipients("global")) == 0 {
		log.Warn("admin email is on but FORWARDER_ADMIN_EMAILS is empty: nobody is told about the global route", "route", "global")
	}
	notifier, err := notify.New(notify.Config{
		Window:      n.window,
		Mailer:      mailer,
		Store:       store,
		Recipients:  table.recipients,
		Destination: table.destination,
		Log:         base,
	})
	if err != nil {
		return nil, err
	}
	log.Info("admin email enabled", "smtp", smtpCfg.String(), "window", n.window)
	nctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := notifyfeed.Run(nctx, js, notifyfeed.Options{Stream: dlqStream, Notifier: notifier, Since: started, Log: base}); err != nil {
			log.Error("admin email notifier failed", "err", err)
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}, nil
}
