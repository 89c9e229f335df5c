package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// RouteEventSubjectPrefix starts the subjects of route state changes:
// ezssh.route.<route>.<state>. They are stored in the dead-letter stream so that
// the notifier reads dead letters and state changes through one durable
// consumer.
const RouteEventSubjectPrefix = "ezssh.route"

// Route states published as RouteEvent.State.
const (
	// StateOpened: the route's breaker opened; its consumer is paused and its
	// events are held in the stream.
	StateOpened = "opened"
	// StateRecovered: the destination is healthy again and delivery resumed.
	StateRecovered = "recovered"
	// StateAging: the route is still paused and its oldest held event will
	// age out of the stream at ExpiresAt.
	StateAging = "aging"
)

// RouteEvent is a change of a route's state, published by the instance that
// saw it. Several instances may report the same change; the notifier
// deduplicates. It never holds a secret.
type RouteEvent struct {
	Route       string    `json:"route"`
	Destination string    `json:"destination"`
	State       string    `json:"state"`
	Class       string    `json:"class,omitempty"`  // why it opened: retry or misconfigured
	Error       string    `json:"error,omitempty"`  // the last failure, scrubbed of secrets
	Status      int       `json:"status,omitempty"` // the destination's HTTP status, if it replied
	Code        *int      `json:"code,omitempty"`   // the destination's own code (HEC code), if it gave one
	At          time.Time `json:"at"`
	Instance    string    `json:"instance"`
	HeldEvents  uint64    `json:"held_events,omitempty"` // aging: events waiting for the route
	OldestAt    time.Time `json:"oldest_at,omitzero"`    // aging: when the oldest held event was stored
	ExpiresAt   time.Time `json:"expires_at,omitzero"`   // aging: when it will be removed from the stream
}

// RouteEventSubject is the subject of a route's state change.
func RouteEventSubject(route, state string) string {
	return RouteEventSubjectPrefix + "." + route + "." + state
}

var instanceName = func() string {
	h, err := os.Hostname()
	if err != nil {
		h = "unknown"
	}
	return h + "-" + nuid.Next()[:8]
}()

// publishRouteEvent stores a state change. Failing to store it only costs an
// email, never an event, so it is logged and not retried.
func (r *runner) publishRouteEvent(ctx context.Context, ev RouteEvent) {
	ev.Route = r.route.Name
	ev.Destination = r.target.load().destination
	ev.At = time.Now().UTC()
	ev.Instance = instanceName
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	m := nats.NewMsg(RouteEventSubject(r.route.Name, ev.State))
	m.Data = b
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.js.PublishMsg(pctx, m, jetstream.WithExpectStream(r.cfg.DLQStream)); err != nil && ctx.Err() == nil {
		r.log.Warn("cannot publish route state change; admins may not be told", "state", ev.State, "err", err)
	}
}
