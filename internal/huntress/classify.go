package huntress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// success is the class of a delivered request; delivery.Class starts at 1.
const success delivery.Class = 0

// statusClasses lists the statuses whose class differs from their range's
// default (rangeClass). The HEC code matters only for 400, the one status
// real HECs use both for a bad event and for a bad setting.
var statusClasses = map[int]delivery.Class{
	http.StatusUnauthorized:          delivery.Misconfigured, // wrong or missing token
	http.StatusForbidden:             delivery.Misconfigured, // token unknown or disabled
	http.StatusNotFound:              delivery.Misconfigured, // wrong URL
	http.StatusRequestTimeout:        delivery.Retry,
	http.StatusRequestEntityTooLarge: delivery.TooLarge, // split the batch
	http.StatusUnprocessableEntity:   delivery.Rejected, // the content, not the setting
	http.StatusTooEarly:              delivery.Retry,
	http.StatusTooManyRequests:       delivery.Retry,
}

// rangeClass is the class of a status that neither statusClasses nor the 400
// rules name.
func rangeClass(status int) delivery.Class {
	switch {
	case status >= 200 && status < 300:
		return success
	case status >= 300 && status < 400:
		// A redirect: the URL points somewhere else. Redirects are not
		// followed (a POST body and a token should not wander).
		return delivery.Misconfigured
	case status >= 400 && status < 500:
		// 405, 415, 411, 426 …: the request shape or the endpoint is wrong,
		// which no retry and no bisection fixes.
		return delivery.Misconfigured
	default:
		// 5xx, a stray 1xx, or a status outside the standard ranges: the
		// server or something in front of it is unwell; retrying is safe.
		return delivery.Retry
	}
}

// HEC codes, from Splunk's "Troubleshoot HTTP Event Collector" (Splunk
// Enterprise Getting Data In manual, help.splunk.com …/collect-http-event-data/
// troubleshoot-http-event-collector), cross-checked against the same table
// reproduced in several HEC-compatible receivers and Splunk's SplunkAdmins app
// (splunkadmins_hec_reply_code_lookup.csv):
//
//	code HTTP text
//	 0   200  Success
//	 1   403  Token disabled
//	 2   401  Token is required
//	 3   401  Invalid authorization
//	 4   403  Invalid token
//	 5   400  No data
//	 6   400  Invalid data format
//	 7   400  Incorrect index
//	 8   500  Internal server error
//	 9   503  Server is busy
//	10   400  Data channel is missing
//	11   400  Invalid data channel
//	12   400  Event field is required
//	13   400  Event field cannot be blank
//	14   400  ACK is disabled
//	15   400  Error in handling indexed fields
//	16   400  Query string authorization is not enabled
//	17   200  HEC is healthy
//	18   503  HEC is unhealthy, queues are full
//	19   503  HEC is unhealthy, ack service unavailable
//	20   503  HEC is unhealthy, queues are full, ack service unavailable
//	21   400  Invalid token            (health endpoint)
//	22   400  Token disabled           (health endpoint)
//	23   503  Server is shutting down
//	24   200  HEC queue is approaching its capacity limit
//	25   200  HEC ACK is approaching its capacity limit
//	26   429  HEC queue is at capacity and cannot process any more requests
//	27   429  HEC ACK channel is at capacity and cannot process any more requests
//
// Code names, for the table below and for TestConnection.
const (
	codeSuccess            = 0
	codeTokenDisabled      = 1
	codeTokenRequired      = 2
	codeInvalidAuth        = 3
	codeInvalidToken       = 4
	codeNoData             = 5
	codeInvalidDataFormat  = 6
	codeIncorrectIndex     = 7
	codeInternalError      = 8
	codeServerBusy         = 9
	codeChannelMissing     = 10
	codeInvalidChannel     = 11
	codeEventRequired      = 12
	codeEventBlank         = 13
	codeAckDisabled        = 14
	codeIndexedFields      = 15
	codeQueryAuthDisabled  = 16
	codeHealthy            = 17
	codeQueuesFull         = 18
	codeAckUnavailable     = 19
	codeQueuesAndAck       = 20
	codeHealthInvalidToken = 21
	codeHealthTokenOff     = 22
	codeShuttingDown       = 23
	codeQueueAtCapacity    = 26
	codeAckAtCapacity      = 27
)

// codeClasses is the class of a 400 reply by its HEC code. A 400 without a
// code, with a code not listed, or with a body that is not JSON is Rejected:
// bisection then finds out whether an event is to blame.
var codeClasses = map[int]delivery.Class{
	// The token or the way it is sent: an admin must fix the route.
	codeTokenDisabled:      delivery.Misconfigured,
	codeTokenRequired:      delivery.Misconfigured,
	codeInvalidAuth:        delivery.Misconfigured,
	codeInvalidToken:       delivery.Misconfigured,
	codeHealthInvalidToken: delivery.Misconfigured,
	codeHealthTokenOff:     delivery.Misconfigured,
	codeQueryAuthDisabled:  delivery.Misconfigured,
	// The configured Index is not allowed for the token.
	codeIncorrectIndex: delivery.Misconfigured,
	// The token has indexer acknowledgement on, which needs a channel this
	// client does not send: turn acknowledgement off for the token.
	codeChannelMissing: delivery.Misconfigured,
	codeInvalidChannel: delivery.Misconfigured,
	codeAckDisabled:    delivery.Misconfigured,
	// The events themselves. (5 "No data" to a non-empty body means the HEC
	// found no event in it; Probe treats 5 to its empty body as healthy.)
	codeNoData:            delivery.Rejected,
	codeInvalidDataFormat: delivery.Rejected,
	codeEventRequired:     delivery.Rejected,
	codeEventBlank:        delivery.Rejected,
	codeIndexedFields:     delivery.Rejected,
	// The HEC is unwell, whatever status it chose to say so with.
	codeInternalError:   delivery.Retry,
	codeServerBusy:      delivery.Retry,
	codeQueuesFull:      delivery.Retry,
	codeAckUnavailable:  delivery.Retry,
	codeQueuesAndAck:    delivery.Retry,
	codeShuttingDown:    delivery.Retry,
	codeQueueAtCapacity: delivery.Retry,
	codeAckAtCapacity:   delivery.Retry,
	// 0, 17, 24 and 25 are success codes: a 400 carrying one is
	// contradictory and falls to the default, Rejected.
}

// classify maps a reply to a class: 0 (success) for 2xx, otherwise the class
// the pipeline acts on. The status decides; the HEC code refines only a 400,
// and only when the body was JSON with a code (hasCode).
func classify(status, code int, hasCode bool) delivery.Class {
	if status == http.StatusBadRequest {
		if c, ok := codeClasses[code]; ok && hasCode {
			return c
		}
		return delivery.Rejected
	}
	if c, ok := statusClasses[status]; ok {
		return c
	}
	return rangeClass(status)
}

// classifyNetErr maps a failure without a reply. Certificate and protocol
// failures need an admin; everything else (refused, reset, timeout, DNS) may
// pass and is retried.
func classifyNetErr(err error) delivery.Class {
	var (
		unknownCA   x509.UnknownAuthorityError
		invalidCert x509.CertificateInvalidError
		hostname    x509.HostnameError
		verify      *tls.CertificateVerificationError
		record      tls.RecordHeaderError
		alert       tls.AlertError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &invalidCert), errors.As(err, &hostname),
		errors.As(err, &verify), errors.As(err, &record), errors.As(err, &alert),
		errors.Is(err, http.ErrSchemeMismatch), refusedCertificate(err) != "":
		return delivery.Misconfigured
	}
	return delivery.Retry
}

// refusedCertificate returns the TLS alert ("tls: certificate required",
// "tls: bad certificate" …) with which the HEC refused our client
// certificate, or its absence, or says that it closed the connection after
// asking for one (certRefusedError); "" for any other error. crypto/tls
// reports an alert from the peer as a *net.OpError "remote error" around an
// unexported type, so the alert is known only by its text.
func refusedCertificate(err error) string {
	var refused *certRefusedError
	if errors.As(err, &refused) {
		return refused.Error()
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return ""
	}
	switch msg := op.Err.Error(); msg {
	case "tls: certificate required", "tls: bad certificate", "tls: unsupported certificate",
		"tls: revoked certificate", "tls: expired certificate", "tls: unknown certificate",
		"tls: unknown certificate authority", "tls: access denied":
		return msg
	}
	return ""
}

// tlsAdvice says what to change after a TLS failure, in a sentence; "" when
// err is not one it can explain.
func tlsAdvice(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknownCA):
		return "the HEC's certificate is not issued by a CA this machine trusts (a self-signed certificate or a private CA): " +
			"give the forwarder the PEM bundle of the CA that issued it with --hec-ca-file (HUNTRESS_HEC_CA_FILE); certificate verification is never switched off"
	case errors.As(err, &hostname):
		return "the HEC's certificate is not valid for " + hostname.Host + ": use a HEC URL with a host name the certificate names"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the HEC's certificate has expired or is not valid yet: the HEC's owner must renew it (or check this machine's clock)"
	case refusedCertificate(err) != "":
		return "the HEC requires a client certificate (mutual TLS) and refused ours or its absence: " +
			"give one it accepts with --hec-cert-file and --hec-key-file (HUNTRESS_HEC_CERT_FILE, HUNTRESS_HEC_KEY_FILE)"
	}
	return ""
}

// isTLSErr reports whether err is a TLS failure (for TestConnection).
func isTLSErr(err error) bool {
	return classifyNetErr(err) == delivery.Misconfigured
}

// isTimeout reports whether err is a timeout of ours or of the network.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// maxRetryAfter caps a Retry-After, so a confused or hostile HEC cannot park
// a route for days.
const maxRetryAfter = 10 * time.Minute

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date,
// relative to now. It returns 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}
