// Package pipeline moves EZSSH audit events from JetStream to their
// destinations: one durable pull consumer per route, adaptive batching, a
// breaker that pauses the consumer on the server while a destination is down,
// bisection of refused batches, and dead letters for what can never be
// delivered.
//
// A message is acknowledged only after its destination accepted its event, or
// after its dead letter was stored. Everything else goes back to the stream.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Forwarder runs routes. Create it with New; Run it once.
type Forwarder struct {
	cfg     Config
	js      jetstream.JetStream
	log     *slog.Logger
	runners []*runner
	ready   atomic.Bool
}

// New checks cfg and routes and returns a Forwarder. It does not touch the
// server: Run does. log may be nil.
func New(js jetstream.JetStream, cfg Config, routes []Route, log *slog.Logger) (*Forwarder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "pipeline")
	f := &Forwarder{cfg: cfg, js: js, log: log}
	seen := map[string]bool{}
	for _, rt := range routes {
		rt = rt.withDefaults()
		if err := rt.Validate(); err != nil {
			return nil, err
		}
		if seen[rt.Consumer] {
			return nil, fmt.Errorf("pipeline: two routes use consumer %q", rt.Consumer)
		}
		seen[rt.Consumer] = true
		f.runners = append(f.runners, newRunner(cfg, rt, js, log))
	}
	if len(f.runners) == 0 {
		return nil, errors.New("pipeline: no routes")
	}
	return f, nil
}

// Run creates the dead-letter stream and the routes' consumers, then delivers
// until ctx is done. It then stops pulling, lets the batches in hand finish for
// up to ShutdownTimeout, NAKs the rest and flushes the acknowledgements before
// it returns. It returns an error only when the routes cannot be set up.
func (f *Forwarder) Run(ctx context.Context) error {
	if _, err := EnsureDLQStream(ctx, f.js, f.cfg.DLQStream, 0, 0); err != nil {
		return err
	}
	suspects, err := EnsureSuspectBucket(ctx, f.js, f.cfg.SuspectBucket, 0)
	if err != nil {
		return err
	}
	for _, r := range f.runners {
		r.suspects = suspects
		if err := r.ensureConsumer(ctx); err != nil {
			return err
		}
		f.log.Info("route ready", "route", r.route.Name, "consumer", r.route.Consumer,
			"filter", r.route.FilterSubject, "destination", r.route.Destination)
	}
	f.ready.Store(true)
	var wg sync.WaitGroup
	for _, r := range f.runners {
		wg.Go(func() { r.run(ctx) })
	}
	wg.Wait()
	f.ready.Store(false)
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.js.Conn().FlushWithContext(fctx); err != nil {
		f.log.Warn("could not flush acknowledgements; those messages will be delivered again", "err", err)
	}
	return nil
}

// Ready reports whether every route's consumer is in place and the connection
// is up.
func (f *Forwarder) Ready() bool {
	return f.ready.Load() && f.js.Conn().IsConnected()
}

// Stats returns a snapshot of every route's counters.
func (f *Forwarder) Stats() []RouteStats {
	out := make([]RouteStats, 0, len(f.runners))
	for _, r := range f.runners {
		out = append(out, r.snapshot())
	}
	return out
}
