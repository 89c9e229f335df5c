package routes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ezssh/siem-forwarder/internal/huntress"
)

// Entry is the value of a subscription's key in the bucket (see
// docs/routes.md), in JSON:
//
//	{"enabled": true, "provider": "huntress",
//	 "hec_url": "https://hec.huntress.io/services/collector",
//	 "hec_token": "…" or "sealed:v1:…", "auth_scheme": "Splunk",
//	 "admin_emails": ["admin@example.com"], "updated_at": "2026-01-02T15:04:05Z"}
//
// Field names are matched exactly (lower case). Fields it does not know are
// kept: decoding and encoding an Entry re-emits them unchanged. An Entry is a
// plain value and not safe for concurrent modification; String never prints
// its token.
type Entry struct {
	// Enabled says whether events are delivered. A missing "enabled" means
	// true: the key exists because the subscription turned export on.
	// Disabled routes keep their events in the stream.
	Enabled bool
	// Provider is the destination kind: "huntress" or empty (huntress).
	Provider string
	// HECURL is the HEC endpoint (see huntress.Config.URL).
	HECURL string
	// HECToken is the HEC token, plain or sealed (SealedPrefix…). Use
	// Token or HECConfig to get it in clear.
	HECToken string
	// AuthScheme is "Splunk" (also when empty) or "Bearer".
	AuthScheme string
	// AdminEmails receive the route's alerts. May be empty.
	AdminEmails []string
	// AllowInsecureHTTP permits an http:// HEC URL to a host that is not
	// loopback ("allow_insecure_http", omitted when false).
	AllowInsecureHTTP bool
	// UpdatedAt is when the entry was last configured. A route's consumer,
	// when first created, starts at the events published from this time on;
	// enabling or disabling an entry keeps it. Zero when missing.
	UpdatedAt time.Time

	// extra holds the fields Entry does not know, re-emitted by MarshalJSON.
	extra map[string]json.RawMessage
}

// JSON field names of an Entry.
const (
	fieldEnabled       = "enabled"
	fieldProvider      = "provider"
	fieldHECURL        = "hec_url"
	fieldHECToken      = "hec_token"
	fieldAuthScheme    = "auth_scheme"
	fieldAdminEmails   = "admin_emails"
	fieldAllowInsecure = "allow_insecure_http"
	fieldUpdatedAt     = "updated_at"
)

// Decode parses a bucket value. Its errors wrap ErrInvalid and never contain
// the token.
func Decode(value []byte) (*Entry, error) {
	e := new(Entry)
	if err := json.Unmarshal(value, e); err != nil {
		if !errors.Is(err, ErrInvalid) {
			err = fmt.Errorf("%w: value is not a JSON object", ErrInvalid)
		}
		return nil, err
	}
	return e, nil
}

// UnmarshalJSON decodes a JSON object, keeping unknown fields.
func (e *Entry) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || raw == nil {
		return fmt.Errorf("%w: value is not a JSON object", ErrInvalid)
	}
	*e = Entry{Enabled: true}
	var errs []error
	str := func(field string, v json.RawMessage, p *string) {
		if err := json.Unmarshal(v, p); err != nil {
			errs = append(errs, bad(field, "must be a string"))
		}
	}
	for k, v := range raw {
		switch k {
		case fieldEnabled:
			if err := json.Unmarshal(v, &e.Enabled); err != nil {
				errs = append(errs, bad(k, "must be true or false"))
			}
		case fieldProvider:
			str(k, v, &e.Provider)
		case fieldHECURL:
			str(k, v, &e.HECURL)
		case fieldHECToken:
			str(k, v, &e.HECToken)
		case fieldAuthScheme:
			str(k, v, &e.AuthScheme)
		case fieldAdminEmails:
			if err := json.Unmarshal(v, &e.AdminEmails); err != nil {
				errs = append(errs, bad(k, "must be a list of strings"))
			}
		case fieldAllowInsecure:
			if err := json.Unmarshal(v, &e.AllowInsecureHTTP); err != nil {
				errs = append(errs, bad(k, "must be true or false"))
			}
		case fieldUpdatedAt:
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				errs = append(errs, bad(k, "must be an RFC 3339 time string"))
				break
			}
			if s == "" {
				break
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				errs = append(errs, bad(k, "%q is not an RFC 3339 time (2026-01-02T15:04:05Z)", s))
			}
			e.UpdatedAt = t
		default:
			if e.extra == nil {
				e.extra = make(map[string]json.RawMessage)
			}
			e.extra[k] = slices.Clone(v)
		}
	}
	return join(errs...)
}

// MarshalJSON encodes the entry with its known fields first, in a fixed order,
// then the unknown fields it was decoded with, sorted by name.
func (e Entry) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	put := func(name string, v any) error {
		raw, ok := v.(json.RawMessage)
		if !ok {
			var err error
			if raw, err = marshal(v); err != nil {
				return fmt.Errorf("routes: encode %s: %w", name, err)
			}
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		k, _ := marshal(name)
		b.Write(k)
		b.WriteByte(':')
		b.Write(raw)
		return nil
	}
	var errs []error
	add := func(name string, v any) { errs = append(errs, put(name, v)) }
	add(fieldEnabled, e.Enabled)
	if e.Provider != "" {
		add(fieldProvider, e.Provider)
	}
	add(fieldHECURL, e.HECURL)
	add(fieldHECToken, e.HECToken)
	if e.AuthScheme != "" {
		add(fieldAuthScheme, e.AuthScheme)
	}
	emails := e.AdminEmails
	if emails == nil {
		emails = []string{}
	}
	add(fieldAdminEmails, emails)
	if e.AllowInsecureHTTP {
		add(fieldAllowInsecure, true)
	}
	if !e.UpdatedAt.IsZero() {
		add(fieldUpdatedAt, e.UpdatedAt.UTC().Format(time.RFC3339Nano))
	}
	for _, k := range slices.Sorted(maps.Keys(e.extra)) {
		add(k, e.extra[k])
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Encode returns the bucket value of the entry: MarshalJSON without the
// HTML escaping of json.Marshal, so unknown fields keep their bytes.
func (e *Entry) Encode() ([]byte, error) { return marshal(e) }

// marshal is json.Marshal without HTML escaping.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Extra returns the names of the fields the entry keeps without knowing
// them, sorted.
func (e *Entry) Extra() []string { return slices.Sorted(maps.Keys(e.extra)) }

// ExtraValue returns the raw JSON of an unknown field, and whether it is
// present. The bytes must not be modified.
func (e *Entry) ExtraValue(name string) (json.RawMessage, bool) {
	v, ok := e.extra[name]
	return v, ok
}

// Validate reports every problem of the entry in one error wrapping
// ErrInvalid; each problem names its JSON field. It checks that hec_url is a
// URL with https:// (or http:// to a loopback host, or to any host with
// allow_insecure_http), that hec_token is set (a sealed one well formed; its
// key is not checked), that auth_scheme is Splunk or Bearer, that every
// admin email parses with net/mail, and that provider is huntress or empty.
func (e *Entry) Validate() error {
	return join(
		checkProvider(fieldProvider, e.Provider),
		checkURL(fieldHECURL, e.HECURL, e.AllowInsecureHTTP),
		checkToken(fieldHECToken, e.HECToken),
		checkScheme(fieldAuthScheme, e.AuthScheme),
		checkEmails(fieldAdminEmails, e.AdminEmails),
	)
}

// Token returns the HEC token in clear, opening a sealed one with key (nil
// when no key is configured). Its errors name the subscription and wrap
// ErrNoKey or ErrUnseal.
func (e *Entry) Token(sub string, key []byte) (string, error) {
	tok, err := Open(key, e.HECToken)
	if err != nil {
		return "", fmt.Errorf("subscription %s: hec_token: %w", sub, err)
	}
	return tok, nil
}

// HECConfig returns the destination of the subscription's route: base (for
// the settings the entry does not hold, such as Host, Source, Timeout or TLS)
// with the entry's URL, token (opened with key, nil when no key is
// configured), scheme and AllowInsecureHTTP. Its errors name the subscription
// and wrap ErrInvalid, ErrNoKey, ErrUnseal or huntress.ErrInvalidConfig.
func (e *Entry) HECConfig(sub string, key []byte, base huntress.Config) (huntress.Config, error) {
	if err := e.Validate(); err != nil {
		return huntress.Config{}, prefix("subscription "+sub, err)
	}
	tok, err := e.Token(sub, key)
	if err != nil {
		return huntress.Config{}, err
	}
	cfg := base
	cfg.URL = e.HECURL
	cfg.Token = tok
	cfg.AuthScheme = normScheme(e.AuthScheme)
	cfg.AllowInsecureHTTP = e.AllowInsecureHTTP
	if err := cfg.Validate(); err != nil {
		return huntress.Config{}, fmt.Errorf("subscription %s: %w", sub, err)
	}
	return cfg, nil
}

// Clone returns a deep copy of e.
func (e *Entry) Clone() *Entry {
	c := *e
	c.AdminEmails = slices.Clone(e.AdminEmails)
	c.extra = maps.Clone(e.extra)
	return &c
}

// String describes the entry with its token masked.
func (e Entry) String() string {
	return fmt.Sprintf("routes.Entry{Enabled: %t, URL: %s, Token: %s, AuthScheme: %s, Admins: %d, UpdatedAt: %s}",
		e.Enabled, Destination(e.HECURL), MaskValue(e.HECToken), normScheme(e.AuthScheme), len(e.AdminEmails),
		e.UpdatedAt.UTC().Format(time.RFC3339))
}

// GoString keeps %#v from printing the token.
func (e Entry) GoString() string { return e.String() }
