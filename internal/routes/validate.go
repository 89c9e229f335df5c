package routes

import (
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"

	"github.com/ezssh/siem-forwarder/internal/huntress"
)

// Bounds on route settings, so that a bad value cannot take unbounded memory.
const (
	maxURLLen    = 2048
	maxTokenLen  = 4096
	maxEmails    = 50
	maxEmailLen  = 320
	maxValueSize = 64 << 10 // the bucket's max value size
)

// fieldError is one problem with one field of a route.
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }
func (e *fieldError) Unwrap() error { return ErrInvalid }

func bad(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// checkURL validates a HEC URL. It never repeats the URL's user info or query,
// which could hold a secret.
func checkURL(field, raw string, allowInsecure bool) error {
	if raw == "" {
		return bad(field, "is empty: set it to the HEC URL of the Huntress Generic HEC source (e.g. https://hec.huntress.io/services/collector)")
	}
	if len(raw) > maxURLLen {
		return bad(field, "is longer than %d bytes", maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad(field, "is not a URL: use the form https://hec.huntress.io/services/collector")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return bad(field, "must start with https:// (or http:// for a local collector)")
	case u.Hostname() == "":
		return bad(field, "has no host: use the form https://hec.huntress.io/services/collector")
	case u.User != nil:
		return bad(field, "contains user:password@: remove it; the token goes in hec_token")
	case u.Fragment != "":
		return bad(field, "contains a #fragment: remove it")
	case u.Scheme == "http" && !allowInsecure && !isLoopback(u.Hostname()):
		return bad(field, "http://%s would send the token in clear text to a host that is not loopback: use https://, or set allow_insecure_http (--allow-insecure-http)", u.Host)
	}
	return nil
}

// isLoopback reports whether host names this machine: localhost,
// 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// checkToken validates a plain or sealed token without repeating it.
func checkToken(field, token string) error {
	switch {
	case token == "":
		return bad(field, "is empty: copy the HTTP Event Collector Token from Huntress → SIEM → Source Management → your Generic HEC source")
	case len(token) > maxTokenLen:
		return bad(field, "is longer than %d bytes", maxTokenLen)
	case IsSealed(token):
		if err := checkSealed(token); err != nil {
			return bad(field, "%v", err)
		}
	case strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return bad(field, "contains spaces or control characters (a trailing newline from a file?): remove them")
	}
	return nil
}

// checkScheme validates an Authorization scheme; empty means Splunk.
func checkScheme(field, scheme string) error {
	switch strings.ToLower(scheme) {
	case "", "splunk", "bearer":
		return nil
	}
	return bad(field, "%q is not supported: use %q (the default) or %q", scheme, huntress.SchemeSplunk, huntress.SchemeBearer)
}

// normScheme returns the canonical spelling of a valid scheme.
func normScheme(scheme string) string {
	if strings.EqualFold(scheme, huntress.SchemeBearer) {
		return huntress.SchemeBearer
	}
	return huntress.SchemeSplunk
}

// checkEmails validates administrator addresses with net/mail. A bare address
// (admin@example.com) and a named one (Ada <admin@example.com>) are accepted.
func checkEmails(field string, emails []string) error {
	if len(emails) > maxEmails {
		return bad(field, "has %d addresses; at most %d are allowed", len(emails), maxEmails)
	}
	seen := make(map[string]bool, len(emails))
	for i, e := range emails {
		if len(e) > maxEmailLen {
			return bad(field, "address #%d is longer than %d bytes", i+1, maxEmailLen)
		}
		a, err := mail.ParseAddress(e)
		if err != nil || strings.TrimSpace(e) != e {
			return bad(field, "%q is not an email address (want admin@example.com)", e)
		}
		key := strings.ToLower(a.Address)
		if seen[key] {
			return bad(field, "%q is listed twice", a.Address)
		}
		seen[key] = true
	}
	return nil
}

// checkProvider validates a provider; empty means huntress.
func checkProvider(field, p string) error {
	if p == "" || p == ProviderHuntress {
		return nil
	}
	return bad(field, "%q is not supported: use %q", p, ProviderHuntress)
}

// problems is several errors shown on one line, separated by "; ", so that a
// log line or a CLI message stays one line.
type problems []error

func (p problems) Error() string {
	s := make([]string, len(p))
	for i, e := range p {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

func (p problems) Unwrap() []error { return p }

// join returns nil, the one error, or problems of the non-nil errs; nested
// problems are flattened.
func join(errs ...error) error {
	var p problems
	for _, e := range errs {
		if nested, ok := e.(problems); ok {
			p = append(p, nested...)
		} else if e != nil {
			p = append(p, e)
		}
	}
	switch len(p) {
	case 0:
		return nil
	case 1:
		return p[0]
	}
	return p
}

// prefix returns err with where in front of each of its problems.
func prefix(where string, err error) error {
	if p, ok := err.(problems); ok {
		out := make(problems, len(p))
		for i, e := range p {
			out[i] = fmt.Errorf("%s: %w", where, e)
		}
		return out
	}
	return fmt.Errorf("%s: %w", where, err)
}
