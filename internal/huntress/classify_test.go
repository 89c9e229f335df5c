package huntress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// expectedStatusClass is the class of every status 100–599 with no HEC code,
// written out from DESIGN.md's rules rather than from the implementation.
func expectedStatusClass(status int) delivery.Class {
	retry := map[int]bool{408: true, 425: true, 429: true}
	misconfigured := map[int]bool{401: true, 403: true, 404: true}
	rejected := map[int]bool{400: true, 422: true}
	switch {
	case status >= 200 && status <= 299:
		return 0
	case status >= 100 && status <= 199, status >= 500 && status <= 599, retry[status]:
		return delivery.Retry
	case status == 413:
		return delivery.TooLarge
	case rejected[status]:
		return delivery.Rejected
	case misconfigured[status], status >= 300 && status <= 499:
		// Every other 3xx (a redirect away from the HEC) and 4xx (405, 415,
		// 411, …: a request shape no retry or bisection fixes).
		return delivery.Misconfigured
	}
	panic(status)
}

func TestClassifyEveryStatus(t *testing.T) {
	for status := 100; status <= 599; status++ {
		want := expectedStatusClass(status)
		if got := classify(status, 0, false); got != want {
			t.Errorf("classify(%d, no code) = %v, want %v", status, got, want)
		}
		// A code only refines a 400.
		if status != 400 {
			for code := 0; code <= 27; code++ {
				if got := classify(status, code, true); got != want {
					t.Errorf("classify(%d, code %d) = %v, want %v (the status decides)", status, code, got, want)
				}
			}
		}
	}
	for _, status := range []int{0, 99, 600, 999} {
		if got := classify(status, 0, false); got != delivery.Retry {
			t.Errorf("classify(%d) = %v, want retry", status, got)
		}
	}
}

func TestClassifyEveryCodeOn400(t *testing.T) {
	want := map[int]delivery.Class{}
	for _, c := range []int{1, 2, 3, 4, 7, 10, 11, 14, 16, 21, 22} {
		want[c] = delivery.Misconfigured // token, auth, index, channel/ack settings
	}
	for _, c := range []int{5, 6, 12, 13, 15} {
		want[c] = delivery.Rejected // the events
	}
	for _, c := range []int{8, 9, 18, 19, 20, 23, 26, 27} {
		want[c] = delivery.Retry // the HEC is unwell
	}
	for _, c := range []int{0, 17, 24, 25, 28, 99, -1} {
		want[c] = delivery.Rejected // contradictory or unknown: let bisection decide
	}
	for code := -1; code <= 99; code++ {
		w, ok := want[code]
		if !ok {
			if code <= 27 {
				t.Fatalf("test table misses code %d", code)
			}
			w = delivery.Rejected
		}
		if got := classify(400, code, true); got != w {
			t.Errorf("classify(400, code %d) = %v, want %v", code, got, w)
		}
		if got := classify(400, code, false); got != delivery.Rejected {
			t.Errorf("classify(400, code %d without hasCode) = %v, want rejected", code, got)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"600", 10 * time.Minute},
		{"601", 10 * time.Minute},
		{"99999999999999999999", 0}, // overflows int64: unreadable
		{"86400", 10 * time.Minute},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(time.Hour).Format(http.TimeFormat), 10 * time.Minute},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(30 * time.Second).Format(time.RFC850), 30 * time.Second},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestClassifyNetErr(t *testing.T) {
	wrap := func(err error) error { return &url.Error{Op: "Post", URL: "https://hec", Err: err} }
	for _, tc := range []struct {
		name string
		err  error
		want delivery.Class
	}{
		{"unknown CA", wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), delivery.Misconfigured},
		{"bare unknown CA", wrap(x509.UnknownAuthorityError{}), delivery.Misconfigured},
		{"expired", wrap(x509.CertificateInvalidError{Reason: x509.Expired}), delivery.Misconfigured},
		{"hostname", wrap(x509.HostnameError{Host: "x"}), delivery.Misconfigured},
		{"not TLS", wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), delivery.Misconfigured},
		{"alert", wrap(tls.AlertError(42)), delivery.Misconfigured},
		{"http to https", wrap(http.ErrSchemeMismatch), delivery.Misconfigured},
		{"refused", wrap(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), delivery.Retry},
		{"reset", wrap(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), delivery.Retry},
		{"dns not found", wrap(&net.OpError{Op: "dial", Err: &net.DNSError{Name: "nope", IsNotFound: true}}), delivery.Retry},
		{"deadline", wrap(context.DeadlineExceeded), delivery.Retry},
		{"canceled", wrap(context.Canceled), delivery.Retry},
		{"eof", wrap(errors.New("EOF")), delivery.Retry},
	} {
		if got := classifyNetErr(tc.err); got != tc.want {
			t.Errorf("%s: classifyNetErr = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !isTimeout(wrap(fmt.Errorf("x: %w", context.DeadlineExceeded))) {
		t.Error("isTimeout(deadline) = false")
	}
}
