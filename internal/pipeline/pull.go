package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
)

// puller owns the route's message iterator so that a pause or a stop can end
// it from another goroutine.
type puller struct {
	mu      sync.Mutex
	it      jetstream.MessagesContext
	stopped bool
}

// set installs a new iterator, or drains it at once if the route was stopped
// or paused meanwhile.
func (p *puller) set(it jetstream.MessagesContext, stillWanted bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || !stillWanted {
		it.Drain()
	}
	p.it = it
}

// drain ends the current iterator; its buffered messages are still returned.
// With stop, no new iterator is started afterwards.
func (p *puller) drain(stop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if stop {
		p.stopped = true
	}
	if p.it != nil {
		p.it.Drain()
		p.it = nil
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
		if r.breaker.waitHealthy(ctx) != nil {
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
		r.pull.set(it, ctx.Err() == nil && r.breaker.isHealthy())
		for {
			m, err := it.Next()
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
