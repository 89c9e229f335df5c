package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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

	mu        sync.Mutex
	seen      map[string]struct{}
	dups      int
	bad       int
	latencies []sample
	want      int           // distinct events that close reached
	reached   chan struct{} // nil when nobody waits
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
	c := &collector{
		seen:      make(map[string]struct{}, sizeHint),
		latencies: make([]sample, 0, sizeHint),
	}
	rc, err := huntress.StartCollector("", huntress.CollectorOptions{
		Token:   benchToken,
		Keep:    -1,
		OnEvent: c.onEvent,
	})
	if err != nil {
		return nil, err
	}
	c.RunningCollector = rc
	return c, nil
}

func (c *collector) onEvent(body []byte, receivedAt time.Time) {
	f, err := audit.Inspect(body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.bad++
		return
	}
	if _, ok := c.seen[f.EventId]; ok {
		c.dups++
		return
	}
	c.seen[f.EventId] = struct{}{}
	c.latencies = append(c.latencies, sample{f.EventId, f.RequestDate, receivedAt.Sub(f.RequestDate)})
	c.signal()
}

// signal closes reached once want distinct events arrived. c.mu is held.
func (c *collector) signal() {
	if c.reached != nil && len(c.seen) >= c.want {
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
	c.want, c.reached = n, reached
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
