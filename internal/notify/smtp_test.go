package notify_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/ezssh/siem-forwarder/internal/notify"
	"github.com/ezssh/siem-forwarder/internal/notify/smtptest"
	"github.com/ezssh/siem-forwarder/internal/testpki"
)

const password = "s3cr3t-p@ss:word"

func TestParseSMTPURL(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want notify.SMTPConfig
		err  string
	}{
		{raw: "smtp://alerts%40example.com:s3cr3t%2Fx@mail.example.com:587", want: notify.SMTPConfig{Host: "mail.example.com", Port: 587, Security: notify.StartTLS, User: "alerts@example.com", Password: "s3cr3t/x"}},
		{raw: "smtps://u:pass-word@mail.example.com", want: notify.SMTPConfig{Host: "mail.example.com", Security: notify.ImplicitTLS, User: "u", Password: "pass-word"}},
		{raw: "smtp://localhost:1025", want: notify.SMTPConfig{Host: "localhost", Port: 1025, Security: notify.StartTLS}},
		{raw: "smtp://[::1]:25/", want: notify.SMTPConfig{Host: "::1", Port: 25, Security: notify.StartTLS}},
		{raw: "http://u:" + password + "@mail.example.com", err: "scheme"},
		{raw: "smtp://u:" + password + "@mail.example.com:99999", err: "port"},
		{raw: "smtp://u:" + password + "@mail.example.com/x?y=1", err: "path"},
		{raw: "smtp://u:" + password + "%zz@mail.example.com", err: "does not parse"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := notify.ParseSMTPURL(tc.raw)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if strings.Contains(got.String(), got.Password) && got.Password != "" {
				t.Errorf("String shows the password: %s", got.String())
			}
		})
	}
}

func TestSMTPConfigValidate(t *testing.T) {
	ok := notify.SMTPConfig{Host: "mail.example.com", From: "forwarder@example.com", User: "u", Password: password}
	for _, tc := range []struct {
		name string
		cfg  func(c *notify.SMTPConfig)
		err  string
	}{
		{"ok", func(*notify.SMTPConfig) {}, ""},
		{"from defaults to an address user", func(c *notify.SMTPConfig) { c.From, c.User = "", "alerts@example.com" }, ""},
		{"no host", func(c *notify.SMTPConfig) { c.Host = "" }, "no SMTP server"},
		{"no from", func(c *notify.SMTPConfig) { c.From = "" }, "SMTP_FROM"},
		{"bad from", func(c *notify.SMTPConfig) { c.From = "not an address" }, "not an email address"},
		{"two passwords", func(c *notify.SMTPConfig) { c.PasswordFile = "/x" }, "password given twice"},
		{"password without user", func(c *notify.SMTPConfig) { c.User = "" }, "without a user name"},
		{"bad port", func(c *notify.SMTPConfig) { c.Port = 70000 }, "not a port number"},
		{"bad security", func(c *notify.SMTPConfig) { c.Security = "ssl" }, "security"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.cfg(&c)
			err := c.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func send(t *testing.T, cfg notify.SMTPConfig) error {
	t.Helper()
	m, err := notify.NewSMTPMailer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.Send(ctx, notify.Message{
		ID:      "global.1.123",
		To:      []string{"Admin <admin@example.com>", "sec@example.com"},
		Subject: "EZSSH SIEM: delivery stopped — token refused",
		Body:    "Paste a new one in EZSSH Settings → Advanced Settings.\n.\nA line that is longer than seventy-six characters so that quoted-printable has to wrap it somewhere.\n",
	})
}

func checkReceived(t *testing.T, srv *smtptest.Server, wantTLS bool) {
	t.Helper()
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages received, want 1", len(msgs))
	}
	m := msgs[0]
	if m.From != "forwarder@example.com" || strings.Join(m.To, ",") != "admin@example.com,sec@example.com" {
		t.Errorf("envelope from %q to %v", m.From, m.To)
	}
	if m.TLS != wantTLS {
		t.Errorf("TLS = %v, want %v", m.TLS, wantTLS)
	}
	if m.Subject != "EZSSH SIEM: delivery stopped — token refused" {
		t.Errorf("subject %q", m.Subject)
	}
	if !strings.Contains(m.Body, "EZSSH Settings → Advanced Settings.\n.\nA line that is longer than seventy-six characters so that quoted-printable has to wrap it somewhere.") {
		t.Errorf("body %q", m.Body)
	}
	if id := m.Header.Get("Message-ID"); id != "<global.1.123@example.com>" {
		t.Errorf("Message-ID %q", id)
	}
	if m.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Error("no Auto-Submitted header")
	}
	if strings.Contains(string(m.Raw), password) {
		t.Error("password in the message")
	}
}

func TestSMTPMailerPlainOnLoopbackWithAuth(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{User: "u", Password: password})
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := notify.SMTPConfig{Host: srv.Host, Port: srv.Port, User: "u", PasswordFile: pwFile, From: "forwarder@example.com"}
	if err := send(t, cfg); err != nil {
		t.Fatal(err)
	}
	checkReceived(t, srv, false)
	if srv.Messages()[0].User != "u" {
		t.Error("did not authenticate")
	}
}

func TestSMTPMailerStartTLS(t *testing.T) {
	ca := testpki.NewCA(t, "smtp CA")
	srv := smtptest.Start(t, smtptest.Options{TLS: ca.ServerTLS(t), User: "u", Password: password})
	cfg := notify.SMTPConfig{Host: srv.Host, Port: srv.Port, User: "u", Password: password, From: "forwarder@example.com", RootCAs: ca.Pool}
	if err := send(t, cfg); err != nil {
		t.Fatal(err)
	}
	checkReceived(t, srv, true)

	cfg.RootCAs = nil // the certificate is not trusted: no mail, no fallback to clear text
	err := send(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: err = %v", err)
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("error shows the password: %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages, want still 1", n)
	}
}

func TestSMTPMailerImplicitTLS(t *testing.T) {
	ca := testpki.NewCA(t, "smtp CA")
	srv := smtptest.Start(t, smtptest.Options{TLS: ca.ServerTLS(t), Implicit: true, User: "u", Password: password})
	cfg := notify.SMTPConfig{Host: srv.Host, Port: srv.Port, Security: notify.ImplicitTLS, User: "u", Password: password, From: "forwarder@example.com", RootCAs: ca.Pool}
	if err := send(t, cfg); err != nil {
		t.Fatal(err)
	}
	checkReceived(t, srv, true)
}

func TestSMTPMailerRefusalsArePermanent(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{User: "u", Password: password, Reject: func(string) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}})
	cfg := notify.SMTPConfig{Host: srv.Host, Port: srv.Port, User: "u", Password: password, From: "forwarder@example.com"}
	if err := send(t, cfg); !errors.Is(err, notify.ErrPermanent) {
		t.Errorf("550: err = %v, want ErrPermanent", err)
	}
	cfg.Password = "wrong"
	if err := send(t, cfg); !errors.Is(err, notify.ErrPermanent) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("bad password: err = %v, want ErrPermanent without the password", err)
	}
}

func TestSMTPMailerHonoursContext(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	m, err := notify.NewSMTPMailer(notify.SMTPConfig{Host: srv.Host, Port: srv.Port, From: "forwarder@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Send(ctx, notify.Message{To: []string{"a@example.com"}, Subject: "s", Body: "b"}); err == nil {
		t.Error("sent with a cancelled context")
	}
}
