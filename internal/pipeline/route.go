package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// Sink is a destination the pipeline delivers batches to. internal/huntress's
// *Client is one. Implementations must be safe for concurrent use.
type Sink interface {
	// Send delivers events as one request. It returns nil only when the
	// destination accepted all of them. Errors report their class through
	// delivery.Classified; an unclassified error is treated as retryable.
	Send(ctx context.Context, events []delivery.Event) error
	// Probe checks that the destination is reachable and accepts our
	// credentials, without delivering any event.
	Probe(ctx context.Context) error
}

// Route is one destination and the events it receives.
type Route struct {
	// Name identifies the route in logs, metrics, dead-letter subjects and
	// admin email. It must be a valid NATS subject token.
	Name string
	// Consumer is the durable consumer's name. Default: Name.
	Consumer string
	// FilterSubject selects the route's events. Default "ezssh.audit.>".
	FilterSubject string
	// Destination describes the destination for people (scheme and host).
	// It must never contain a secret.
	Destination string
	// StartTime, when set, makes a newly created consumer start at the
	// events published from this time on instead of the start of the stream.
	StartTime time.Time
	// Sink delivers the route's events.
	Sink Sink
	// UntilSeq, when set, ends the route at this stream sequence (a replay):
	// at the first later message it stops pulling, returns that message to
	// the consumer and finishes what it holds. RouteStats.Ended says so.
	UntilSeq uint64
	// Rate, when positive, limits the route to this many events a second.
	Rate float64
}

func (r Route) withDefaults() Route {
	if r.Consumer == "" {
		r.Consumer = r.Name
	}
	if r.FilterSubject == "" {
		r.FilterSubject = audit.SubjectAll
	}
	return r
}

// Validate reports a route that cannot run.
func (r Route) Validate() error {
	if !audit.ValidSubjectToken(r.Name) {
		return fmt.Errorf("pipeline: route name %q is not a valid subject token (letters, digits, '-' and '_')", r.Name)
	}
	if r.Consumer != "" && !audit.ValidSubjectToken(r.Consumer) {
		return fmt.Errorf("pipeline: route %s: consumer name %q is not valid", r.Name, r.Consumer)
	}
	if r.Sink == nil {
		return fmt.Errorf("pipeline: route %s has no sink", r.Name)
	}
	return nil
}
