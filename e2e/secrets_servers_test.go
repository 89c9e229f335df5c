package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/notify/smtptest"
)

// hecMode is how a leakyHEC answers.
type hecMode int32

const (
	hecAccept   hecMode = iota // as Splunk does, refusing poison events
	hecBadToken                // refuses the token, echoing it
	hec503                     // busy, Retry-After: 1
	hecHang                    // never answers
	hecModes
)

// leakyHEC is a HEC collector that requires token and, depending on its
// mode, fails the ways real HECs do, echoing the token back where some of
// them do. Poison events are refused in every mode that reads events: those
// marked poisonNumbered with Splunk's invalid-event-number, those marked
// poisonEcho with a text that holds the token.
type leakyHEC struct {
	srv       *httptest.Server
	col       *huntress.Collector
	token     string
	badStatus int // 401: a plain-text echo of the Authorization header; 403: JSON code 4 with the token
	mode      atomic.Int32
	release   chan struct{} // closed when the test ends, to end hanging requests

	authorized atomic.Int64           // requests that carried the token
	replies    [hecModes]atomic.Int64 // requests answered in each mode
	hangsEnded atomic.Int64           // hanging requests the client gave up on

	mu   sync.Mutex
	seen map[string]bool // EventIds accepted
}

func startLeakyHEC(t *testing.T, token string, badStatus int) *leakyHEC {
	t.Helper()
	h := &leakyHEC{token: token, badStatus: badStatus, release: make(chan struct{}), seen: map[string]bool{}}
	h.col = huntress.NewCollector(huntress.CollectorOptions{
		Token:       token,
		Keep:        -1,
		OnEvent:     h.record,
		RejectEvent: func(b []byte) bool { return bytes.Contains(b, []byte(poisonNumbered)) },
		Fail: func(_ *http.Request, events [][]byte) (int, string, bool) {
			for _, e := range events {
				if bytes.Contains(e, []byte(poisonEcho)) {
					return http.StatusBadRequest, `{"text":"Invalid data format in a request with token ` + token + `","code":6}`, true
				}
			}
			return 0, "", false
		},
	})
	h.srv = httptest.NewServer(h)
	t.Cleanup(h.srv.Close)
	t.Cleanup(func() { close(h.release) }) // before Close, which waits for the requests
	return h
}

func (h *leakyHEC) url() string { return h.srv.URL + "/services/collector" }

func (h *leakyHEC) setMode(m hecMode) { h.mode.Store(int32(m)) }

// served is the number of requests answered in mode m.
func (h *leakyHEC) served(m hecMode) int64 { return h.replies[m].Load() }

func (h *leakyHEC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == huntress.SchemeSplunk+" "+h.token {
		h.authorized.Add(1)
	}
	m := hecMode(h.mode.Load())
	h.replies[m].Add(1)
	switch m {
	case hecBadToken:
		if h.badStatus == http.StatusUnauthorized {
			// As the OpenTelemetry Collector's HEC receiver does.
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, "Unauthorized: invalid Authorization header: "+r.Header.Get("Authorization"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(h.badStatus)
		fmt.Fprintf(w, `{"text":"Invalid token %s (%s)","code":4}`, h.token, base64.StdEncoding.EncodeToString([]byte(h.token)))
	case hec503:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"text":"Server is busy","code":9}`)
	case hecHang:
		select {
		case <-r.Context().Done():
			h.hangsEnded.Add(1)
		case <-h.release:
		}
	default:
		h.col.ServeHTTP(w, r)
	}
}

func (h *leakyHEC) record(body []byte, _ time.Time) {
	f, err := audit.Inspect(body)
	if err != nil {
		return
	}
	h.mu.Lock()
	h.seen[f.EventId] = true
	h.mu.Unlock()
}

// delivered reports whether every one of ids was accepted.
func (h *leakyHEC) delivered(ids []string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if !h.seen[id] {
			return false
		}
	}
	return true
}

// smtpMode is what the mail server behind an smtpFront does.
type smtpMode int32

const (
	smtpHostile smtpMode = iota // refuses AUTH echoing it: first 454, then 535
	smtpReject                  // takes the password, refuses every recipient (550)
	smtpAccept                  // takes the password and the email
)

// smtpFront is one SMTP address whose server changes with its mode: a
// hostile one written here, or one of two smtptest servers behind a proxy.
// The hostile server echoes the client's AUTH line, and the credentials it
// decodes from it, in its refusals.
type smtpFront struct {
	ln             net.Listener
	mode           atomic.Int32
	reject, accept *smtptest.Server
	auths          atomic.Int32 // AUTH commands the hostile server refused
	rejected       atomic.Int32 // recipients the rejecting server refused

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

func startSMTPFront(t *testing.T) *smtpFront {
	t.Helper()
	f := &smtpFront{conns: map[net.Conn]bool{}}
	f.reject = smtptest.Start(t, smtptest.Options{User: leakSMTPUser, Password: leakSMTPPass, Reject: func(string) error {
		f.rejected.Add(1)
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"}
	}})
	f.accept = smtptest.Start(t, smtptest.Options{User: leakSMTPUser, Password: leakSMTPPass})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.wg.Go(f.serve)
	t.Cleanup(f.close) // before the smtptest servers stop
	return f
}

func (f *smtpFront) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *smtpFront) setMode(m smtpMode) { f.mode.Store(int32(m)) }

// subjects is the number of accepted emails whose subject holds s.
func (f *smtpFront) subjects(s string) int {
	n := 0
	for _, m := range f.accept.Messages() {
		if strings.Contains(m.Subject, s) {
			n++
		}
	}
	return n
}

func (f *smtpFront) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			return
		}
		f.wg.Go(func() {
			defer f.untrack(c)
			switch smtpMode(f.mode.Load()) {
			case smtpHostile:
				f.hostile(c)
			case smtpReject:
				f.proxy(c, f.reject.Addr())
			default:
				f.proxy(c, f.accept.Addr())
			}
		})
	}
}

// track records an open connection, or closes it and reports false once the
// front is closed.
func (f *smtpFront) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = true
	return true
}

func (f *smtpFront) untrack(c net.Conn) {
	c.Close()
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

func (f *smtpFront) close() {
	f.ln.Close()
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *smtpFront) proxy(c net.Conn, addr string) {
	b, err := net.Dial("tcp", addr)
	if err != nil || !f.track(b) {
		return
	}
	defer f.untrack(b)
	f.wg.Go(func() {
		io.Copy(b, c)
		b.Close()
	})
	io.Copy(c, b)
	c.Close()
}

// hostile speaks just enough SMTP for a client to try AUTH PLAIN, and
// refuses it with a reply that repeats the client's line and the
// credentials in it: temporarily the first time, for good after.
func (f *smtpFront) hostile(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	say := func(s string) { io.WriteString(c, s+"\r\n") }
	say("220 mail.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			say("250-mail.test\r\n250 AUTH PLAIN")
		case "HELO":
			say("250 mail.test")
		case "AUTH":
			_, resp, _ := strings.Cut(arg, " ")
			creds, _ := base64.StdEncoding.DecodeString(resp)
			echo := line + " (" + strings.ReplaceAll(string(creds), "\x00", " ") + ")"
			if f.auths.Add(1) == 1 {
				say("454 4.7.0 Temporary authentication failure: " + echo)
			} else {
				say("535 5.7.8 Authentication credentials invalid: " + echo)
			}
		case "*":
			say("501 5.7.0 Authentication cancelled")
		case "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			say("502 5.5.2 Command not recognized")
		}
	}
}
