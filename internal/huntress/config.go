package huntress

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Defaults applied by Config to its zero-valued fields.
const (
	DefaultAuthScheme       = SchemeSplunk
	DefaultSource           = "ezssh"
	DefaultSourceType       = "ezssh:audit"
	DefaultGzipThreshold    = 1024
	DefaultGzipLevel        = gzip.BestSpeed
	DefaultConnectTimeout   = 5 * time.Second
	DefaultTimeout          = 30 * time.Second
	DefaultMaxResponseBytes = 64 << 10
	DefaultUserAgent        = "ezssh-siem-forwarder"
)

// Authorization schemes a HEC may accept in front of the token.
const (
	SchemeSplunk = "Splunk"
	SchemeBearer = "Bearer"
)

// Config says where and how to deliver events to one HEC. Its zero value
// means the documented defaults, except that URL and Token are required.
// A Config is a plain value: copy it freely; it never prints its token.
type Config struct {
	// URL is the HEC endpoint. Accepted forms: the Huntress URL
	// (https://hec.huntress.io/services/collector), the /event endpoint, or a
	// bare base URL. An empty path or "/" becomes /services/collector/event,
	// a path ending in /services/collector gets /event appended, and any
	// other path is used as given. Required.
	URL string
	// Token is the HEC token (Huntress: "HTTP Event Collector Token").
	// Required. It never appears in an error, a String() or a log.
	Token string
	// AuthScheme is the word before the token in the Authorization header:
	// "Splunk" (the default) or "Bearer". Case does not matter.
	AuthScheme string
	// Host is the envelope's "host" field. Default: os.Hostname().
	Host string
	// Source is the envelope's "source" field. Default "ezssh".
	Source string
	// SourceType is the envelope's "sourcetype" field. Default "ezssh:audit".
	SourceType string
	// Index is the envelope's "index" field; omitted when empty so the token's
	// default index applies.
	Index string
	// GzipThreshold is the body size, in bytes, from which a request is sent
	// with Content-Encoding: gzip. Zero means 1024; negative disables gzip.
	GzipThreshold int
	// GzipLevel is the gzip level. Zero means gzip.BestSpeed (1); any level
	// of github.com/klauspost/compress/gzip (-3 … 9) is accepted. To send
	// uncompressed, set GzipThreshold negative.
	GzipLevel int
	// ConnectTimeout bounds the TCP connect and the TLS handshake. Zero means
	// 5s.
	ConnectTimeout time.Duration
	// Timeout bounds a whole request, from connect to the last byte of the
	// reply. Zero means 30s.
	Timeout time.Duration
	// MaxResponseBytes is how much of a reply is read. Zero means 64 KiB.
	MaxResponseBytes int64
	// AllowInsecureHTTP permits an http:// URL to a host that is not
	// loopback. Without it, http:// is accepted only for 127.0.0.0/8, ::1 and
	// localhost.
	AllowInsecureHTTP bool
	// CAFile is a PEM file of the CA certificates that issued the HEC's
	// certificate: a private CA, or the certificate of a self-signed HEC.
	// They are trusted in addition to the system's CAs, so one bundle can
	// serve routes to private and to public HECs alike. Empty: the system's
	// CAs only. Certificate verification cannot be switched off.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate (with any
	// intermediates) and its private key, presented to a HEC that asks for
	// one (mutual TLS); a HEC that does not ask never sees it. Both or
	// neither. The files are read when a Client is created; a file changed
	// on disk takes effect for the clients created after the change.
	CertFile string
	KeyFile  string
	// TLS is an optional TLS configuration, for a caller that builds its own
	// (RootCAs, Certificates) instead of naming files; it must not set what
	// CAFile or CertFile set. It is cloned; InsecureSkipVerify is refused.
	TLS *tls.Config
	// UserAgent is the User-Agent header. Default "ezssh-siem-forwarder".
	UserAgent string
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("huntress: invalid config")

// ErrInsecureURL is wrapped by the Validate error for a plain http:// URL to a
// host that is not loopback.
var ErrInsecureURL = errors.New("huntress: insecure http:// destination")

// String describes the destination without its token.
func (c Config) String() string {
	tok := "unset"
	if c.Token != "" {
		tok = "set"
	}
	return fmt.Sprintf("huntress.Config{URL: %s, Token: %s, AuthScheme: %s}",
		redactURL(c.URL, c.Token), tok, c.AuthScheme)
}

// GoString keeps %#v from printing the token.
func (c Config) GoString() string { return c.String() }

// Validate reports every problem of c in one error wrapping ErrInvalidConfig
// (and ErrInsecureURL for a non-loopback http:// URL). Each message says what
// to change. It reads CAFile, CertFile and KeyFile, so that a missing or
// malformed file is reported before the first request.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

// ValidateTLS reports the problems of CAFile, CertFile, KeyFile and TLS
// alone, reading the files, for a caller that checks them before it knows a
// destination (a command checking its flags at start). Its error wraps
// ErrInvalidConfig.
func (c Config) ValidateTLS() error {
	_, errs := c.tlsConfig()
	return errors.Join(errs...)
}

// resolve returns c with defaults applied and the URL normalised.
func (c Config) resolve() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, &configError{msg: fmt.Sprintf(format, args...)})
	}

	if c.URL == "" {
		bad("URL is empty: set it to the HEC URL of your Huntress Generic HEC source (e.g. https://hec.huntress.io/services/collector)")
	} else if u, err := normaliseURL(c.URL); err != nil {
		bad("URL %q: %s", redactURL(c.URL, c.Token), err)
	} else {
		if u.Scheme == "http" && !c.AllowInsecureHTTP && !isLoopback(u.Hostname()) {
			errs = append(errs, &configError{insecure: true, msg: fmt.Sprintf(
				"URL %s would send the token in clear text to a host that is not loopback: use https:// or pass --allow-insecure-http",
				redactURL(u.String(), c.Token))})
		}
		c.URL = u.String()
	}

	switch {
	case c.Token == "":
		bad("Token is empty: copy the HTTP Event Collector Token from Huntress → SIEM → Source Management → your Generic HEC source")
	case strings.IndexFunc(c.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		bad("Token contains spaces or control characters (a trailing newline from a file?): remove them")
	}

	switch strings.ToLower(c.AuthScheme) {
	case "", "splunk":
		c.AuthScheme = SchemeSplunk
	case "bearer":
		c.AuthScheme = SchemeBearer
	default:
		bad("AuthScheme %q is not supported: use %q (the default) or %q", c.AuthScheme, SchemeSplunk, SchemeBearer)
	}

	if c.Host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "unknown"
		}
		c.Host = h
	}
	if c.Source == "" {
		c.Source = DefaultSource
	}
	if c.SourceType == "" {
		c.SourceType = DefaultSourceType
	}

	if c.GzipThreshold == 0 {
		c.GzipThreshold = DefaultGzipThreshold
	}
	if c.GzipLevel == 0 {
		c.GzipLevel = DefaultGzipLevel
	}
	if _, err := gzip.NewWriterLevel(io.Discard, c.GzipLevel); err != nil {
		bad("GzipLevel %d is not a gzip level: use 1 (fastest) … 9 (smallest), or leave it 0 for 1", c.GzipLevel)
	}

	if c.ConnectTimeout < 0 {
		bad("ConnectTimeout %s is negative: use a positive duration, or 0 for %s", c.ConnectTimeout, DefaultConnectTimeout)
	} else if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Timeout < 0 {
		bad("Timeout %s is negative: use a positive duration, or 0 for %s", c.Timeout, DefaultTimeout)
	} else if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxResponseBytes < 0 {
		bad("MaxResponseBytes %d is negative: use a positive size, or 0 for %d", c.MaxResponseBytes, DefaultMaxResponseBytes)
	} else if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}

	if tlsCfg, tlsErrs := c.tlsConfig(); len(tlsErrs) > 0 {
		errs = append(errs, tlsErrs...)
	} else {
		// The resolved config carries the files' contents, not their names.
		c.TLS, c.CAFile, c.CertFile, c.KeyFile = tlsCfg, "", "", ""
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, nil
}

// configError is one problem Validate found.
type configError struct {
	msg      string
	insecure bool
}

func (e *configError) Error() string { return "huntress: invalid config: " + e.msg }

func (e *configError) Unwrap() []error {
	if e.insecure {
		return []error{ErrInvalidConfig, ErrInsecureURL}
	}
	return []error{ErrInvalidConfig}
}

// normaliseURL parses raw and completes its path to a HEC event endpoint.
func normaliseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, errors.New("not a URL: use the form https://hec.huntress.io/services/collector")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, errors.New("scheme must be https:// (or http:// for a local collector)")
	}
	if u.Hostname() == "" {
		return nil, errors.New("no host: use the form https://hec.huntress.io/services/collector")
	}
	if u.User != nil {
		return nil, errors.New("contains user:password@: remove it; the token goes in Token")
	}
	if u.Fragment != "" {
		return nil, errors.New("contains a #fragment: remove it")
	}
	switch p := u.Path; {
	case p == "" || p == "/":
		u.Path = "/services/collector/event"
	case strings.HasSuffix(strings.TrimSuffix(p, "/"), "/services/collector"):
		u.Path = strings.TrimSuffix(p, "/") + "/event"
	}
	u.RawPath = ""
	return u, nil
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

// redactURL returns raw without user info and with any occurrence of token
// replaced, for messages.
func redactURL(raw, token string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		raw = u.Redacted()
	}
	return newScrubber(token).scrub(raw)
}
