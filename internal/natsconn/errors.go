package natsconn

import (
	"crypto/x509"
	"errors"
	"strings"

	"github.com/nats-io/nats.go"
)

// hint says which setting to look at when a connection failed for a reason the
// operator can fix: refused credentials or a certificate one side does not
// trust. It is "" otherwise. It names files and settings, never their
// content.
func hint(err error, o *Options) string {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	msg := err.Error()
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		errors.Is(err, nats.ErrAccountAuthExpired):
		return "; " + authHint(o)
	case errors.As(err, &unknownCA):
		if o.CA == "" {
			return " (the server's certificate is not signed by a CA this system trusts: set NATS_CA to the CA that signed it)"
		}
		return " (the server's certificate is not signed by a CA in NATS_CA " + o.CA + ")"
	case errors.As(err, &hostname):
		return " (the server's certificate does not name the host of NATS_URL: connect by a name it holds)"
	case strings.Contains(msg, "tls: certificate required"),
		o.Cert == "" && strings.Contains(msg, "closed by remote after TLS handshake"):
		// TLS 1.3 finishes the client's handshake before the server checks
		// the client's certificate: its refusal arrives as an alert or, by
		// timing, as a closed connection.
		return " (the server requires a client certificate: set NATS_CERT and NATS_KEY)"
	case strings.Contains(msg, "tls: bad certificate"), strings.Contains(msg, "tls: unknown certificate authority"),
		strings.Contains(msg, "closed by remote after TLS handshake"):
		return " (the server refused the client certificate in NATS_CERT: it must be signed by a CA the server trusts)"
	}
	return ""
}

// authHint names the credential the server refused.
func authHint(o *Options) string {
	switch {
	case o.Creds != "":
		return "the server refused the user in NATS_CREDS " + o.Creds + ": it must be signed for an account this server trusts, and not expired or revoked"
	case o.NKey != "":
		return "the server knows no user with the nkey in NATS_NKEY " + o.NKey
	case o.User != "":
		return "wrong NATS_USER or password (NATS_PASSWORD, NATS_PASSWORD_FILE), or the user may not connect"
	case o.Cert != "":
		return "the server maps no user to the client certificate in NATS_CERT " + o.Cert
	case strings.Contains(o.URL, "@"):
		return "the server refused the user in NATS_URL"
	}
	return "the server requires credentials: set NATS_CREDS, NATS_NKEY, NATS_USER with NATS_PASSWORD or NATS_PASSWORD_FILE, or NATS_CERT and NATS_KEY"
}
