// Package notify emails a route's administrators about its incidents: dead
// letters, a destination that fails or refuses our settings, its recovery, and
// held events about to age out of the stream.
//
// A fleet of forwarders shares one Notifier state through a Store with
// compare-and-set, so that the same outage reported by every instance, or
// handled by several of them, gives one email: one when an incident starts,
// at most one digest per window after it, and one when delivery recovers.
// Emails wait in the shared state until an instance claims one, with a lease,
// and sends it; a claim whose holder crashed lapses and another instance sends
// the email.
//
// The package knows nothing of NATS or of the destinations: internal/notifyfeed
// turns the pipeline's dead letters and route events into Alerts.
package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Config configures a Notifier. The zero value of each optional field means
// the documented default.
type Config struct {
	// Window is the shortest time between two digests of a route, and
	// between two aging warnings. Default 15 minutes.
	Window time.Duration
	// Mailer sends the emails. Required.
	Mailer Mailer
	// Store holds the state shared by the fleet. Required.
	Store Store
	// Recipients returns the addresses to email about a route. An alert for
	// a route without recipients updates the state and sends nothing.
	// Required.
	Recipients func(route string) []string
	// Destination describes a route's destination (scheme, host, path; no
	// secret) when an alert does not. Optional.
	Destination func(route string) string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log receives the notifier's logs. Default: discarded.
	Log *slog.Logger
	// Instance names this process in claims and emails. Default: host name
	// and a random suffix.
	Instance string
	// Lease is how long a claimed email belongs to the instance that claimed
	// it; if that instance has not sent it by then (it crashed), another
	// one will. Default 2 minutes; it must exceed SendTimeout.
	Lease time.Duration
	// SendTimeout bounds the attempts to send one claimed email, retries
	// included. Default 1 minute.
	SendTimeout time.Duration
	// RetryInitial is the first delay between two attempts to send an email.
	// Default 1 second.
	RetryInitial time.Duration
	// MaxAttempts is the number of claims (each with its retries) after which
	// an email that cannot be sent is dropped and logged. Default 5.
	MaxAttempts int
	// Meters receives the notifier's metrics (ezssh.forwarder.notifications.*,
	// the counters of Stats by route and kind). Default: OpenTelemetry's
	// global MeterProvider.
	Meters metric.MeterProvider
}

func (c Config) withDefaults() Config {
	if c.Window <= 0 {
		c.Window = 15 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Instance == "" {
		h, err := os.Hostname()
		if err != nil {
			h = "unknown"
		}
		c.Instance = h + "-" + randomID()[:8]
	}
	if c.Lease <= 0 {
		c.Lease = 2 * time.Minute
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = time.Minute
	}
	if c.RetryInitial <= 0 {
		c.RetryInitial = time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	return c
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Mailer == nil {
		errs = append(errs, errors.New("notify: no Mailer"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("notify: no Store"))
	}
	if c.Recipients == nil {
		errs = append(errs, errors.New("notify: no Recipients"))
	}
	if c.Lease <= c.SendTimeout {
		errs = append(errs, fmt.Errorf("notify: lease %v must exceed the send timeout %v, or a slow send could be repeated by another instance", c.Lease, c.SendTimeout))
	}
	return errors.Join(errs...)
}

// Notifier turns alerts into throttled emails. Create it with New. Its
// methods are safe for concurrent use, also by several Notifiers (in one or
// many processes) sharing a Store.
type Notifier struct {
	cfg Config
	log *slog.Logger
	in  *instruments

	sent, failed, dropped, unaddressed atomic.Int64
}

// Stats counts what a Notifier did since it was created.
type Stats struct {
	Sent        int64 // emails the mail server accepted
	Failed      int64 // attempts to send an email that failed
	Dropped     int64 // emails given up after MaxAttempts or a permanent refusal
	Unaddressed int64 // emails not queued because the route had no recipients
}

// New returns a Notifier, or the error of cfg.Validate or of creating its
// metrics.
func New(cfg Config) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	in, err := newInstruments(cfg.Meters)
	if err != nil {
		return nil, fmt.Errorf("notify: metrics: %w", err)
	}
	return &Notifier{cfg: cfg, log: cfg.Log.With("component", "notify"), in: in}, nil
}

// Stats returns the counters.
func (n *Notifier) Stats() Stats {
	return Stats{
		Sent:        n.sent.Load(),
		Failed:      n.failed.Load(),
		Dropped:     n.dropped.Load(),
		Unaddressed: n.unaddressed.Load(),
	}
}

// Window returns the digest window in effect.
func (n *Notifier) Window() time.Duration { return n.cfg.Window }

// Handle records a and sends the emails it makes due. It returns an error
// (ErrInvalidAlert, or the Store's) only when a could not be recorded; then
// the caller should offer it again later. Once Handle returned nil the alert
// is safe in the Store: an email that could not be sent yet is retried by
// Tick, here or on another instance.
func (n *Notifier) Handle(ctx context.Context, a Alert) error {
	if err := a.Validate(); err != nil {
		return err
	}
	if a.Destination == "" && n.cfg.Destination != nil {
		a.Destination = n.cfg.Destination(a.Route)
	}
	a.Destination = oneLine(a.Destination)
	a.Error = scrub(a.Error)
	a.Subscription = oneLine(a.Subscription)
	a.Reason = oneLine(a.Reason)
	a.Class = oneLine(a.Class)
	if _, err := n.update(ctx, a.Route, func(st *routeState, fx *effects) bool {
		return n.apply(st, a, n.cfg.Now(), fx)
	}); err != nil {
		return fmt.Errorf("notify: route %s: %w", a.Route, err)
	}
	n.flush(ctx, a.Route)
	return nil
}

// Tick sends what the passing of time made due on every route: digests,
// aging warnings, and emails whose earlier sending failed or whose claim
// lapsed. Call it every few seconds to a minute. It returns the Store's
// errors.
func (n *Notifier) Tick(ctx context.Context) error {
	keys, err := n.cfg.Store.Keys(ctx)
	if err != nil {
		return fmt.Errorf("notify: list routes: %w", err)
	}
	var errs []error
	for _, k := range keys {
		route, ok := strings.CutPrefix(k, keyPrefix)
		if !ok || !validRoute(route) {
			continue
		}
		if _, err := n.update(ctx, route, func(st *routeState, fx *effects) bool {
			return n.due(st, n.cfg.Now(), fx)
		}); err != nil {
			errs = append(errs, fmt.Errorf("notify: route %s: %w", route, err))
			continue
		}
		n.flush(ctx, route)
	}
	return errors.Join(errs...)
}

// apply changes st for a, at now, and reports whether it changed.
func (n *Notifier) apply(st *routeState, a Alert, now time.Time, fx *effects) bool {
	if st.seen(a.ID) {
		return false
	}
	if a.Destination != "" {
		st.Destination = a.Destination
	}
	at := a.At
	if at.IsZero() {
		at = now
	}
	switch a.Kind {
	case KindDeadLetter:
		st.LastDeadLetter = now
		if !st.Active {
			st.closeIncident()
			st.Active, st.Since = true, now
			st.Total.add(a, at)
			n.queue(st, fx, mailIncident, now, n.deadLetterStart(st, a, at))
			st.LastMail = now
		} else {
			st.Total.add(a, at)
			st.Pending.add(a, at)
		}
	case KindOpened:
		if o := st.Outage; o != nil {
			// Another instance's report of the same outage.
			o.Reports++
			if a.Class == ClassMisconfigured && o.Class != ClassMisconfigured {
				o.Class, o.Error, o.Status, o.Code, o.HasCode = a.Class, a.Error, a.Status, a.Code, a.HasCode
			}
			break
		}
		o := &outage{Since: at, Class: a.Class, Error: a.Error, Status: a.Status, Code: a.Code, HasCode: a.HasCode, Reports: 1}
		if !st.Active {
			st.closeIncident()
			st.Active, st.Since = true, now
		}
		st.Outage = o
		if !st.RecoveredAt.IsZero() && now.Sub(st.RecoveredAt) < n.cfg.Window {
			// Flapping: it stopped again soon after the recovery email.
			st.Pending.Reopened++
			break
		}
		o.Mailed = true
		n.queue(st, fx, mailOutage, now, n.outageStart(st, o))
		st.LastMail = now
	case KindRecovered:
		o := st.Outage
		if o == nil {
			break // another instance's report of the same recovery
		}
		st.Outage, st.Aging, st.RecoveredAt = nil, nil, now
		if !o.Mailed {
			st.Pending.Recovered = at
			break
		}
		n.queue(st, fx, mailRecovered, now, n.recovered(st, o, at))
		st.LastMail = now
		st.closeIncident()
	case KindAging:
		st.Aging = &aging{Held: a.HeldEvents, ExpiresAt: a.ExpiresAt, At: at}
	}
	n.due(st, now, fx)
	return true
}

// due queues what the window makes due and reports whether st changed.
func (n *Notifier) due(st *routeState, now time.Time, fx *effects) bool {
	w := n.cfg.Window
	changed := false
	if st.Aging != nil && (st.LastAgingMail.IsZero() || now.Sub(st.LastAgingMail) >= w) {
		n.queue(st, fx, mailAging, now, n.agingWarning(st, *st.Aging))
		st.LastAgingMail, st.Aging = now, nil
		changed = true
	}
	if st.Active && !st.Pending.empty() && now.Sub(st.LastMail) >= w {
		n.queue(st, fx, mailDigest, now, n.digest(st))
		st.LastMail = now
		st.Pending = tally{}
		if st.Outage != nil {
			st.Outage.Mailed = true
		}
		changed = true
	}
	if st.Active && st.Outage == nil && st.Pending.empty() && now.Sub(st.LastDeadLetter) >= w {
		// A window without a dead letter and nothing held: the incident is over.
		st.closeIncident()
		changed = true
	}
	return changed
}

// Kinds of email, for logs.
const (
	mailIncident  = "incident"
	mailOutage    = "outage"
	mailDigest    = "digest"
	mailRecovered = "recovered"
	mailAging     = "aging"
)

// effects is what one state change did, reported once it is stored.
type effects struct {
	queued      []string
	unaddressed []string
	overflowed  int
	redacted    bool
	claimed     *mail // flush: the email this instance now holds
	settled     bool  // deliver: the outcome was recorded on our claim
}

func (n *Notifier) queue(st *routeState, fx *effects, kind string, now time.Time, c content) {
	to := n.cfg.Recipients(st.Route)
	if len(to) == 0 {
		fx.unaddressed = append(fx.unaddressed, kind)
		return
	}
	if authHeader.MatchString(c.body) || authToken.MatchString(c.body) {
		// Nothing we write holds one; a text that reached us unscrubbed might.
		c.body = authToken.ReplaceAllString(authHeader.ReplaceAllString(c.body, "${1}[REDACTED]"), "${1}${2}[REDACTED]")
		fx.redacted = true
	}
	st.Seq++
	st.Outbox = append(st.Outbox, &mail{
		ID:      fmt.Sprintf("%s.%d.%d", st.Route, st.Seq, now.UnixNano()),
		Kind:    kind,
		To:      append([]string(nil), to...),
		Subject: oneLine(c.subject),
		Body:    c.body,
		Queued:  now,
	})
	if over := len(st.Outbox) - maxOutbox; over > 0 {
		st.Outbox = st.Outbox[over:]
		fx.overflowed += over
	}
	fx.queued = append(fx.queued, kind)
}

const keyPrefix = "route."

// maxCAS bounds the compare-and-set attempts of one change.
const maxCAS = 50

// update applies f to route's state with compare-and-set, retrying on a
// conflict with another instance; f may run several times and must only
// change st and fx. It returns the effects of the run that counted.
func (n *Notifier) update(ctx context.Context, route string, f func(*routeState, *effects) bool) (*effects, error) {
	key := keyPrefix + route
	for range maxCAS {
		raw, rev, err := n.cfg.Store.Get(ctx, key)
		st := &routeState{Route: route}
		switch {
		case errors.Is(err, ErrNotFound):
			rev = 0
		case err != nil:
			return nil, err
		default:
			if err := json.Unmarshal(raw, st); err != nil {
				n.log.Warn("unreadable notifier state; starting afresh", "route", route, "err", err)
				st = &routeState{Route: route}
			}
			st.Route = route
		}
		fx := &effects{}
		if !f(st, fx) {
			n.report(ctx, route, fx)
			return fx, nil
		}
		b, err := json.Marshal(st)
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			_, err = n.cfg.Store.Create(ctx, key, b)
		} else {
			_, err = n.cfg.Store.Update(ctx, key, b, rev)
		}
		if errors.Is(err, ErrExists) || errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		n.report(ctx, route, fx)
		return fx, nil
	}
	return nil, fmt.Errorf("state changed by others %d times in a row", maxCAS)
}

func (n *Notifier) report(ctx context.Context, route string, fx *effects) {
	for _, k := range fx.queued {
		n.log.Info("admin email queued", "route", route, "kind", k)
	}
	for _, k := range fx.unaddressed {
		n.unaddressed.Add(1)
		count(ctx, n.in.unaddressed, 1, route, k, "")
		n.log.Warn("no admin email address for this route; nobody is told", "route", route, "kind", k)
	}
	if fx.redacted {
		n.log.Warn("something shaped like an Authorization header was removed from an admin email", "route", route)
	}
	if fx.overflowed > 0 {
		n.dropped.Add(int64(fx.overflowed))
		count(ctx, n.in.dropped, int64(fx.overflowed), route, "", reasonOverflow)
		n.log.Error("too many admin emails waiting; the oldest were dropped", "route", route, "dropped", fx.overflowed)
	}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
