// Package smtptest runs a real SMTP server in the test process, on loopback,
// and keeps what it receives, so that tests of admin email exercise a real
// SMTP session (STARTTLS, implicit TLS, AUTH PLAIN) rather than a mock.
package smtptest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a Server. The zero value accepts any mail over plain
// SMTP without authentication.
type Options struct {
	// TLS, when set, makes the server offer STARTTLS with this config, or
	// speak TLS from the start when Implicit is set. testpki's
	// CA.ServerTLS makes one for 127.0.0.1.
	TLS      *tls.Config
	Implicit bool
	// User and Password, when set, are required (AUTH PLAIN) before MAIL.
	User, Password string
	// Reject, when set, is asked about every recipient; an error it returns
	// is the server's reply (use *smtp.SMTPError for a specific code).
	Reject func(rcpt string) error
}

// Message is one email the server accepted.
type Message struct {
	From    string
	To      []string
	Raw     []byte
	Header  mail.Header
	Subject string    // decoded
	Body    string    // decoded from quoted-printable when so encoded
	TLS     bool      // the session was encrypted
	User    string    // who authenticated, if anyone
	At      time.Time // when the server accepted it
}

// Server is a running SMTP server. Its methods are safe for concurrent use.
type Server struct {
	Host string
	Port int

	srv  *smtp.Server
	opts Options

	mu   sync.Mutex
	msgs []Message
	cond chan struct{} // closed and replaced on every new message
}

// Start starts a server on a random loopback port; it stops when the test
// ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{opts: opts, cond: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, tlsOn := c.TLSConnectionState()
		return &session{s: s, tls: tlsOn, conn: c}, nil
	}))
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	s.srv.MaxMessageBytes = 1 << 20
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	var ln net.Listener
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.TLS != nil {
		if opts.Implicit {
			ln = tls.NewListener(ln, opts.TLS)
		} else {
			s.srv.TLSConfig = opts.TLS
		}
	}
	addr := ln.Addr().(*net.TCPAddr)
	s.Host, s.Port = "127.0.0.1", addr.Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = s.srv.Close()
		_ = ln.Close() // in case Close ran before Serve registered it
		<-done
	})
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Messages returns a copy of what the server accepted, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Changed returns a channel closed when the next message arrives.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cond
}

func (s *Server) add(m Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.cond)
	s.cond = make(chan struct{})
	s.mu.Unlock()
}

type session struct {
	s    *Server
	conn *smtp.Conn
	tls  bool
	user string
	from string
	to   []string
}

func (x *session) secure() bool {
	if x.tls {
		return true
	}
	_, ok := x.conn.TLSConnectionState()
	return ok
}

func (x *session) AuthMechanisms() []string {
	if x.s.opts.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (x *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != x.s.opts.User || pass != x.s.opts.Password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication failed"}
		}
		x.user = user
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.opts.User != "" && x.user == "" {
		return smtp.ErrAuthRequired
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if x.s.opts.Reject != nil {
		if err := x.s.opts.Reject(to); err != nil {
			return err
		}
	}
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: x.from, To: x.to, Raw: raw, TLS: x.secure(), User: x.user, At: time.Now()}
	if pm, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		m.Header = pm.Header
		m.Subject, _ = new(mime.WordDecoder).DecodeHeader(pm.Header.Get("Subject"))
		var body io.Reader = pm.Body
		if strings.EqualFold(pm.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(pm.Body)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			return errors.New("smtptest: body does not decode")
		}
		m.Body = strings.ReplaceAll(string(b), "\r\n", "\n")
	}
	x.s.add(m)
	return nil
}

func (x *session) Reset() { x.from, x.to = "", nil }

func (x *session) Logout() error { return nil }
