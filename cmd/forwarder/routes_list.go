package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

const routesListIntro = `forwarder routes list: every subscription route, as a table or, with --json,
one JSON object per line. BREAKER/PAUSED and PENDING come from the route's
durable consumer (<consumer>-<SubscriptionId> on the audit stream): "paused" is
an open breaker (the destination is failing and the route is held), PENDING
the events not yet delivered; "-" when the consumer does not exist (yet).`

const routesGetIntro = `forwarder routes get SUB: one subscription route, with its token masked and
its consumer's state.`

// consumerState is the state of a route's durable consumer.
type consumerState struct {
	Name           string `json:"name"`
	Exists         bool   `json:"exists"`
	Paused         bool   `json:"paused,omitempty"`
	PauseRemaining string `json:"pause_remaining,omitempty"`
	Pending        uint64 `json:"pending"`     // not yet delivered
	AckPending     int    `json:"ack_pending"` // delivered, not yet acknowledged
}

// breaker is the BREAKER/PAUSED column.
func (c *consumerState) breaker() string {
	switch {
	case c == nil || !c.Exists:
		return "-"
	case c.Paused && c.PauseRemaining != "":
		return "open, paused " + c.PauseRemaining
	case c.Paused:
		return "open, paused"
	}
	return "closed"
}

// pending is the PENDING column.
func (c *consumerState) pending() string {
	if c == nil || !c.Exists {
		return "-"
	}
	return fmt.Sprint(c.Pending + uint64(c.AckPending))
}

// consumerLookup reads route consumers' state from the audit stream.
type consumerLookup struct {
	stream jetstream.Stream // nil when the stream does not exist
	prefix string
}

func newConsumerLookup(ctx context.Context, js jetstream.JetStream, f routesConsumerFlags) (*consumerLookup, error) {
	s, err := js.Stream(ctx, f.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", f.stream, err)
	}
	return &consumerLookup{stream: s, prefix: f.consumer}, nil
}

func (l *consumerLookup) state(ctx context.Context, sub string) (*consumerState, error) {
	st := &consumerState{Name: routes.ConsumerName(l.prefix, sub)}
	if l.stream == nil {
		return st, nil
	}
	c, err := l.stream.Consumer(ctx, st.Name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", st.Name, err)
	}
	info := c.CachedInfo()
	st.Exists = true
	st.Paused = info.Paused
	if info.PauseRemaining > 0 {
		st.PauseRemaining = info.PauseRemaining.Round(time.Second).String()
	}
	st.Pending = info.NumPending
	st.AckPending = info.NumAckPending
	return st, nil
}

func runRoutesList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c      routesConn
		cf     routesConsumerFlags
		asJSON bool
		s      = cliflag.New("forwarder routes list", routesListIntro, stdout)
	)
	c.bind(s)
	cf.bind(s)
	s.Bool(&asJSON, "json", "", false, "print one JSON object per route")
	if _, help, err := parseRoutesFlags(s, args, &c, false); help || err != nil {
		return err
	}
	if err := cf.validate(); err != nil {
		return err
	}
	conn, err := c.connect(ctx, stderr, "routes")
	if err != nil {
		return err
	}
	defer conn.close()
	var list []routes.Change
	kv, err := routesBucket(ctx, conn.js)
	switch {
	case errors.Is(err, errNoBucket):
		fmt.Fprintf(stderr, "no routes: the bucket %s does not exist yet\n", routes.Bucket)
	case err != nil:
		return err
	default:
		if list, err = routes.List(ctx, kv); err != nil {
			return err
		}
	}
	lookup, err := newConsumerLookup(ctx, conn.js, cf)
	if err != nil {
		return err
	}

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(tw, "SUBSCRIPTION\tENABLED\tDESTINATION\tBREAKER/PAUSED\tPENDING")
	}
	for i, ch := range list {
		r := &routeEntry{sub: ch.Subscription, entry: ch.Entry, revision: ch.Revision, err: ch.Err}
		rec := r.record(nil)
		if routes.ValidSubscription(ch.Subscription) {
			if rec.Consumer, err = lookup.state(ctx, ch.Subscription); err != nil {
				return err
			}
		}
		if asJSON {
			if err := writeJSONLine(stdout, rec); err != nil {
				return err
			}
			continue
		}
		enabled, host := "invalid", "-"
		if rec.Enabled != nil && rec.Error == "" {
			enabled = yesNo(*rec.Enabled)
		}
		if rec.Host != "" {
			host = rec.Host
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", rec.Subscription, enabled, host, rec.Consumer.breaker(), rec.Consumer.pending())
		if rec.Error != "" {
			fmt.Fprintf(stderr, "%s\n", rec.Error)
		}
		if i%1000 == 999 {
			tw.Flush()
		}
	}
	return tw.Flush()
}

func runRoutesGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c      routesConn
		cf     routesConsumerFlags
		k      routesKey
		asJSON bool
		s      = cliflag.New("forwarder routes get", routesGetIntro, stdout)
	)
	c.bind(s)
	cf.bind(s)
	k.bind(s)
	s.Bool(&asJSON, "json", "", false, "print it as one JSON object")
	sub, help, err := parseRoutesFlags(s, args, &c, true)
	if help || err != nil {
		return err
	}
	if err := cf.validate(); err != nil {
		return err
	}
	key, err := k.load()
	if err != nil {
		return err
	}
	conn, kv, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer conn.close()
	r, err := getRoute(ctx, kv, sub)
	if err != nil {
		return err
	}
	rec := r.record(key)
	lookup, err := newConsumerLookup(ctx, conn.js, cf)
	if err != nil {
		return err
	}
	if rec.Consumer, err = lookup.state(ctx, sub); err != nil {
		return err
	}
	if asJSON {
		return writeJSONLine(stdout, rec)
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	line("Subscription", rec.Subscription)
	if rec.Enabled != nil {
		line("Enabled", yesNo(*rec.Enabled))
		line("Provider", orDefault(rec.Provider, routes.ProviderHuntress))
		line("HEC URL", orDefault(rec.Destination, "(none)"))
		tok := orDefault(rec.Token, "(none)")
		if rec.Sealed {
			tok += " (sealed)"
		}
		line("HEC token", tok)
		line("Auth scheme", orDefault(rec.AuthScheme, "Splunk"))
		line("Admin emails", orDefault(strings.Join(rec.AdminEmails, ", "), "(none)"))
		if rec.AllowInsecureHTTP {
			line("Insecure HTTP", "allowed")
		}
		line("Updated at", orDefault(rec.UpdatedAt, "(not set)"))
	}
	line("Revision", fmt.Sprint(rec.Revision))
	if len(rec.OtherFields) > 0 {
		line("Other fields", strings.Join(rec.OtherFields, ", "))
	}
	if cs := rec.Consumer; cs.Exists {
		line("Consumer", fmt.Sprintf("%s: breaker %s, %s pending", cs.Name, cs.breaker(), cs.pending()))
	} else {
		line("Consumer", cs.Name+": not created (yet)")
	}
	if rec.Error != "" {
		line("Problem", rec.Error)
	}
	tw.Flush()
	_, err = stdout.Write(b.Bytes())
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
