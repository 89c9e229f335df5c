// Package notifyfeed feeds the admin-email notifier from JetStream: one
// durable pull consumer, shared by the fleet, reads the dead letters and the
// route state changes of the dead-letter stream and hands them to a
// notify.Notifier, whose shared state lives in a KV bucket (Store).
//
// Because the consumer is shared, each message is handled by one instance;
// because it is durable and acknowledged only after the notifier recorded
// the alert, an alert survives a crash. The notifier's compare-and-set state
// makes the same outage reported by several instances one email.
package notifyfeed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/notify"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// Options configure Run. The zero value of each optional field means the
// documented default.
type Options struct {
	// Stream is the dead-letter stream. Default "EZSSH_AUDIT_DLQ".
	Stream string
	// Consumer is the durable consumer's name, the same on every instance.
	// Default "notifier".
	Consumer string
	// Notifier handles the alerts. Required.
	Notifier *notify.Notifier
	// TickEvery is how often the notifier looks for digests and emails due.
	// Default 30 seconds.
	TickEvery time.Duration
	// AckWait is the consumer's redelivery timeout. A message being handled
	// is kept alive before every Handle. Default 2 minutes.
	AckWait time.Duration
	// Since, when set, is where a consumer this Run creates starts: alerts
	// stored from Since on are handled. The forwarder passes the time it
	// started, so that an outage raised between its start and the creation
	// of the consumer still gets its email. Zero starts at new alerts only.
	// An existing consumer keeps its position either way.
	Since time.Time
	// Log receives the feed's logs. Default: discarded.
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Stream == "" {
		o.Stream = "EZSSH_AUDIT_DLQ"
	}
	if o.Consumer == "" {
		o.Consumer = "notifier"
	}
	if o.TickEvery <= 0 {
		o.TickEvery = 30 * time.Second
	}
	if o.AckWait <= 0 {
		o.AckWait = 2 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// fetchBatch bounds the messages one instance holds unacknowledged.
const fetchBatch = 16

// nakDelay is how long a message whose alert could not be recorded waits
// before it is offered again.
const nakDelay = 5 * time.Second

// Run consumes alerts and ticks the notifier until ctx is done. It waits for
// the stream to exist (the forwarder creates it) and creates the consumer if
// it is missing; failures are logged and retried, never returned, so that
// email trouble cannot stop delivery. It returns an error only for invalid
// options, and returns once everything it started has finished.
func Run(ctx context.Context, js jetstream.JetStream, opts Options) error {
	if opts.Notifier == nil {
		return errors.New("notifyfeed: no Notifier")
	}
	opts = opts.withDefaults()
	log := opts.Log.With("component", "notifyfeed")
	cons, err := waitConsumer(ctx, js, opts, log)
	if err != nil {
		return nil // ctx ended
	}
	log.Info("admin email notifier started", "stream", opts.Stream, "consumer", opts.Consumer, "window", opts.Notifier.Window())
	var wg sync.WaitGroup
	wg.Go(func() { consume(ctx, cons, opts.Notifier, log) })
	wg.Go(func() { tick(ctx, opts.Notifier, opts.TickEvery, log) })
	wg.Wait()
	return nil
}

// filterSubjects are the notifier's subjects in the dead-letter stream.
var filterSubjects = []string{pipeline.DLQSubjectPrefix + ".>", pipeline.RouteEventSubjectPrefix + ".>"}

// waitConsumer returns the shared consumer, creating it if needed, retrying
// until ctx ends.
func waitConsumer(ctx context.Context, js jetstream.JetStream, opts Options, log *slog.Logger) (jetstream.Consumer, error) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(200*time.Millisecond),
		backoff.WithMaxInterval(30*time.Second),
		backoff.WithMaxElapsedTime(0),
	)
	var cons jetstream.Consumer
	err := backoff.RetryNotify(func() error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := ensureConsumer(cctx, js, opts)
		cons = c
		return err
	}, backoff.WithContext(b, ctx), func(err error, wait time.Duration) {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			log.Debug("dead-letter stream not there yet", "stream", opts.Stream, "retry_in", wait)
			return
		}
		log.Warn("cannot set up the notifier's consumer; retrying", "err", err, "retry_in", wait)
	})
	return cons, err
}

// ensureConsumer creates the consumer to deliver only messages from
// opts.Since on (new ones when it is zero), so that a first start on an old
// backlog sends no flood of email. An existing
// consumer keeps its position; only its filter and ack wait are brought up to
// date.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, opts Options) (jetstream.Consumer, error) {
	c, err := js.Consumer(ctx, opts.Stream, opts.Consumer)
	if err == nil {
		cfg := c.CachedInfo().Config
		if slices.Equal(cfg.FilterSubjects, filterSubjects) && cfg.FilterSubject == "" && cfg.AckWait == opts.AckWait {
			return c, nil
		}
		cfg.FilterSubject, cfg.FilterSubjects, cfg.AckWait = "", filterSubjects, opts.AckWait
		return js.UpdateConsumer(ctx, opts.Stream, cfg)
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        opts.Consumer,
		Description:    "EZSSH SIEM forwarder: admin email notifier, shared by the fleet",
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        opts.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  1000,
		FilterSubjects: filterSubjects,
	}
	if !opts.Since.IsZero() {
		since := opts.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	c, err = js.CreateConsumer(ctx, opts.Stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return js.Consumer(ctx, opts.Stream, opts.Consumer) // another instance won the race
	}
	return c, err
}

func consume(ctx context.Context, cons jetstream.Consumer, n *notify.Notifier, log *slog.Logger) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(200*time.Millisecond),
		backoff.WithMaxInterval(10*time.Second),
		backoff.WithMaxElapsedTime(0),
	)
	for ctx.Err() == nil {
		batch, err := cons.Fetch(fetchBatch, jetstream.FetchContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				wait := b.NextBackOff()
				log.Warn("cannot fetch alerts; retrying", "err", err, "retry_in", wait)
				sleep(ctx, wait)
			}
			continue
		}
		for m := range batch.Messages() {
			if ctx.Err() != nil {
				_ = m.Nak() // stopping: let another instance have it now
				continue
			}
			handle(ctx, m, n, log)
		}
		if err := batch.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			wait := b.NextBackOff()
			log.Warn("fetching alerts failed; retrying", "err", err, "retry_in", wait)
			sleep(ctx, wait)
			continue
		}
		b.Reset()
	}
}

// handle records one message's alert and acknowledges it only once the
// notifier has it.
func handle(ctx context.Context, m jetstream.Msg, n *notify.Notifier, log *slog.Logger) {
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	a, err := decode(m.Subject(), m.Headers(), m.Data(), seq)
	if err != nil {
		log.Warn("ignoring a message that is no alert", "subject", m.Subject(), "err", err)
		_ = m.Term()
		return
	}
	_ = m.InProgress()
	err = n.Handle(ctx, a)
	switch {
	case err == nil:
		if err := m.Ack(); err != nil && ctx.Err() == nil {
			log.Debug("ack failed; the alert will be handled again and counted once", "err", err)
		}
	case errors.Is(err, notify.ErrInvalidAlert):
		log.Warn("ignoring an alert the notifier cannot use", "subject", m.Subject(), "err", err)
		_ = m.Term()
	default:
		if ctx.Err() == nil {
			log.Warn("cannot record alert; it will be offered again", "route", a.Route, "kind", a.Kind, "err", err, "retry_in", nakDelay)
		}
		_ = m.NakWithDelay(nakDelay)
	}
}

func tick(ctx context.Context, n *notify.Notifier, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := n.Tick(ctx); err != nil && ctx.Err() == nil {
				log.Warn("notifier tick failed", "err", fmt.Sprint(err))
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
