package notify

import (
	"fmt"
	"time"
)

// Kind says what an Alert reports.
type Kind string

// Alert kinds.
const (
	// KindDeadLetter: an event was moved to the dead-letter queue.
	KindDeadLetter Kind = "dead_letter"
	// KindOpened: a route's breaker opened (destination failing or
	// misconfigured); its events are held.
	KindOpened Kind = "opened"
	// KindRecovered: the destination is healthy again and delivery resumed.
	KindRecovered Kind = "recovered"
	// KindAging: held events of a paused route will soon age out of the
	// stream.
	KindAging Kind = "aging"
)

// Dead-letter reasons (Alert.Reason).
const (
	ReasonInvalid       = "invalid"
	ReasonRejected      = "rejected"
	ReasonUndeliverable = "undeliverable"
)

// Outage classes (Alert.Class).
const (
	ClassRetry         = "retry"
	ClassMisconfigured = "misconfigured"
)

// Alert is one thing that happened to a route. Several instances of the
// fleet may report the same outage: the Notifier turns duplicates into one
// email. No field may hold a secret; error texts must already be scrubbed.
type Alert struct {
	Kind Kind
	// Route is the route's name. Required.
	Route string
	// Destination is the destination for people: scheme, host and path, never
	// a token or a query. Optional; Config.Destination fills it in.
	Destination string
	// Subscription is the EZSSH subscription of a dead letter (from its
	// original subject ezssh.audit.<subscription>.<kind>); empty when unknown.
	Subscription string
	// Reason of a dead letter: invalid, rejected or undeliverable.
	Reason string
	// Class of an outage: retry or misconfigured.
	Class string
	// Error is the last failure, already scrubbed of secrets.
	Error string
	// Status is the destination's HTTP status, 0 when it did not reply.
	Status int
	// Code is the destination's own code (HEC code), valid when HasCode.
	Code    int
	HasCode bool
	// At is when it happened. Zero means when it was handled.
	At time.Time
	// HeldEvents is the number of events waiting for a paused route (aging).
	HeldEvents uint64
	// ExpiresAt is when the oldest held event leaves the stream (aging).
	ExpiresAt time.Time
	// ID identifies the message the alert came from (for example the
	// dead-letter stream sequence), so that the same alert handled twice
	// after a crash is counted once. Empty disables that check.
	ID string
}

// Validate reports an alert the Notifier cannot act on.
func (a Alert) Validate() error {
	if !validRoute(a.Route) {
		return fmt.Errorf("%w: route %q is not a valid name (letters, digits, '-' and '_')", ErrInvalidAlert, a.Route)
	}
	switch a.Kind {
	case KindDeadLetter, KindOpened, KindRecovered, KindAging:
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidAlert, a.Kind)
	}
	return nil
}

// validRoute accepts the route names the pipeline accepts; they are also
// valid store keys.
func validRoute(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}
