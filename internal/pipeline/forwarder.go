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
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Forwarder runs routes: the ones given to New, and any set or removed while it
// runs. Create it with New; Run it once. Its methods are safe for concurrent
// use.
type Forwarder struct {
	cfg    Config
	js     jetstream.JetStream
	log    *slog.Logger
	budget *budget
	in     *instruments
	ready  atomic.Bool

	mu       sync.Mutex
	routes   map[string]*routeHandle
	runCtx   context.Context // nil until Run has set up the streams
	suspects jetstream.KeyValue
	wg       sync.WaitGroup
}

// routeHandle is a route and, once the forwarder runs, its runner.
type routeHandle struct {
	route  Route
	r      *runner
	cancel context.CancelFunc
	done   chan struct{}
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
	f := &Forwarder{
		cfg:    cfg,
		js:     js,
		log:    log.With("component", "pipeline"),
		budget: newBudget(cfg.MemoryBudget),
		routes: map[string]*routeHandle{},
	}
	in, err := newInstruments(cfg, f)
	if err != nil {
		return nil, fmt.Errorf("pipeline: metrics: %w", err)
	}
	f.in = in
	consumers := map[string]bool{}
	for _, rt := range routes {
		rt = rt.withDefaults()
		if err := rt.Validate(); err != nil {
			return nil, err
		}
		if f.routes[rt.Name] != nil || consumers[rt.Consumer] {
			return nil, fmt.Errorf("pipeline: two routes named %q or using consumer %q", rt.Name, rt.Consumer)
		}
		consumers[rt.Consumer] = true
		f.routes[rt.Name] = &routeHandle{route: rt}
	}
	return f, nil
}

// Run creates the dead-letter stream and the routes' consumers, then delivers
// until ctx is done. It then stops pulling, lets the batches in hand finish for
// up to ShutdownTimeout, NAKs the rest and flushes the acknowledgements before
// it returns. It returns an error only when the forwarder cannot be set up.
func (f *Forwarder) Run(ctx context.Context) error {
	if _, err := EnsureDLQStream(ctx, f.js, f.cfg.DLQStream, f.cfg.DLQMaxAge, f.cfg.Replicas); err != nil {
		return err
	}
	suspects, err := EnsureSuspectBucket(ctx, f.js, f.cfg.SuspectBucket, f.cfg.Replicas)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.suspects = suspects
	// The routes given to New are set up before Run says it is ready, so a
	// wrong setting fails the start.
	for _, h := range f.routes {
		h.r = f.newRunner(h.route)
		if err := h.r.ensureConsumer(ctx); err != nil {
			f.mu.Unlock()
			return err
		}
		f.log.Info("route ready", "route", h.route.Name, "consumer", h.route.Consumer,
			"filter", h.route.FilterSubject, "destination", h.route.Destination)
	}
	f.runCtx = ctx
	for _, h := range f.routes {
		f.startLocked(h)
	}
	f.mu.Unlock()
	f.ready.Store(true)
	f.wg.Go(func() { f.pollPending(ctx) })

	<-ctx.Done()
	f.ready.Store(false)
	f.wg.Wait() // every route stops with ctx
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.js.Conn().FlushWithContext(fctx); err != nil {
		f.log.Warn("could not flush acknowledgements; those messages will be delivered again", "err", err)
	}
	return nil
}

// newRunner builds a runner for rt. f.mu is held.
func (f *Forwarder) newRunner(rt Route) *runner {
	// Each route's client-side buffer shrinks as routes multiply, so that the
	// buffers together stay near the memory budget (about 2 KiB an event).
	prefetch := min(f.cfg.Prefetch, max(64, int(f.cfg.MemoryBudget/2048)/max(1, len(f.routes))))
	r := newRunner(f.cfg, rt, f.js, f.budget, prefetch, f.in, f.log)
	r.suspects = f.suspects
	return r
}

// startLocked runs h's runner until it is removed or the forwarder stops.
// f.mu is held and Run has started.
func (f *Forwarder) startLocked(h *routeHandle) {
	if h.r == nil {
		h.r = f.newRunner(h.route)
	}
	ctx, cancel := context.WithCancel(f.runCtx)
	h.cancel, h.done = cancel, make(chan struct{})
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(h.done)
		h.r.run(ctx)
	}()
}

// SetRoute adds a route, or changes the route of the same name. A change of
// destination only (sink, description) applies to the next request and loses
// nothing; a change of consumer or filter stops the old runner (NAKing what it
// held) and starts a new one. Safe to call before and during Run.
func (f *Forwarder) SetRoute(rt Route) error {
	rt = rt.withDefaults()
	if err := rt.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	old := f.routes[rt.Name]
	for name, h := range f.routes {
		if name != rt.Name && h.route.Consumer == rt.Consumer {
			f.mu.Unlock()
			return fmt.Errorf("pipeline: route %s: consumer %q is used by route %s", rt.Name, rt.Consumer, name)
		}
	}
	if old != nil && old.route.Consumer == rt.Consumer && old.route.FilterSubject == rt.FilterSubject {
		old.route = rt
		if old.r != nil {
			old.r.setTarget(rt.Sink, rt.Destination)
		}
		f.mu.Unlock()
		return nil
	}
	h := &routeHandle{route: rt}
	f.routes[rt.Name] = h
	if f.runCtx != nil && f.runCtx.Err() == nil {
		f.startLocked(h)
	}
	f.mu.Unlock()
	if old != nil {
		f.stop(old)
	}
	return nil
}

// RemoveRoute stops a route: it stops pulling, lets its batches in hand
// finish (up to ShutdownTimeout) and NAKs the rest. With deleteConsumer its
// durable consumer is deleted too; without, its events wait in the stream for
// the route to come back. Removing an unknown route is not an error.
func (f *Forwarder) RemoveRoute(ctx context.Context, name string, deleteConsumer bool) error {
	f.mu.Lock()
	h := f.routes[name]
	delete(f.routes, name)
	f.mu.Unlock()
	if h == nil {
		return nil
	}
	f.stop(h)
	if !deleteConsumer {
		return nil
	}
	err := f.js.DeleteConsumer(ctx, f.cfg.Stream, h.route.Consumer)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("pipeline: route %s: delete consumer %s: %w", name, h.route.Consumer, err)
	}
	return nil
}

// stop cancels a route's runner and waits for it.
func (f *Forwarder) stop(h *routeHandle) {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
}

// Ready reports whether the routes given to New are set up and the connection
// is up.
func (f *Forwarder) Ready() bool {
	return f.ready.Load() && f.js.Conn().IsConnected()
}

// Stats returns a snapshot of every route's counters, by route name.
func (f *Forwarder) Stats() []RouteStats {
	f.mu.Lock()
	out := make([]RouteStats, 0, len(f.routes))
	for _, h := range f.routes {
		if h.r != nil {
			out = append(out, h.r.snapshot())
		} else {
			out = append(out, RouteStats{Route: h.route.Name})
		}
	}
	f.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Route < out[j].Route })
	return out
}

// pollPending refreshes every route's pending count for the metrics.
func (f *Forwarder) pollPending(ctx context.Context) {
	t := time.NewTicker(f.cfg.PendingInterval)
	defer t.Stop()
	for {
		f.mu.Lock()
		runners := make([]*runner, 0, len(f.routes))
		for _, h := range f.routes {
			if h.r != nil && h.r.cons() != nil {
				runners = append(runners, h.r)
			}
		}
		f.mu.Unlock()
		for _, r := range runners {
			ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if info, err := r.cons().Info(ictx); err == nil {
				r.stats.pending.Store(int64(info.NumPending) + int64(info.NumAckPending))
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
