package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/notify"
	"github.com/ezssh/siem-forwarder/internal/notify/smtptest"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

const smtpSecret = "hunter2-smtp-secret"

func parseNotifyFlags(t *testing.T, env map[string]string, args ...string) notifyFlags {
	t.Helper()
	for _, k := range []string{"SMTP_URL", "SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD", "SMTP_PASSWORD_FILE", "SMTP_FROM", "SMTP_ALLOW_INSECURE", "FORWARDER_ADMIN_EMAILS", "FORWARDER_NOTIFY_WINDOW"} {
		t.Setenv(k, env[k])
	}
	var n notifyFlags
	s := cliflag.New("test", "", &bytes.Buffer{})
	n.bind(s)
	if err := s.Parse(args); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNotifyFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		off     bool
		want    notify.SMTPConfig
		admins  []string
		wantErr string
	}{
		{name: "nothing set: admin email off", off: true},
		{name: "url", env: map[string]string{"SMTP_URL": "smtp://alerts:" + smtpSecret + "@mail.example.com:587", "SMTP_FROM": "forwarder@example.com", "FORWARDER_ADMIN_EMAILS": "Admin <admin@example.com>, sec@example.com"},
			want:   notify.SMTPConfig{Host: "mail.example.com", Port: 587, Security: notify.StartTLS, User: "alerts", Password: smtpSecret, From: "forwarder@example.com"},
			admins: []string{"admin@example.com", "sec@example.com"}},
		{name: "url without credentials plus user and password file", env: map[string]string{"SMTP_URL": "smtps://mail.example.com", "SMTP_USER": "alerts@example.com", "SMTP_PASSWORD_FILE": "/run/secrets/smtp"},
			want: notify.SMTPConfig{Host: "mail.example.com", Security: notify.ImplicitTLS, User: "alerts@example.com", PasswordFile: "/run/secrets/smtp"}},
		{name: "host and port 465 means TLS", env: map[string]string{"SMTP_HOST": "mail.example.com", "SMTP_PORT": "465", "SMTP_FROM": "f@example.com", "SMTP_ALLOW_INSECURE": "true"},
			want: notify.SMTPConfig{Host: "mail.example.com", Port: 465, Security: notify.ImplicitTLS, From: "f@example.com", AllowInsecure: true}},
		{name: "url and host", env: map[string]string{"SMTP_URL": "smtp://mail.example.com", "SMTP_HOST": "mail.example.com", "SMTP_FROM": "f@example.com"}, wantErr: "give the SMTP server once"},
		{name: "password twice", env: map[string]string{"SMTP_URL": "smtp://u:" + smtpSecret + "@mail.example.com", "SMTP_PASSWORD": smtpSecret, "SMTP_FROM": "f@example.com"}, wantErr: "password given twice"},
		{name: "no sender", env: map[string]string{"SMTP_URL": "smtp://u:" + smtpSecret + "@mail.example.com"}, wantErr: "SMTP_FROM"},
		{name: "bad url", env: map[string]string{"SMTP_URL": "mail.example.com:587", "SMTP_FROM": "f@example.com"}, wantErr: "SMTP_URL (--smtp-url)"},
		{name: "bad admin", env: map[string]string{"FORWARDER_ADMIN_EMAILS": "admin@example.com, not-an-address"}, off: true, wantErr: `"not-an-address" is not an email address`},
		{name: "bad window", env: map[string]string{"FORWARDER_NOTIFY_WINDOW": "-1m"}, off: true, wantErr: "must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := parseNotifyFlags(t, tc.env)
			err := joinErrs(n.validate())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), smtpSecret) {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg, on, _ := n.smtpConfig()
			if on == tc.off {
				t.Fatalf("enabled = %v", on)
			}
			if on && cfg != tc.want {
				t.Errorf("config %+v, want %+v", cfg, tc.want)
			}
			admins, _ := n.admins()
			if strings.Join(admins, ",") != strings.Join(tc.admins, ",") {
				t.Errorf("admins %v, want %v", admins, tc.admins)
			}
		})
	}
}

func joinErrs(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error() + "; ")
	}
	return &cliflag.UsageError{Msg: b.String()}
}

func TestNotifierOffWithoutSMTP(t *testing.T) {
	var logs bytes.Buffer
	n := parseNotifyFlags(t, nil)
	stop, err := startNotifier(context.Background(), n, nil, "EZSSH_AUDIT_DLQ", 1, newRouteTable(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if c := strings.Count(logs.String(), "admin email disabled"); c != 1 {
		t.Errorf("logged %d times that admin email is off:\n%s", c, logs.String())
	}
}

func TestNotifierEmailsTheGlobalRoutesAdmins(t *testing.T) {
	_, js := startTestJetStream(t)
	ctx := context.Background()
	if _, err := pipeline.EnsureDLQStream(ctx, js, "EZSSH_AUDIT_DLQ", 0, 0); err != nil {
		t.Fatal(err)
	}
	mail := smtptest.Start(t, smtptest.Options{User: "alerts", Password: smtpSecret})
	n := parseNotifyFlags(t, map[string]string{
		"SMTP_URL":               "smtp://alerts:" + smtpSecret + "@" + mail.Addr(),
		"SMTP_FROM":              "forwarder@example.com",
		"FORWARDER_ADMIN_EMAILS": "admin@example.com",
	})
	table := newRouteTable()
	admins, err := n.admins()
	if err != nil {
		t.Fatal(err)
	}
	table.set("global", routeInfo{destination: "https://hec.huntress.io/services/collector", admins: admins})
	stop, err := startNotifier(ctx, n, js, "EZSSH_AUDIT_DLQ", 1, table, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := js.Consumer(ctx, "EZSSH_AUDIT_DLQ", "notifier"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the notifier's consumer never appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ev, _ := json.Marshal(pipeline.RouteEvent{Route: "global", State: pipeline.StateOpened, Class: "misconfigured",
		Error: `huntress: HEC replied 403: "Invalid token" [misconfigured]`, Status: 403, At: time.Now()})
	if _, err := js.Publish(ctx, pipeline.RouteEventSubject("global", pipeline.StateOpened), ev); err != nil {
		t.Fatal(err)
	}
	for len(mail.Messages()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no email")
		}
		time.Sleep(20 * time.Millisecond)
	}
	m := mail.Messages()[0]
	if strings.Join(m.To, ",") != "admin@example.com" || m.User != "alerts" {
		t.Errorf("email to %v, authenticated as %q", m.To, m.User)
	}
	if !strings.Contains(m.Body, "the HEC token was refused") || !strings.Contains(m.Body, "hec.huntress.io") {
		t.Errorf("email:\n%s", m.Body)
	}
}
