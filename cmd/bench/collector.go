package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/huntress"
)

// benchToken is the HEC token the bench's collector requires.
const benchToken = "bench-token"

// collector is a local HEC collector that counts the distinct EventIds it
// received and records how late each arrived.
type collector struct {
	*huntress.RunningCollector

	sub   string       // when set, the only SubscriptionId it should get
	light bool         // count EventIds only: no latency samples, 1 event in 64 validated
	fault atomic.Int32 // a fault (faultNone, fault503, faultHang) it answers with
	hurt  atomic.Int64 // requests it failed with its fault

	mu        sync.Mutex
	seen      map[string]struct{}
	dups      int
	bad       int
	misrouted int // events of another subscription than sub
	latencies []sample
	want      int           // distinct events that close reached
	reached   chan struct{} // nil when nobody waits
	reachedAt time.Time     // when want was reached
}

// Faults a collector can be told to answer with, for the isolation phase.
const (
	faultNone int32 = iota
	fault503        // answer 503 Server is busy, as an overloaded HEC
	faultHang       // read the request and never answer, until the client gives up
)

// faultName names a fault for people and JSON.
func faultName(f int32) string {
	switch f {
	case fault503:
		return "503"
	case faultHang:
		return "hang"
	}
	return "none"
}

// sample is one event's latency: its arrival (at the collector, or at the
// observer) minus its RequestDate.
type sample struct {
	id        string // EventId
	requested time.Time
	latency   time.Duration
}

// startCollector serves a collector on a free loopback port. sizeHint is the
// number of events expected.
func startCollector(sizeHint int) (*collector, error) {
	return startSubCollector(sizeHint, "")
}

// startCountingCollector serves a collector for the drain phases, where it
// shares the CPUs with what it measures: it only counts distinct EventIds,
// found without parsing the whole event, and validates one event in 64 to
// catch a forwarder that alters bodies. Byte-identical delivery itself is
// asserted by the tests, not here.
func startCountingCollector(sizeHint int) (*collector, error) {
	return serveCollector(&collector{light: true, seen: make(map[string]struct{}, sizeHint)})
}

// startSubCollector serves a collector that counts as misrouted every event
// not of subscription sub (unless sub is empty), and answers with the fault
// set by setFault.
func startSubCollector(sizeHint int, sub string) (*collector, error) {
	return serveCollector(&collector{
		sub:       sub,
		seen:      make(map[string]struct{}, sizeHint),
		latencies: make([]sample, 0, sizeHint),
	})
}

// serveCollector serves c, set up before it receives anything.
func serveCollector(c *collector) (*collector, error) {
	rc, err := huntress.StartCollector("", huntress.CollectorOptions{
		Token:   benchToken,
		Keep:    -1,
		OnEvent: c.onEvent,
		Fail:    c.fail,
	})
	if err != nil {
		return nil, err
	}
	c.RunningCollector = rc
	return c, nil
}

// setFault makes the collector answer every request (health probes too)
// with fault f from now on; faultNone makes it healthy again. Requests
// already hanging keep hanging until their client gives up.
func (c *collector) setFault(f int32) { c.fault.Store(f) }

// fail is the collector's huntress.CollectorOptions.Fail.
func (c *collector) fail(r *http.Request, _ [][]byte) (int, string, bool) {
	switch c.fault.Load() {
	case fault503:
		c.hurt.Add(1)
		return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
	case faultHang:
		c.hurt.Add(1)
		<-r.Context().Done() // the client timed out or went away
		return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
	}
	return 0, "", false
}

func (c *collector) onEvent(body []byte, receivedAt time.Time) {
	if c.light {
		if id, ok := eventIDOf(body); ok {
			c.countLight(id, body)
			return
		}
	}
	f, err := audit.Inspect(body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.bad++
		return
	}
	if c.sub != "" && f.SubscriptionId != c.sub {
		c.misrouted++
	}
	if _, ok := c.seen[f.EventId]; ok {
		c.dups++
		return
	}
	c.seen[f.EventId] = struct{}{}
	c.latencies = append(c.latencies, sample{f.EventId, f.RequestDate, receivedAt.Sub(f.RequestDate)})
	c.signal()
}

// countLight records id, validating one event in 64.
func (c *collector) countLight(id []byte, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen)%64 == 0 {
		if _, err := audit.Inspect(body); err != nil {
			c.bad++
			return
		}
	}
	if _, ok := c.seen[string(id)]; ok {
		c.dups++
		return
	}
	c.seen[string(id)] = struct{}{}
	c.signal()
}

// eventIDOf finds the EventId of a compact event body (as the bench's
// generator writes them) without parsing the rest.
func eventIDOf(body []byte) ([]byte, bool) {
	const key = `"EventId":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return nil, false
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j <= 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return nil, false
	}
	return rest[:j], true
}

// signal closes reached once want distinct events arrived. c.mu is held.
func (c *collector) signal() {
	if c.reached != nil && len(c.seen) >= c.want {
		c.reachedAt = time.Now()
		close(c.reached)
		c.reached = nil
	}
}

// distinct returns how many distinct events arrived and how many repeats.
func (c *collector) distinct() (n, dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen), c.dups
}

// errForwarderExited reports a forwarder that exited while it should drain.
var errForwarderExited = errors.New("a forwarder exited during the run")

// waitFor waits until n distinct events have arrived in all. It fails after
// timeout, or with errForwarderExited when exited is closed first. One
// caller at a time.
func (c *collector) waitFor(ctx context.Context, n int, timeout time.Duration, exited <-chan struct{}) error {
	c.mu.Lock()
	reached := make(chan struct{})
	c.want, c.reached, c.reachedAt = n, reached, time.Time{}
	c.signal()
	c.mu.Unlock()

	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-reached:
		return c.check()
	case <-exited:
		got, _ := c.distinct()
		return fmt.Errorf("%w after %d of %d events arrived", errForwarderExited, got, n)
	case <-t.C:
		got, _ := c.distinct()
		return fmt.Errorf("only %d of %d events arrived at the collector within %v", got, n, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reachedTime returns when the last waitFor's count was reached, zero if it
// was not.
func (c *collector) reachedTime() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reachedAt
}

// wrongSubscription returns how many events of another subscription than
// its own the collector received.
func (c *collector) wrongSubscription() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.misrouted
}

// check fails if the collector saw a body that is not a valid event.
func (c *collector) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bad > 0 {
		return fmt.Errorf("the collector received %d events that are not valid audit events", c.bad)
	}
	return nil
}

// after returns, sorted, how much later than the observer the collector got
// each event requested at or after t that both saw.
func (c *collector) after(o *observer, t time.Time) []time.Duration {
	o.mu.Lock()
	seen := make(map[string]time.Duration, len(o.samples))
	for _, s := range o.samples {
		if !s.requested.Before(t) {
			seen[s.id] = s.latency
		}
	}
	o.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, 0, len(seen))
	for _, s := range c.latencies {
		if js, ok := seen[s.id]; ok && !s.requested.Before(t) {
			out = append(out, s.latency-js)
		}
	}
	slices.Sort(out)
	return out
}

// since returns the sorted latencies of the events requested at or after t.
func (c *collector) since(t time.Time) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return sortedSince(c.latencies, t)
}
