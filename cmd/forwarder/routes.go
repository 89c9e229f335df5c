package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

const routesUsage = `forwarder routes: the per-subscription routes, one per EZSSH subscription
that sends its audit events to its own Huntress (key-value bucket EZSSH_SIEM,
key = SubscriptionId; see docs/routes.md). The forwarder watches the bucket and
applies every change within seconds, without a restart.

Usage:
  forwarder routes list [--json]          every route: enabled, destination, breaker, pending
  forwarder routes get SUB [--json]       one route (the token masked)
  forwarder routes set SUB --hec-url URL --hec-token-file FILE --admin-emails a@x,b@y
                       [--auth-scheme Splunk|Bearer] [--disabled] [--allow-insecure-http]
                                          create or change a route (the token may also
                                          come from $HUNTRESS_HEC_TOKEN)
  forwarder routes disable SUB            stop delivering; events stay in the stream
  forwarder routes enable SUB             deliver again, from where it stopped
  forwarder routes delete SUB             remove the route (the forwarder removes its consumer)
  forwarder routes test SUB               send a test event with the route's settings
  forwarder routes rewind SUB --to T [--yes]
                                          deliver again every event since T (6h, or RFC 3339):
                                          the route's consumer moves back; --route global or
                                          --route NAME rewinds a static route instead

The commands connect to NATS_URL (default nats://127.0.0.1:4222, the embedded
server of a forwarder running on this machine); they never start a server.
Tokens are shown masked everywhere. With FORWARDER_SECRET_KEY_FILE set, set
stores tokens sealed (AES-256-GCM) and get and test open them.
Run "forwarder routes COMMAND --help" for a command's flags.
`

func runRoutes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, routesUsage)
		return cliflag.Usagef("routes: name a command: list, get, set, enable, disable, delete, test or rewind")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "list":
		return runRoutesList(ctx, args, stdout, stderr)
	case "get":
		return runRoutesGet(ctx, args, stdout, stderr)
	case "set":
		return runRoutesSet(ctx, args, stdout, stderr)
	case "enable":
		return runRoutesEnable(ctx, args, stdout, stderr, true)
	case "disable":
		return runRoutesEnable(ctx, args, stdout, stderr, false)
	case "delete":
		return runRoutesDelete(ctx, args, stdout, stderr)
	case "test":
		return runRoutesTest(ctx, args, stdout, stderr)
	case "rewind":
		return runRoutesRewind(ctx, args, stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, routesUsage)
		return nil
	}
	fmt.Fprint(stderr, routesUsage)
	return cliflag.Usagef("routes: unknown command %q (want list, get, set, enable, disable, delete, test or rewind)", cmd)
}

// routesConn are the connection settings every routes command takes.
type routesConn struct {
	adminConn
}

// open connects and looks up the routes bucket (errNoBucket when there is
// none). The caller closes the connection.
func (c *routesConn) open(ctx context.Context, stderr io.Writer) (*connection, jetstream.KeyValue, error) {
	conn, err := c.connect(ctx, stderr, "routes")
	if err != nil {
		return nil, nil, err
	}
	kv, err := routesBucket(ctx, conn.js)
	if err != nil {
		conn.close()
		return nil, nil, err
	}
	return conn, kv, nil
}

// errNoBucket says the bucket does not exist: no route was ever set.
var errNoBucket = fmt.Errorf("the key-value bucket %s does not exist on this server: no route was ever set (is NATS_URL right?)", routes.Bucket)

// bucket looks up the routes bucket; errNoBucket when it does not exist.
func routesBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, routes.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, errNoBucket
	}
	if err != nil {
		return nil, fmt.Errorf("key-value bucket %s: %w", routes.Bucket, err)
	}
	return kv, nil
}

// routesKey is the secret key flag of the commands that seal or open tokens.
type routesKey struct {
	file string
}

func (k *routesKey) bind(s *cliflag.Set) {
	s.String(&k.file, "secret-key-file", routes.KeyFileEnv, "", "file of the AES-256 key that seals HEC tokens in the bucket (32 bytes raw, 64 hex characters or base64; e.g. openssl rand -hex 32)")
}

// load reads the key; nil when none is configured. A bad key file is a usage
// error.
func (k *routesKey) load() ([]byte, error) {
	if k.file == "" {
		return nil, nil
	}
	key, err := routes.ReadKeyFile(k.file)
	if err != nil {
		return nil, &cliflag.UsageError{Msg: "--secret-key-file (" + routes.KeyFileEnv + "): " + err.Error()}
	}
	return key, nil
}

// routesConsumerFlags locate the route consumers, for their state.
type routesConsumerFlags struct {
	stream, consumer string
}

func (f *routesConsumerFlags) bind(s *cliflag.Set) {
	s.String(&f.stream, "stream", "FORWARDER_STREAM", audit.StreamName, "JetStream stream of audit events")
	s.String(&f.consumer, "consumer", "FORWARDER_CONSUMER", "huntress", "the forwarder's consumer name; a subscription's route consumer is <consumer>-<SubscriptionId>")
}

func (f *routesConsumerFlags) validate() error {
	if f.stream == "" {
		return cliflag.Usagef("--stream (FORWARDER_STREAM) must not be empty")
	}
	if !audit.ValidSubjectToken(f.consumer) {
		return cliflag.Usagef("--consumer (FORWARDER_CONSUMER) %q must be a single subject token: letters, digits, '-' or '_'", f.consumer)
	}
	return nil
}

// parseRoutesFlags parses a routes command's flags and its SUB argument,
// which may come before or after the flags. wantSub says whether the command
// takes one. help is true after --help was printed.
func parseRoutesFlags(s *cliflag.Set, args []string, c *routesConn, wantSub bool) (sub string, help bool, err error) {
	if wantSub && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if err := s.Parse(args); err != nil {
		if isHelp(err) {
			return "", true, nil
		}
		return "", false, err
	}
	rest := s.Args()
	if wantSub && sub == "" && len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	name := s.FlagSet().Name()
	switch {
	case len(rest) > 0:
		return "", false, cliflag.Usagef("%s: unexpected argument %q (see --help)", name, rest[0])
	case wantSub && sub == "":
		return "", false, cliflag.Usagef("%s: name the subscription: %s SUB (its SubscriptionId)", name, name)
	case wantSub && !routes.ValidSubscription(sub):
		return "", false, cliflag.Usagef("%s: SUB %q is not a SubscriptionId: ASCII letters, digits, '-', '_' and '=', at most 128", name, sub)
	}
	if err := c.validate(); err != nil {
		return "", false, err
	}
	return sub, false, nil
}

// routeEntry is a route as read from the bucket.
type routeEntry struct {
	sub      string
	entry    *routes.Entry // nil when the value does not decode
	revision uint64
	err      error // why the value cannot be used; never holds the token
}

// getRoute reads one route; an error wrapping jetstream.ErrKeyNotFound when
// there is none. A value that does not decode is returned with err set.
func getRoute(ctx context.Context, kv jetstream.KeyValue, sub string) (*routeEntry, error) {
	kve, err := kv.Get(ctx, sub)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, noRouteError(sub)
	}
	if err != nil {
		return nil, fmt.Errorf("route of subscription %s: %w", sub, err)
	}
	r := &routeEntry{sub: sub, revision: kve.Revision()}
	r.entry, r.err = routes.Decode(kve.Value())
	if r.err == nil {
		r.err = r.entry.Validate()
	}
	return r, nil
}

// noRouteError says a subscription has no route. It wraps
// jetstream.ErrKeyNotFound.
type noRouteError string

func (e noRouteError) Error() string {
	return "no route for subscription " + string(e) + " (routes list shows the routes)"
}

func (e noRouteError) Unwrap() error { return jetstream.ErrKeyNotFound }

// errRouteConflict ends updateRoute after repeated concurrent changes.
var errRouteConflict = errors.New("the route kept changing while being updated (someone else is writing it): try again")

// updateRoute applies change to the current route of sub (nil when there is
// none) and writes the result only if nobody changed the route in between
// (a KV Create or an Update with the revision read), retrying a few times on
// a conflict. change returns nil to write nothing. It returns the written
// entry and its revision (0 when nothing was written).
func updateRoute(ctx context.Context, kv jetstream.KeyValue, sub string,
	change func(cur *routeEntry) (*routes.Entry, error)) (*routes.Entry, uint64, error) {
	for range 5 {
		cur, err := getRoute(ctx, kv, sub)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, 0, err
		}
		next, err := change(cur)
		if err != nil || next == nil {
			return nil, 0, err
		}
		value, err := next.Encode()
		if err != nil {
			return nil, 0, err
		}
		var rev uint64
		if cur == nil {
			rev, err = kv.Create(ctx, sub, value)
		} else {
			rev, err = kv.Update(ctx, sub, value, cur.revision)
		}
		switch {
		case err == nil:
			return next, rev, nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue
		}
		return nil, 0, fmt.Errorf("write the route of subscription %s: %w", sub, err)
	}
	return nil, 0, errRouteConflict
}

// routeRecord is a route for people and scripts: the token masked, unknown
// fields by name only (their values are nobody's business here).
type routeRecord struct {
	Subscription      string         `json:"subscription"`
	Enabled           *bool          `json:"enabled,omitempty"`
	Provider          string         `json:"provider,omitempty"`
	Destination       string         `json:"destination,omitempty"`
	Host              string         `json:"host,omitempty"`
	AuthScheme        string         `json:"auth_scheme,omitempty"`
	Token             string         `json:"hec_token,omitempty"`
	Sealed            bool           `json:"hec_token_sealed,omitempty"`
	AdminEmails       []string       `json:"admin_emails,omitempty"`
	AllowInsecureHTTP bool           `json:"allow_insecure_http,omitempty"`
	UpdatedAt         string         `json:"updated_at,omitempty"`
	Revision          uint64         `json:"revision"`
	OtherFields       []string       `json:"other_fields,omitempty"`
	Error             string         `json:"error,omitempty"`
	Consumer          *consumerState `json:"consumer,omitempty"`
}

// record describes r; key (nil when none is configured) opens a sealed token
// so that its masked form can be shown.
func (r *routeEntry) record(key []byte) routeRecord {
	rec := routeRecord{Subscription: r.sub, Revision: r.revision}
	if r.err != nil {
		rec.Error = r.err.Error()
	}
	e := r.entry
	if e == nil {
		return rec
	}
	enabled := e.Enabled
	rec.Enabled = &enabled
	rec.Provider = e.Provider
	if e.HECURL != "" {
		rec.Destination = routes.Destination(e.HECURL)
		rec.Host = routes.Host(e.HECURL)
	}
	rec.AuthScheme = e.AuthScheme
	rec.Token, rec.Sealed = maskStored(e.HECToken, key)
	rec.AdminEmails = e.AdminEmails
	rec.AllowInsecureHTTP = e.AllowInsecureHTTP
	if !e.UpdatedAt.IsZero() {
		rec.UpdatedAt = e.UpdatedAt.UTC().Format(time.RFC3339)
	}
	rec.OtherFields = e.Extra()
	return rec
}

// maskStored masks a stored token, opening it first when it is sealed and
// the key opens it.
func maskStored(value string, key []byte) (masked string, sealed bool) {
	if !routes.IsSealed(value) {
		return routes.Mask(value), false
	}
	if key == nil {
		return routes.MaskValue(value), true
	}
	tok, err := routes.Open(key, value)
	if err != nil {
		return routes.MaskValue(value) + " (does not open with this key)", true
	}
	return routes.Mask(tok), true
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
