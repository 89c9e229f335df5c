package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// errStopping ends the retries of a batch when the route stops.
var errStopping = errors.New("pipeline: stopping")

// sendLoop delivers batches until the batch loop closes r.batches.
func (r *runner) sendLoop(ctx, hard context.Context) {
	for b := range r.batches {
		r.held.add(b)
		r.stats.inFlight.Add(int64(len(b.msgs)))
		sctx, span := r.startBatchSpan(hard, b.msgs, b.evs)
		r.deliver(ctx, sctx, b.msgs, b.evs)
		span.End()
		r.stats.inFlight.Add(-int64(len(b.msgs)))
		r.held.remove(b)
	}
}

// deliver settles every message of a batch: acked once the destination
// accepted its event, dead-lettered when the destination refuses the event
// itself, NAKed when the route stops first. A rejected or too large batch is
// split, guided by the destination's index hint when it gives one, until every
// good event is delivered and each refused one stands alone.
func (r *runner) deliver(ctx, hard context.Context, msgs []jetstream.Msg, evs []delivery.Event) {
	err := r.send(ctx, hard, evs)
	class := delivery.ClassOf(err)
	switch {
	case err == nil:
		r.settleAck(msgs)
		r.stats.delivered.Add(int64(len(msgs)))
		r.observeDelivered(hard, evs)
		r.stats.lastDelivery.Store(time.Now().UnixNano())
		return
	case class != delivery.Rejected && class != delivery.TooLarge:
		// Stopping: what was not delivered goes back to the stream.
		r.settleNak(msgs)
		return
	case len(msgs) == 1:
		r.deadLetter(hard, msgs[0], reasonRejected, err)
		r.release(msgs)
		return
	}
	for _, p := range splitAt(len(msgs), class, err) {
		r.deliver(ctx, hard, msgs[p[0]:p[1]], evs[p[0]:p[1]])
	}
}

// splitAt returns the index ranges to retry a refused batch of n events as: the
// refused event alone and the events around it when the destination named one,
// halves otherwise.
func splitAt(n int, class delivery.Class, err error) [][2]int {
	if i, ok := delivery.EventIndexOf(err); ok && class == delivery.Rejected && i >= 0 && i < n {
		parts := make([][2]int, 0, 3)
		if i > 0 {
			parts = append(parts, [2]int{0, i})
		}
		parts = append(parts, [2]int{i, i + 1})
		if i+1 < n {
			parts = append(parts, [2]int{i + 1, n})
		}
		return parts
	}
	return [][2]int{{0, n / 2}, {n / 2, n}}
}

// send delivers evs as one request, retrying transient failures with
// exponential backoff (Retry-After honoured) for as long as the route runs.
// While the breaker is open it waits for the prober to find the destination
// healthy again. It returns nil, a Rejected or TooLarge error for the caller
// to split, or another error when the route stopped before delivery.
//
// The first attempt uses hard, so a batch handed over at shutdown still gets
// its chance; no new attempt starts after ctx is done.
func (r *runner) send(ctx, hard context.Context, evs []delivery.Event) error {
	var retryAfter time.Duration
	op := func() error {
		if err := r.breaker.waitHealthy(ctx); err != nil {
			return backoff.Permanent(errStopping)
		}
		t := r.target.load()
		rctx, span := r.in.tracer.Start(hard, "POST", trace.WithSpanKind(trace.SpanKindClient))
		start := time.Now()
		err := r.breaker.do(func() error { return t.sink.Send(rctx, evs) })
		r.observeRequest(rctx, start, t, err)
		span.End()
		r.stats.requests.Add(1)
		switch c := delivery.ClassOf(err); {
		case err == nil:
			return nil
		case c == delivery.Rejected || c == delivery.TooLarge:
			return backoff.Permanent(err)
		case ctx.Err() != nil:
			return backoff.Permanent(err)
		}
		retryAfter = delivery.RetryAfterOf(err)
		return err
	}
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(r.cfg.RetryInitial),
		backoff.WithMaxInterval(r.cfg.RetryMax),
		backoff.WithMaxElapsedTime(0),
	)
	notify := func(err error, wait time.Duration) {
		r.stats.retries.Add(1)
		r.log.DebugContext(hard, "send failed; retrying", "class", delivery.ClassOf(err).String(), "err", err, "wait", wait)
	}
	return backoff.RetryNotify(op, backoff.WithContext(&retryAfterBackOff{BackOff: b, after: &retryAfter}, ctx), notify)
}

// retryAfterBackOff waits at least as long as the destination asked.
type retryAfterBackOff struct {
	backoff.BackOff
	after *time.Duration
}

func (b *retryAfterBackOff) NextBackOff() time.Duration {
	d := b.BackOff.NextBackOff()
	if *b.after > d {
		d = *b.after
	}
	*b.after = 0
	return d
}

// settleAck acknowledges messages whose events the destination accepted and
// gives their budget back.
func (r *runner) settleAck(msgs []jetstream.Msg) {
	for _, m := range msgs {
		if err := m.Ack(); err != nil {
			// The message comes back and is delivered again: a duplicate,
			// never a loss.
			r.stats.ackErrors.Add(1)
		}
	}
	r.release(msgs)
}

// settleNak returns messages in hand to the stream for redelivery and gives
// their budget back.
func (r *runner) settleNak(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.Nak()
	}
	r.stats.naked.Add(int64(len(msgs)))
	r.in.returned.Add(context.Background(), int64(len(msgs)), r.attrs)
	r.release(msgs)
}

// release gives back the budget of messages that are no longer in hand.
func (r *runner) release(msgs []jetstream.Msg) {
	n := 0
	for _, m := range msgs {
		n += int(r.budget.cost(len(m.Data())))
	}
	r.budget.sem.Release(int64(n))
}
