package pipeline

import (
	"net/url"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// target is where a route delivers: its sink and the description people see.
// A route's target can change while it runs (a new URL or token); the next
// request uses the new one and nothing in hand is lost.
type target struct {
	sink        Sink
	destination string
	host        string // of destination, for the metrics' server.address
	// okAttrs are the attributes of a request it accepted, the common case,
	// built once per target rather than per request, with the measurement
	// options that carry them.
	okAttrs  attribute.Set
	okAdd    []metric.AddOption
	okRecord []metric.RecordOption
}

type targetRef struct{ p atomic.Pointer[target] }

func (t *targetRef) load() *target { return t.p.Load() }

func (t *targetRef) store(route string, sink Sink, destination string) {
	host := destination
	if u, err := url.Parse(destination); err == nil && u.Host != "" {
		host = u.Hostname()
	}
	ok := requestAttrs(route, host, 200, "success")
	opt := metric.WithAttributeSet(ok)
	t.p.Store(&target{sink: sink, destination: destination, host: host, okAttrs: ok, okAdd: []metric.AddOption{opt}, okRecord: []metric.RecordOption{opt}})
}

// setTarget switches the route to a new sink. A route paused because its
// destination failed is probed again at once: the change may be the fix.
func (r *runner) setTarget(sink Sink, destination string) {
	r.target.store(r.route.Name, sink, destination)
	select {
	case r.retarget <- struct{}{}:
	default:
	}
}
