package huntress

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// Problems a Diagnosis can name.
const (
	ProblemNone          = ""
	ProblemConfig        = "config"
	ProblemWrongToken    = "wrong-token"
	ProblemTokenDisabled = "token-disabled"
	ProblemWrongURL      = "wrong-url"
	ProblemTLS           = "tls"
	ProblemUnreachable   = "unreachable"
	ProblemTimeout       = "timeout"
	ProblemRejected      = "rejected"
	ProblemServerError   = "server-error"
)

// Diagnosis is the outcome of TestConnection, for a person to read. It never
// holds the token.
type Diagnosis struct {
	// OK is true when the HEC accepted the test event.
	OK bool
	// Scheme is the Authorization scheme the HEC accepted ("Splunk" or
	// "Bearer"); empty when it accepted none.
	Scheme string
	// Problem names what is wrong: one of the Problem constants; empty when
	// OK.
	Problem string
	// Message says what happened and what to do, in a sentence.
	Message string
	// Status is the HTTP status of the last reply, 0 when none arrived.
	Status int
	// Latency is the duration of the last request.
	Latency time.Duration
}

const huntressSource = "Huntress → SIEM → Source Management → your Generic HEC source"

// TestConnection sends one test event (ActionPerformed "Test Connection") to
// the destination of cfg and says whether it arrived and, if not, why. When
// the HEC refuses the token (401/403) with cfg's scheme, it tries the other
// scheme, to tell which one the HEC accepts. It never returns the token.
func TestConnection(ctx context.Context, cfg Config) Diagnosis {
	resolved, err := cfg.resolve()
	if err != nil {
		problem := ProblemConfig
		if errors.Is(err, ErrInsecureURL) {
			problem = ProblemWrongURL
		}
		return Diagnosis{Problem: problem, Message: err.Error()}
	}
	d := try(ctx, resolved)
	if d.Problem != ProblemWrongToken && d.Problem != ProblemTokenDisabled {
		return d
	}
	other := resolved
	other.AuthScheme = SchemeBearer
	if resolved.AuthScheme == SchemeBearer {
		other.AuthScheme = SchemeSplunk
	}
	if d2 := try(ctx, other); d2.OK {
		d2.Message = fmt.Sprintf("The test event arrived, but the HEC accepts the token only with the %s authorization scheme: set the scheme to %s.",
			other.AuthScheme, other.AuthScheme)
		return d2
	}
	return d
}

// try sends the test event with cfg (already resolved) and diagnoses the
// outcome.
func try(ctx context.Context, cfg Config) Diagnosis {
	c, err := New(cfg)
	if err != nil {
		return Diagnosis{Problem: ProblemConfig, Message: err.Error()}
	}
	defer c.CloseIdleConnections()
	now := time.Now()
	start := time.Now()
	err = c.Send(ctx, []delivery.Event{{Time: now, Body: testEvent(now)}})
	d := Diagnosis{Latency: time.Since(start)}
	if err == nil {
		d.OK, d.Scheme = true, cfg.AuthScheme
		d.Message = fmt.Sprintf("The test event arrived at %s in %s; look for ActionPerformed \"Test Connection\" in Huntress.",
			c.Host(), roundLatency(d.Latency))
		return d
	}
	var e *Error
	if !errors.As(err, &e) { // Send returns only *Error
		d.Problem, d.Message = ProblemUnreachable, err.Error()
		return d
	}
	d.Status = e.Status
	d.Problem, d.Message = diagnose(e, c)
	return d
}

// diagnose turns a failed test send into a problem and a sentence.
func diagnose(e *Error, c *Client) (problem, message string) {
	url := c.URL()
	if e.Status == 0 {
		var dns *net.DNSError
		switch {
		case errors.Is(e.Err, http.ErrSchemeMismatch):
			return ProblemTLS, fmt.Sprintf("%s answered plain HTTP to an https:// URL. Use the HEC's TLS port, or http:// for a local collector.", c.Host())
		case isTLSErr(e.Err):
			advice := "The HEC's certificate must be valid for that name and issued by a CA this machine trusts; for a private CA, give the forwarder its CA bundle with --hec-ca-file (HUNTRESS_HEC_CA_FILE)"
			if a := tlsAdvice(e.Err); a != "" {
				advice = strings.ToUpper(a[:1]) + a[1:]
			}
			return ProblemTLS, fmt.Sprintf("The TLS handshake with %s failed (%s). %s.", c.Host(), e.scrub.scrub(rootCause(e.Err).Error()), advice)
		case isTimeout(e.Err):
			return ProblemTimeout, fmt.Sprintf("%s did not answer in time. Check the network path (firewall, proxy) to it, then try again.", c.Host())
		case errors.As(e.Err, &dns) && dns.IsNotFound:
			return ProblemUnreachable, fmt.Sprintf("The host name %s does not exist (DNS). Check the HEC URL for typos; Huntress uses https://hec.huntress.io/services/collector.", dns.Name)
		default:
			return ProblemUnreachable, fmt.Sprintf("Could not reach %s (%s). Check the HEC URL and that this machine can connect to it (firewall, proxy).", c.Host(), e.scrub.scrub(rootCause(e.Err).Error()))
		}
	}
	switch {
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden ||
		(e.Status == http.StatusBadRequest && e.HasCode && isAuthCode(e.Code)):
		if e.HasCode && (e.Code == codeTokenDisabled || e.Code == codeHealthTokenOff) {
			return ProblemTokenDisabled, fmt.Sprintf("The HEC knows the token but it is disabled (%d). Enable the source in %s, or create a new one and copy its token.", e.Status, huntressSource)
		}
		return ProblemWrongToken, fmt.Sprintf("The HEC refused the token (%d) with both the Splunk and the Bearer scheme. Copy the HTTP Event Collector Token again from %s.", e.Status, huntressSource)
	case e.Status == http.StatusNotFound || e.Status == http.StatusMethodNotAllowed || (e.Status >= 300 && e.Status < 400):
		return ProblemWrongURL, fmt.Sprintf("There is no HEC at %s (%d). Copy the HEC URL again from %s; for Huntress it is https://hec.huntress.io/services/collector.", url, e.Status, huntressSource)
	case e.Class == delivery.Retry:
		return ProblemServerError, fmt.Sprintf("The HEC at %s answered %d%s: it is unwell or busy, not misconfigured. Try again later; events are held until it recovers.", c.Host(), e.Status, replyText(e))
	case e.HasCode && e.Code == codeIncorrectIndex:
		return ProblemRejected, fmt.Sprintf("The HEC refused the index (%d code 7, \"Incorrect index\"). Clear the index setting, or use one the token is allowed to write to.", e.Status)
	case e.HasCode && (e.Code == codeChannelMissing || e.Code == codeInvalidChannel || e.Code == codeAckDisabled):
		return ProblemRejected, fmt.Sprintf("The HEC asks for a data channel (%d code %d): indexer acknowledgement is on for this token. Turn acknowledgement off for the token.", e.Status, e.Code)
	default:
		return ProblemRejected, fmt.Sprintf("The HEC at %s refused the test event (%d%s). Check that the URL is the HEC event endpoint and that the source accepts JSON events.", c.Host(), e.Status, replyText(e))
	}
}

// roundLatency keeps two or three significant digits.
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Microsecond:
		return d.Round(10 * time.Microsecond)
	}
	return d
}

func isAuthCode(code int) bool {
	switch code {
	case codeTokenDisabled, codeTokenRequired, codeInvalidAuth, codeInvalidToken,
		codeHealthInvalidToken, codeHealthTokenOff, codeQueryAuthDisabled:
		return true
	}
	return false
}

// replyText is ", "<text>"" for a reply with a text, for messages.
func replyText(e *Error) string {
	switch {
	case e.Text != "":
		return fmt.Sprintf(", %q", e.Text)
	case e.Excerpt != "":
		return fmt.Sprintf(", %q", e.Excerpt)
	}
	return ""
}

// rootCause strips the url.Error and net.OpError layers, whose text repeats
// the URL and addresses the message already names.
func rootCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// testEvent is the body of the Test Connection event.
func testEvent(now time.Time) []byte {
	b, _ := json.Marshal(struct {
		EventType             string
		ActionPerformed       string
		RequestDate           string
		EventID               string `json:"EventId"`
		SubscriptionID        string `json:"SubscriptionId"`
		RequestorFriendlyName string
	}{
		EventType:             "EZSSH_SSH",
		ActionPerformed:       "Test Connection",
		RequestDate:           now.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		EventID:               uuidV7(now),
		SubscriptionID:        "test",
		RequestorFriendlyName: "EZSSH forwarder test-connection",
	})
	return b
}

// uuidV7 returns a random RFC 9562 version 7 UUID for now.
func uuidV7(now time.Time) string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(u[:6], ms[2:])
	u[6] = u[6]&0x0f | 0x70
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}
