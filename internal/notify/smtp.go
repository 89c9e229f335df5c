package notify

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Security is how an SMTPMailer protects its connection.
type Security string

const (
	// StartTLS connects in clear text and upgrades with STARTTLS (port 587).
	// A server that does not offer STARTTLS is refused unless it is on
	// loopback or AllowInsecure is set.
	StartTLS Security = "starttls"
	// ImplicitTLS speaks TLS from the first byte (smtps, port 465).
	ImplicitTLS Security = "tls"
)

// SMTPConfig says how to reach the mail server. Its zero value means the
// documented defaults, except that Host and From are required. Its String
// never shows the password.
type SMTPConfig struct {
	// Host is the mail server's name or address. Required.
	Host string
	// Port defaults to 587 for StartTLS and 465 for ImplicitTLS.
	Port int
	// Security defaults to StartTLS.
	Security Security
	// User, when set, authenticates with AUTH PLAIN, only over TLS or to a
	// loopback host.
	User string
	// Password is User's password; PasswordFile names a file holding it
	// instead (surrounding white space is ignored). Give at most one.
	Password     string
	PasswordFile string
	// From is the sender address. Default: User, if it is an email address.
	From string
	// AllowInsecure allows an unencrypted session with a host that is not
	// loopback (when it offers no STARTTLS). The password is still never
	// sent in clear text.
	AllowInsecure bool
	// RootCAs verifies the server's certificate. Default: the system's
	// roots. Verification is never turned off.
	RootCAs *x509.CertPool
	// Timeout bounds connecting and the whole session of one email.
	// Default 30 seconds.
	Timeout time.Duration
	// HelloName is the name given in EHLO. Default: this machine's host name.
	HelloName string
}

// ParseSMTPURL reads smtp://user:password@host:587 (STARTTLS) or
// smtps://user:password@host:465 (implicit TLS). User and password are
// optional and percent-decoded. Errors never repeat the URL, which may hold
// a password.
func ParseSMTPURL(raw string) (SMTPConfig, error) {
	const want = "expected smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465 (TLS); percent-encode special characters in the password"
	u, err := url.Parse(raw)
	if err != nil {
		return SMTPConfig{}, fmt.Errorf("SMTP URL does not parse: %s", want)
	}
	var c SMTPConfig
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		c.Security = StartTLS
	case "smtps":
		c.Security = ImplicitTLS
	default:
		return SMTPConfig{}, fmt.Errorf("SMTP URL scheme %q is not supported: %s", u.Scheme, want)
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return SMTPConfig{}, fmt.Errorf("SMTP URL has a path, query or fragment: %s", want)
	}
	c.Host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return SMTPConfig{}, fmt.Errorf("SMTP URL port %q is not a port number", p)
		}
		c.Port = n
	}
	if u.User != nil {
		c.User = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	return c, nil
}

func (c SMTPConfig) withDefaults() SMTPConfig {
	if c.Security == "" {
		c.Security = StartTLS
	}
	if c.Port == 0 {
		c.Port = 587
		if c.Security == ImplicitTLS {
			c.Port = 465
		}
	}
	if c.From == "" && strings.Contains(c.User, "@") {
		if _, err := netmail.ParseAddress(c.User); err == nil {
			c.From = c.User
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.HelloName == "" {
		if h, err := os.Hostname(); err == nil && validHelloName(h) {
			c.HelloName = h
		} else {
			c.HelloName = "localhost"
		}
	}
	return c
}

// Validate reports every setting that cannot work, saying what to change.
// It never repeats the password.
func (c SMTPConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Host == "" {
		errs = append(errs, errors.New("no SMTP server: give SMTP_URL (smtp://user:password@mail.example.com:587) or the SMTP host"))
	} else if strings.ContainsAny(c.Host, " /\\@\r\n") {
		errs = append(errs, fmt.Errorf("SMTP host %q is not a host name or address", c.Host))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("SMTP port %d is not a port number (587 for STARTTLS, 465 for TLS)", c.Port))
	}
	switch c.Security {
	case StartTLS, ImplicitTLS:
	default:
		errs = append(errs, fmt.Errorf("SMTP security %q is not %q or %q", c.Security, StartTLS, ImplicitTLS))
	}
	switch {
	case c.From == "":
		errs = append(errs, errors.New("no sender address: set the From address of admin emails (SMTP_FROM)"))
	default:
		if a, err := netmail.ParseAddress(c.From); err != nil || !strings.Contains(a.Address, "@") {
			errs = append(errs, fmt.Errorf("sender address %q is not an email address", c.From))
		}
	}
	if c.Password != "" && c.PasswordFile != "" {
		errs = append(errs, errors.New("SMTP password given twice: use either the password or the password file"))
	}
	if (c.Password != "" || c.PasswordFile != "") && c.User == "" {
		errs = append(errs, errors.New("SMTP password given without a user name"))
	}
	if strings.ContainsAny(c.User, "\x00\r\n") || strings.ContainsAny(c.Password, "\x00\r\n") {
		errs = append(errs, errors.New("SMTP user name or password holds a control character"))
	}
	if !validHelloName(c.HelloName) {
		errs = append(errs, fmt.Errorf("EHLO name %q is not a host name", c.HelloName))
	}
	return errors.Join(errs...)
}

// String describes the server without the password.
func (c SMTPConfig) String() string {
	c = c.withDefaults()
	scheme := "smtp"
	if c.Security == ImplicitTLS {
		scheme = "smtps"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port))}
	if c.User != "" {
		u.User = url.User(c.User)
	}
	return u.String()
}

// SMTPMailer sends email through one SMTP server, one session per email. It
// is safe for concurrent use.
type SMTPMailer struct {
	cfg      SMTPConfig
	password string
	from     *netmail.Address
	loopback bool
	secrets  []string // the forms of the password a server could echo, longest first
}

var _ Mailer = (*SMTPMailer)(nil)

// NewSMTPMailer checks cfg and reads its password file.
func NewSMTPMailer(cfg SMTPConfig) (*SMTPMailer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &SMTPMailer{cfg: cfg, password: cfg.Password, loopback: isLoopback(cfg.Host)}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("SMTP password file: %w", err)
		}
		m.password = strings.TrimSpace(string(b))
		if strings.ContainsAny(m.password, "\x00\r\n") {
			return nil, errors.New("SMTP password file holds more than one line")
		}
	}
	m.from, _ = netmail.ParseAddress(cfg.From)
	m.secrets = passwordForms(cfg.User, m.password)
	return m, nil
}

// Send delivers m in one SMTP session. It returns an error wrapping
// ErrPermanent when the server refused the sender, a recipient, the message
// or our credentials (a 5xx reply), and ErrInsecure when the session could
// not be protected as configured. Its text never holds the password, not even
// when the server's reply repeats it.
func (s *SMTPMailer) Send(ctx context.Context, m Message) error {
	if len(m.To) == 0 {
		return fmt.Errorf("%w: no recipients", ErrPermanent)
	}
	to := make([]string, 0, len(m.To))
	for _, r := range m.To {
		a, err := netmail.ParseAddress(r)
		if err != nil {
			return fmt.Errorf("%w: recipient %q is not an email address", ErrPermanent, r)
		}
		to = append(to, a.Address)
	}
	data := s.compose(m, time.Now())
	err := s.redact(s.session(ctx, to, data))
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return fmt.Errorf("%w: %s: %w", ErrPermanent, s.cfg.String(), err)
	}
	if err != nil {
		return fmt.Errorf("smtp %s: %w", s.cfg.String(), err)
	}
	return nil
}

func (s *SMTPMailer) session(ctx context.Context, to []string, data []byte) error {
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	d := net.Dialer{Timeout: s.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(s.cfg.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	// A cancelled context ends the session's pending read or write.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	tlsConf := &tls.Config{ServerName: s.cfg.Host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	secure := false
	if s.cfg.Security == ImplicitTLS {
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		conn, secure = tc, true
	}
	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(s.cfg.HelloName); err != nil {
		return err
	}
	if !secure {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsConf); err != nil {
				return err
			}
			secure = true
		} else if !s.loopback && !s.cfg.AllowInsecure {
			return fmt.Errorf("%w: the server offers no STARTTLS; use smtps:// (port 465), or allow insecure SMTP", ErrInsecure)
		}
	}
	if s.cfg.User != "" {
		if !secure && !s.loopback {
			return fmt.Errorf("%w: the password would be sent in clear text to a host that is not loopback", ErrInsecure)
		}
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("the server offers no authentication (AUTH), but a user name is configured")
		}
		if err := c.Auth(plainAuth{user: s.cfg.User, password: s.password}); err != nil {
			return err
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// redactedError is a session error whose text had the password taken out.
// It unwraps to the original, whose server reply is redacted in place.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact takes the password out of err: a server's reply may repeat what
// it was sent, the AUTH PLAIN exchange included, and the error ends up in
// logs.
func (s *SMTPMailer) redact(err error) error {
	if err == nil || len(s.secrets) == 0 {
		return err
	}
	scrub := func(text string) string {
		for _, f := range s.secrets {
			text = strings.ReplaceAll(text, f, "[REDACTED]")
		}
		return text
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		te.Msg = scrub(te.Msg)
	}
	if msg := scrub(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

// passwordForms are the password and the encodings in which a server might
// echo it: base64 of it and of the AUTH PLAIN response, percent-encoded.
func passwordForms(user, password string) []string {
	if password == "" {
		return nil
	}
	forms := []string{password, url.QueryEscape(password), url.PathEscape(password)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		forms = append(forms,
			enc.EncodeToString([]byte(password)),
			enc.EncodeToString([]byte("\x00"+user+"\x00"+password)))
	}
	slices.SortFunc(forms, func(a, b string) int { return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b)) })
	return slices.Compact(forms)
}

// compose renders m as an RFC 5322 message in quoted-printable UTF-8.
func (s *SMTPMailer) compose(m Message, now time.Time) []byte {
	var b bytes.Buffer
	h := func(k, v string) { b.WriteString(k + ": " + oneLine(v) + "\r\n") }
	h("From", s.from.String())
	h("To", strings.Join(m.To, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	h("Date", now.Format(time.RFC1123Z))
	domain := "ezssh-forwarder.invalid"
	if _, d, ok := strings.Cut(s.from.Address, "@"); ok && d != "" {
		domain = d
	}
	id := m.ID
	if id == "" {
		id = randomID()
	}
	h("Message-ID", "<"+strings.Map(msgIDRune, id)+"@"+domain+">")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	h("Auto-Submitted", "auto-generated")
	h("X-Auto-Response-Suppress", "All")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(m.Body))
	_ = qp.Close()
	return b.Bytes()
}

func msgIDRune(r rune) rune {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(".-_+=", r):
		return r
	}
	return '-'
}

// plainAuth is SASL PLAIN. The caller checks the session is protected (or on
// loopback) before using it; net/smtp's own PlainAuth knows only
// "localhost" and two addresses as loopback.
type plainAuth struct{ user, password string }

func (a plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.password), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected challenge from the server during AUTH PLAIN")
	}
	return nil, nil
}

// isLoopback reports whether host names this machine: localhost, 127.0.0.0/8
// or ::1.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}

func validHelloName(s string) bool {
	return s != "" && len(s) <= 255 && !strings.ContainsAny(s, " \t\r\n<>@")
}
