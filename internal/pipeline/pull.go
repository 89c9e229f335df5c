package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
)

// puller owns the route's message iterator so that a pause, a lack of
// budget or a stop can end it from another goroutine.
type puller struct {
	mu      sync.Mutex
	it      jetstream.MessagesContext
	cancel  context.CancelFunc // ends the wait in the iterator's Next
	stopped bool
	// A paused consumer holds pull requests until they expire, and keeps
	// holding them when it resumes. So a new iterator waits for the resume
	// (resumed closes gate), not merely for the breaker, which closes on a
	// good probe just before it; and paused ends the wait of the iterator
	// drained for the pause, whose last request may still be held.
	gate   chan struct{} // closed while neither a pause nor a stalled batch loop holds the route
	paused context.CancelFunc
	// pausing and holding are what keeps the gate shut: the consumer's
	// pause (from drain to resumed) and a long wait of the batch loop (see
	// stall).
	pausing, holding bool
}

func newPuller() *puller {
	p := &puller{gate: make(chan struct{})}
	close(p.gate)
	return p
}

// set installs a new iterator, whose Next waits are ended by cancel, or
// drains it at once if the route was stopped, paused or held meanwhile.
func (p *puller) set(it jetstream.MessagesContext, cancel context.CancelFunc, stillWanted bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.it, p.cancel = it, cancel
	switch {
	case p.stopped:
		p.drainLocked(true, false)
	case !stillWanted:
		p.pausing = true // the breaker opened: the pause loop resumes it
		p.drainLocked(false, true)
	case p.pausing || p.holding:
		p.drainLocked(false, p.pausing)
	}
}

// drain ends the current iterator; its buffered messages are still returned.
// With stop, no new iterator is started afterwards; without, the consumer is
// being paused, and none is started until resumed.
func (p *puller) drain(stop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if stop {
		p.stopped = true
	} else {
		p.pausing = true
	}
	p.drainLocked(stop, !stop)
}

// drainLocked shuts the gate (unless stop) and drains the iterator; with
// pause, resumed later ends the wait of its Next.
func (p *puller) drainLocked(stop, pause bool) {
	if !stop {
		select {
		case <-p.gate:
			p.gate = make(chan struct{})
		default:
		}
	}
	if p.it == nil {
		return
	}
	p.it.Drain()
	if pause {
		p.paused = p.cancel
	}
	p.it, p.cancel = nil, nil
}

// openLocked opens the gate once nothing holds it.
func (p *puller) openLocked() {
	if p.pausing || p.holding {
		return
	}
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// hold stops the pulling while the batch loop is stalled (on), so that what
// was pulled can be taken and kept alive and nothing more arrives to wait
// unseen; and lets it start again when the stall ends.
func (p *puller) hold(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holding = on
	if on {
		p.drainLocked(false, false)
		return
	}
	p.openLocked()
}

// resumed is called once the consumer resumed on the server. It lets new
// iterators start (unless the batch loop is stalled), and ends the wait on
// the one drained for the pause: by now it has returned all it had buffered.
func (p *puller) resumed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused != nil {
		p.paused()
		p.paused = nil
	}
	p.pausing = false
	p.openLocked()
}

// waitResumed blocks while the route is paused or its batch loop stalled.
func (p *puller) waitResumed(ctx context.Context) error {
	p.mu.Lock()
	gate := p.gate
	p.mu.Unlock()
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pullLoop feeds the route's messages to the batch loop until ctx is done,
// then closes in. While the breaker is open it pulls nothing (the consumer is
// paused on the server too). Messages that arrive after the stop are NAKed:
// they were never in hand.
func (r *runner) pullLoop(ctx context.Context, in chan<- jetstream.Msg) {
	defer close(in)
	b := backoff.NewExponentialBackOff(backoff.WithMaxInterval(5*time.Second), backoff.WithMaxElapsedTime(0))
	for ctx.Err() == nil {
		if r.breaker.waitHealthy(ctx) != nil || r.pull.waitResumed(ctx) != nil {
			return
		}
		it, err := r.cons().Messages(jetstream.PullMaxMessages(r.prefetch))
		if err != nil {
			r.log.Warn("cannot pull from consumer; retrying", "err", err)
			if !sleepCtx(ctx, b.NextBackOff()) {
				return
			}
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				r.recreateConsumer(ctx)
			}
			continue
		}
		b.Reset()
		// The wait in Next ends with the iterator, or when the route
		// resumes after a pause (see puller.resumed). It does not end with
		// ctx: after a stop, the iterator's buffer is still drained and
		// NAKed below.
		nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		nextOpts := []jetstream.NextOpt{jetstream.NextContext(nctx)} // built once: Next allocates nothing per call
		r.pull.set(it, cancel, ctx.Err() == nil && r.breaker.isHealthy())
		for {
			m, err := it.Next(nextOpts...)
			if errors.Is(err, context.Canceled) {
				it.Stop() // a no-op when it was drained
				break     // resumed: a new iterator pulls from the resumed consumer
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			if err != nil {
				if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
					it.Stop()
					r.recreateConsumer(ctx)
					break
				}
				r.log.Debug("pull interrupted", "err", err)
				continue
			}
			if ctx.Err() != nil {
				_ = m.Nak()
				continue
			}
			in <- m
		}
		cancel()
	}
}

// sleepCtx waits d or until ctx is done; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
