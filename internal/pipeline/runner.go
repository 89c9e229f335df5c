package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/time/rate"
)

// runner runs one route: pull → batch → send → settle, with its breaker and
// prober. Its goroutines are owned by run.
type runner struct {
	cfg      Config
	route    Route // Sink and Destination are read from target instead
	js       jetstream.JetStream
	target   targetRef
	retarget chan struct{} // a new target: probe a paused route now
	// retargeted is set by the prober when a new target cut its wait short.
	retargeted bool
	budget     *budget
	prefetch   int
	limiter    *rate.Limiter // nil without a Rate
	in         *instruments
	attrs      metric.MeasurementOption // the route attribute, built once
	// addAttrs and recordAttrs hold attrs for the per-event measurements,
	// so that passing them allocates no variadic slice each time.
	addAttrs    []metric.AddOption
	recordAttrs []metric.RecordOption
	log         *slog.Logger
	// consumer is the route's jetstream.Consumer once set up; the pending
	// poll reads it from another goroutine.
	consumer atomic.Value
	breaker  *breaker
	pull     *puller
	held     heldSet
	batches  chan *batch
	// quarantine takes suspects of crash loops to be sent alone.
	quarantine chan suspect
	suspects   jetstream.KeyValue // solo attempts; nil when unavailable
	stats      routeStats
}

func newRunner(cfg Config, route Route, js jetstream.JetStream, b *budget, prefetch int, in *instruments, log *slog.Logger) *runner {
	r := &runner{
		in:         in,
		attrs:      routeAttrs(route.Name),
		cfg:        cfg,
		route:      route,
		js:         js,
		retarget:   make(chan struct{}, 1),
		budget:     b,
		prefetch:   prefetch,
		log:        log.With("route", route.Name),
		batches:    make(chan *batch),
		pull:       newPuller(),
		quarantine: make(chan suspect, 64),
	}
	r.addAttrs, r.recordAttrs = []metric.AddOption{r.attrs}, []metric.RecordOption{r.attrs}
	r.stats.pending.Store(-1)
	r.target.store(route.Name, route.Sink, route.Destination)
	if route.Rate > 0 {
		r.limiter = rate.NewLimiter(rate.Limit(route.Rate), max(1, int(route.Rate/10)))
	}
	r.breaker = newBreaker(route.Name, cfg.BreakerFailures, r.onBreakerChange)
	return r
}

// consumerConfig is the route's durable consumer. An existing consumer keeps
// where it delivers from and any pause in force.
func (r *runner) consumerConfig(existing *jetstream.ConsumerInfo) jetstream.ConsumerConfig {
	c := jetstream.ConsumerConfig{
		Durable:       r.route.Consumer,
		Description:   "EZSSH SIEM route " + r.route.Name,
		FilterSubject: r.route.FilterSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.cfg.AckWait,
		MaxAckPending: r.cfg.MaxAckPending,
		// Crash loops are detected by the forwarder, which dead-letters
		// instead of letting the server drop the message silently.
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if !r.route.StartTime.IsZero() {
		t := r.route.StartTime
		c.DeliverPolicy, c.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	if existing != nil {
		c.DeliverPolicy = existing.Config.DeliverPolicy
		c.OptStartTime = existing.Config.OptStartTime
		c.OptStartSeq = existing.Config.OptStartSeq
		if existing.Paused {
			c.PauseUntil = existing.Config.PauseUntil
		}
		// Whoever created the consumer may have described it (a replay
		// records its window there): keep that.
		if existing.Config.Description != "" {
			c.Description = existing.Config.Description
		}
		c.Metadata = existing.Config.Metadata
	}
	return c
}

// ensureConsumer creates or updates the route's durable consumer and keeps
// its handle.
func (r *runner) ensureConsumer(ctx context.Context) error {
	c, err := r.putConsumer(ctx)
	if err != nil {
		return err
	}
	r.consumer.Store(c)
	return nil
}

// cons returns the route's consumer handle, nil before it is set up.
func (r *runner) cons() jetstream.Consumer {
	c, _ := r.consumer.Load().(jetstream.Consumer)
	return c
}

// putConsumer creates the route's durable consumer, or updates the one there.
func (r *runner) putConsumer(ctx context.Context) (jetstream.Consumer, error) {
	var existing *jetstream.ConsumerInfo
	if c, err := r.js.Consumer(ctx, r.cfg.Stream, r.route.Consumer); err == nil {
		existing = c.CachedInfo()
	}
	c, err := r.js.CreateOrUpdateConsumer(ctx, r.cfg.Stream, r.consumerConfig(existing))
	if err != nil {
		return nil, fmt.Errorf("pipeline: route %s: consumer %s on stream %s: %w", r.route.Name, r.route.Consumer, r.cfg.Stream, err)
	}
	return c, nil
}

// setupSlots bounds the consumers being created at once, process-wide.
var setupSlots = make(chan struct{}, 8)

// setUp creates the consumer of a route added while the forwarder runs,
// retrying until it succeeds or ctx is done.
func (r *runner) setUp(ctx context.Context) bool {
	b := backoff.NewExponentialBackOff(backoff.WithMaxInterval(30*time.Second), backoff.WithMaxElapsedTime(0))
	err := backoff.RetryNotify(func() error {
		// Many routes appearing at once (a fleet starting with 1,000
		// subscriptions) would otherwise swamp the JetStream API.
		select {
		case setupSlots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-setupSlots }()
		return r.ensureConsumer(ctx)
	}, backoff.WithContext(b, ctx),
		func(err error, wait time.Duration) {
			r.log.Error("cannot set up route; retrying", "err", err, "wait", wait)
		})
	if err != nil {
		return false
	}
	r.log.Info("route ready", "consumer", r.route.Consumer, "filter", r.route.FilterSubject, "destination", r.target.load().destination)
	return true
}

// recreateGrace is how long a route whose consumer was deleted under it waits
// before putting it back. Whoever deleted it may be creating it again at
// another start (forwarder routes rewind): the route then adopts that one
// instead of racing it with its own.
var recreateGrace = 2 * time.Second

// recreateConsumer puts back the route's consumer after it was deleted under
// the running route, or adopts the one someone else put there meanwhile.
func (r *runner) recreateConsumer(ctx context.Context) {
	if r.route.UntilSeq > 0 {
		// A bounded route (a replay) whose consumer was deleted was finished
		// by someone else: recreating it would send the window again.
		r.log.Info("consumer deleted; bounded route ends")
		r.stats.ended.Store(true)
		r.pull.drain(true)
		return
	}
	if !sleepCtx(ctx, recreateGrace) {
		return
	}
	// r.consumer is kept (the pending poll reads it): a handle addresses the
	// consumer by name, so it pulls from the new one too.
	if _, err := r.putConsumer(ctx); err != nil {
		r.log.Error("cannot recreate consumer", "err", err)
		return
	}
	r.log.Info("consumer was deleted; pulling from it again", "consumer", r.route.Consumer)
}

// run runs the route until ctx is done and every batch in hand is settled or,
// after ShutdownTimeout, NAKed.
func (r *runner) run(ctx context.Context) {
	if r.cons() == nil && !r.setUp(ctx) {
		return
	}
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stop := context.AfterFunc(ctx, func() {
		r.pull.drain(true)
		time.AfterFunc(r.cfg.ShutdownTimeout, cancelHard)
	})
	defer stop()

	aux, cancelAux := context.WithCancel(hard)
	var auxWG sync.WaitGroup
	auxWG.Add(2)
	go func() { defer auxWG.Done(); r.keep(aux) }()
	go func() { defer auxWG.Done(); r.probeLoop(ctx) }()

	in := make(chan jetstream.Msg, 64)
	var wg sync.WaitGroup
	wg.Add(3 + r.cfg.MaxInFlight)
	go func() { defer wg.Done(); r.pullLoop(ctx, in) }()
	go func() { defer wg.Done(); r.batchLoop(hard, in) }()
	go func() { defer wg.Done(); r.quarantineLoop(ctx, hard) }()
	for range r.cfg.MaxInFlight {
		go func() { defer wg.Done(); r.sendLoop(ctx, hard) }()
	}
	wg.Wait()
	cancelAux()
	auxWG.Wait()
}

func (r *runner) onBreakerChange(from, to gobreaker.State) {
	r.stats.breaker.Store(int32(to))
	r.log.Debug("breaker state changed", "from", from.String(), "to", to.String())
}
