package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/sony/gobreaker/v2"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// breaker is a route's circuit breaker and the signals built on it: senders
// wait on healthy while it is not closed, and the prober is woken when it
// opens.
type breaker struct {
	cb *gobreaker.CircuitBreaker[struct{}]

	mu      sync.Mutex
	healthy chan struct{} // closed while the breaker is closed
	opened  chan struct{} // one pending wake-up for the prober

	lastClass atomic.Int32 // class of the most recent failure
	lastErr   atomic.Value // error: the most recent failure, for logs and probes
}

func newBreaker(name string, failures int, onChange func(from, to gobreaker.State)) *breaker {
	b := &breaker{healthy: make(chan struct{}), opened: make(chan struct{}, 1)}
	close(b.healthy)
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name: name,
		// The prober decides when to try again (pausing the consumer meanwhile);
		// the breaker only has to be half-open by then.
		Timeout: 1,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return delivery.Class(b.lastClass.Load()) == delivery.Misconfigured ||
				c.ConsecutiveFailures >= uint32(failures)
		},
		// A destination that refuses an event or a size is up: those are the
		// events' problem, handled by bisection, not the destination's.
		IsSuccessful: func(err error) bool {
			c := delivery.ClassOf(err)
			return err == nil || c == delivery.Rejected || c == delivery.TooLarge
		},
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.mu.Lock()
			switch {
			case to == gobreaker.StateClosed:
				close(b.healthy)
			case from == gobreaker.StateClosed:
				b.healthy = make(chan struct{})
			}
			if to == gobreaker.StateOpen {
				select {
				case b.opened <- struct{}{}:
				default:
				}
			}
			b.mu.Unlock()
			if onChange != nil {
				onChange(from, to)
			}
		},
	})
	return b
}

// do runs f through the breaker and records the class of its failure.
func (b *breaker) do(f func() error) error {
	_, err := b.cb.Execute(func() (struct{}, error) {
		err := f()
		if err != nil && !errors.Is(err, context.Canceled) {
			b.lastClass.Store(int32(delivery.ClassOf(err)))
			b.lastErr.Store(errBox{err})
		}
		return struct{}{}, err
	})
	return err
}

type errBox struct{ error }

// last returns the most recent failure, or nil.
func (b *breaker) last() error {
	if v, ok := b.lastErr.Load().(errBox); ok {
		return v.error
	}
	return nil
}

// waitHealthy blocks while the breaker is not closed.
func (b *breaker) waitHealthy(ctx context.Context) error {
	b.mu.Lock()
	ch := b.healthy
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	default:
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isHealthy reports whether the breaker is closed.
func (b *breaker) isHealthy() bool {
	return b.cb.State() == gobreaker.StateClosed
}
