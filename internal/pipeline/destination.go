package pipeline

import "sync/atomic"

// target is where a route delivers: its sink and the description people see.
// A route's target can change while it runs (a new URL or token); the next
// request uses the new one and nothing in hand is lost.
type target struct {
	sink        Sink
	destination string
}

type targetRef struct{ p atomic.Pointer[target] }

func (t *targetRef) load() *target { return t.p.Load() }

func (t *targetRef) store(sink Sink, destination string) {
	t.p.Store(&target{sink: sink, destination: destination})
}

// setTarget switches the route to a new sink. A route paused because its
// destination failed is probed again at once: the change may be the fix.
func (r *runner) setTarget(sink Sink, destination string) {
	r.target.store(sink, destination)
	select {
	case r.retarget <- struct{}{}:
	default:
	}
}
