package routes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/huntress"
)

// maxStaticFile bounds the size of a routes file.
const maxStaticFile = 1 << 20

// StaticRoute is one route of a routes file (--routes-file): a destination
// that receives the events of its filter in addition to each subscription's
// own route. A StaticRoute is a plain value; String never prints its token.
type StaticRoute struct {
	// Name identifies the route (logs, metrics, dead-letter subjects, the
	// default consumer name): ASCII letters, digits, '-', '_' and '='.
	// Required, unique in the file.
	Name string `json:"name" yaml:"name"`
	// Filter selects the route's events: a subject under ezssh.audit.
	// Default "ezssh.audit.>" (every event).
	Filter string `json:"filter,omitempty" yaml:"filter"`
	// HECURL is the HEC endpoint. Required.
	HECURL string `json:"hec_url" yaml:"hec_url"`
	// HECToken is the HEC token, plain or sealed. Exactly one of HECToken
	// and HECTokenFile is required; after ReadStatic, HECToken holds the
	// token either way.
	HECToken string `json:"hec_token,omitempty" yaml:"hec_token"`
	// HECTokenFile is a file holding the token (surrounding white space is
	// ignored); a relative path is relative to the routes file's folder.
	HECTokenFile string `json:"hec_token_file,omitempty" yaml:"hec_token_file"`
	// AuthScheme is "Splunk" (also when empty) or "Bearer".
	AuthScheme string `json:"auth_scheme,omitempty" yaml:"auth_scheme"`
	// AdminEmails receive the route's alerts.
	AdminEmails []string `json:"admin_emails,omitempty" yaml:"admin_emails"`
	// AllowInsecureHTTP permits an http:// URL to a host that is not
	// loopback.
	AllowInsecureHTTP bool `json:"allow_insecure_http,omitempty" yaml:"allow_insecure_http"`
}

// staticFile is the object form of a routes file: {"routes": [...]}.
type staticFile struct {
	Routes []StaticRoute `json:"routes" yaml:"routes"`
}

// ReadStatic reads a routes file: JSON (.json, or content starting with '['
// or '{') or YAML (.yaml, .yml, or anything else); either a list of routes or
// an object whose "routes" field is that list. Unknown fields are errors.
// Filters get their default, token files are read, and every route is
// validated; errors wrap ErrInvalid, name the file, the route and the field,
// and never contain a token. An empty list is no error.
func ReadStatic(path string) ([]StaticRoute, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("routes file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStaticFile+1))
	if err != nil {
		return nil, fmt.Errorf("routes file %s: %w", path, err)
	}
	if len(b) > maxStaticFile {
		return nil, fmt.Errorf("routes file %s: %w: larger than %d bytes", path, ErrInvalid, maxStaticFile)
	}
	rs, err := decodeStatic(path, b)
	if err != nil {
		return nil, fmt.Errorf("routes file %s: %w: %v", path, ErrInvalid, err)
	}
	seen := map[string]int{}
	var errs []error
	for i := range rs {
		r := &rs[i]
		where := fmt.Sprintf("route #%d", i+1)
		if r.Name != "" {
			where += fmt.Sprintf(" %q", r.Name)
		}
		if j, dup := seen[r.Name]; dup && r.Name != "" {
			errs = append(errs, prefix(where, bad("name", "also used by route #%d", j+1)))
		}
		seen[r.Name] = i
		if err := r.load(filepath.Dir(path)); err != nil {
			errs = append(errs, prefix(where, err))
			continue
		}
		if err := r.Validate(); err != nil {
			errs = append(errs, prefix(where, err))
		}
	}
	if err := join(errs...); err != nil {
		return nil, prefix("routes file "+path, err)
	}
	return rs, nil
}

// decodeStatic parses the file's routes in JSON or YAML.
func decodeStatic(path string, b []byte) ([]StaticRoute, error) {
	trimmed := bytes.TrimSpace(b)
	ext := strings.ToLower(filepath.Ext(path))
	isJSON := ext == ".json" || (ext != ".yaml" && ext != ".yml" && len(trimmed) > 0 && (trimmed[0] == '[' || trimmed[0] == '{'))
	if len(trimmed) == 0 {
		return nil, nil
	}
	if isJSON {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		var rs []StaticRoute
		var err error
		if trimmed[0] == '{' {
			var sf staticFile
			err = dec.Decode(&sf)
			rs = sf.Routes
		} else {
			err = dec.Decode(&rs)
		}
		if err != nil {
			return nil, fmt.Errorf("not valid JSON for a list of routes: %s", jsonErr(err))
		}
		if dec.More() {
			return nil, errors.New("unexpected data after the routes")
		}
		return rs, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(trimmed, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %s", yamlErr(err))
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(trimmed))
	dec.KnownFields(true)
	var rs []StaticRoute
	var err error
	if doc.Content[0].Kind == yaml.MappingNode {
		var sf staticFile
		err = dec.Decode(&sf)
		rs = sf.Routes
	} else {
		err = dec.Decode(&rs)
	}
	if err != nil {
		return nil, fmt.Errorf("not a list of routes: %s", yamlErr(err))
	}
	return rs, nil
}

// jsonErr describes a JSON decoding error without quoting values.
func jsonErr(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s: must be a %s, not a %s", te.Field, te.Type, te.Value)
	}
	return err.Error() // syntax and unknown-field errors quote no value
}

// yamlValue matches the values yaml.v3 quotes in its errors (`value`).
var yamlValue = regexp.MustCompile("`[^`]*`")

// yamlErr describes a YAML decoding error with the values it quotes removed,
// so that a token put in the wrong place is not echoed.
func yamlErr(err error) string {
	return yamlValue.ReplaceAllString(err.Error(), "(value)")
}

// load applies defaults and reads the token file, relative to dir.
func (r *StaticRoute) load(dir string) error {
	if r.Filter == "" {
		r.Filter = audit.SubjectAll
	}
	if r.HECTokenFile == "" {
		return nil
	}
	if r.HECToken != "" {
		return bad("hec_token", "give either hec_token or hec_token_file, not both")
	}
	p := r.HECTokenFile
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	f, err := os.Open(p)
	if err != nil {
		return bad("hec_token_file", "%v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenLen+1))
	if err != nil {
		return bad("hec_token_file", "%s: %v", p, err)
	}
	r.HECToken = strings.TrimSpace(string(b))
	if r.HECToken == "" {
		return bad("hec_token_file", "%s is empty", p)
	}
	return nil
}

// Validate reports every problem of the route in one error wrapping
// ErrInvalid, each naming its field. It expects the token loaded (as by
// ReadStatic).
func (r *StaticRoute) Validate() error {
	errs := []error{}
	if r.Name == "" {
		errs = append(errs, bad("name", "is empty: give every route a name"))
	} else if !ValidSubscription(r.Name) {
		errs = append(errs, bad("name", "%q must be made of ASCII letters, digits, '-', '_' and '=' (at most 128)", r.Name))
	}
	if !validFilter(r.Filter) {
		errs = append(errs, bad("filter", "%q must be a subject under %s. (such as %s or ezssh.audit.<SubscriptionId>.>)", r.Filter, audit.SubjectPrefix, audit.SubjectAll))
	}
	errs = append(errs,
		checkURL("hec_url", r.HECURL, r.AllowInsecureHTTP),
		checkToken("hec_token", r.HECToken),
		checkScheme("auth_scheme", r.AuthScheme),
		checkEmails("admin_emails", r.AdminEmails),
	)
	return join(errs...)
}

// validFilter reports whether f is a subject filter under ezssh.audit.
func validFilter(f string) bool {
	rest, ok := strings.CutPrefix(f, audit.SubjectPrefix+".")
	if !ok || rest == "" {
		return false
	}
	toks := strings.Split(rest, ".")
	for i, t := range toks {
		switch {
		case t == ">" && i == len(toks)-1, t == "*":
		case !audit.ValidSubjectToken(t):
			return false
		}
	}
	return true
}

// HECConfig returns the route's destination: base (for the settings the route
// does not hold) with the route's URL, token (opened with key when sealed; key
// is nil when none is configured), scheme and AllowInsecureHTTP. Errors name
// the route and wrap ErrInvalid, ErrNoKey, ErrUnseal or
// huntress.ErrInvalidConfig.
func (r *StaticRoute) HECConfig(key []byte, base huntress.Config) (huntress.Config, error) {
	tok, err := Open(key, r.HECToken)
	if err != nil {
		return huntress.Config{}, fmt.Errorf("route %s: hec_token: %w", r.Name, err)
	}
	cfg := base
	cfg.URL = r.HECURL
	cfg.Token = tok
	cfg.AuthScheme = normScheme(r.AuthScheme)
	cfg.AllowInsecureHTTP = r.AllowInsecureHTTP
	if err := cfg.Validate(); err != nil {
		return huntress.Config{}, fmt.Errorf("route %s: %w", r.Name, err)
	}
	return cfg, nil
}

// String describes the route with its token masked.
func (r StaticRoute) String() string {
	return fmt.Sprintf("routes.StaticRoute{Name: %s, Filter: %s, URL: %s, Token: %s, AuthScheme: %s, Admins: %d}",
		r.Name, r.Filter, Destination(r.HECURL), MaskValue(r.HECToken), normScheme(r.AuthScheme), len(r.AdminEmails))
}

// GoString keeps %#v from printing the token.
func (r StaticRoute) GoString() string { return r.String() }
