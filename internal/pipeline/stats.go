package pipeline

import (
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// routeStats are a route's counters, updated without locks on the hot path.
type routeStats struct {
	received     atomic.Int64
	delivered    atomic.Int64
	deadLettered atomic.Int64
	naked        atomic.Int64
	requests     atomic.Int64
	retries      atomic.Int64
	probes       atomic.Int64
	stalls       atomic.Int64
	ackErrors    atomic.Int64
	inFlight     atomic.Int64
	breaker      atomic.Int32 // gobreaker.State
	pausedUntil  atomic.Int64 // unix nanoseconds; 0 when not paused
	lastDelivery atomic.Int64 // unix nanoseconds
	ended        atomic.Bool  // a route with UntilSeq reached its end
	pending      atomic.Int64 // consumer pending + ack pending, polled; -1 before the first poll
}

// RouteStats is a snapshot of a route's counters since the process started.
type RouteStats struct {
	Route        string
	Received     int64 // messages pulled
	Delivered    int64 // events the destination accepted (and acked)
	DeadLettered int64
	Naked        int64 // returned to the stream at shutdown
	Requests     int64 // sends to the destination, retries included
	Retries      int64
	Probes       int64
	Stalls       int64 // waits of the batch loop (for a sender or for memory budget) long enough to stop pulling
	InFlight     int64 // events being sent right now
	Breaker      string
	PausedUntil  time.Time // zero when not paused
	LastDelivery time.Time // zero before the first
	Ended        bool      // the route reached its UntilSeq and pulls no more
}

func (r *runner) snapshot() RouteStats {
	s := &r.stats
	out := RouteStats{
		Route:        r.route.Name,
		Received:     s.received.Load(),
		Delivered:    s.delivered.Load(),
		DeadLettered: s.deadLettered.Load(),
		Naked:        s.naked.Load(),
		Requests:     s.requests.Load(),
		Retries:      s.retries.Load(),
		Probes:       s.probes.Load(),
		Stalls:       s.stalls.Load(),
		InFlight:     s.inFlight.Load(),
		Breaker:      gobreaker.State(s.breaker.Load()).String(),
		Ended:        s.ended.Load(),
	}
	if v := s.pausedUntil.Load(); v != 0 {
		out.PausedUntil = time.Unix(0, v)
	}
	if v := s.lastDelivery.Load(); v != 0 {
		out.LastDelivery = time.Unix(0, v)
	}
	return out
}
