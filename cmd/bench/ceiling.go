package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
)

// ceilingPull is the bare consumer's PullMaxMessages: generous, so that the
// ceiling is JetStream's and not the pull request's.
const ceilingPull = 2000

// bareConsumer is the configuration of the bench's own durable pull
// consumers, phase (a)'s and phase (f)'s: explicit ack and the forwarder's
// MaxAckPending.
func bareConsumer(durable string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: 20_000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// ceiling is phase (a): the rate at which a bare durable pull consumer in
// this process drains the backlog, acking each message and doing nothing
// else. Its consumer gets the forwarder's MaxAckPending, so the only
// difference between (a) and (b) is the forwarder's own work.
func (b *bench) ceiling(ctx context.Context, fsync bool) (*Drain, error) {
	name := phaseName("a", fsync)
	st, pub, err := b.backlogStage(ctx, name, fsync)
	if err != nil {
		return nil, err
	}
	defer st.close()
	cons, err := st.js.CreateOrUpdateConsumer(ctx, audit.StreamName, bareConsumer("bench-ceiling"))
	if err != nil {
		return nil, err
	}

	b.logf("phase %s: draining with a bare pull consumer", name)
	start, cpu0 := time.Now(), selfCPU()
	it, err := cons.Messages(jetstream.PullMaxMessages(ceilingPull))
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	waitCtx, cancel := context.WithTimeout(ctx, b.opts.drainTimeout)
	defer cancel()
	unblock := context.AfterFunc(waitCtx, it.Stop) // Next has no context of its own
	defer unblock()
	for n := 0; n < len(b.bodies); {
		m, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("only %d of %d messages drained within %v", n, len(b.bodies), b.opts.drainTimeout)
		}
		if err != nil {
			continue // a missed heartbeat or similar; the iterator carries on
		}
		if err := m.Ack(); err != nil {
			return nil, err
		}
		n++
	}
	took, cpu := time.Since(start), selfCPU()-cpu0
	if err := st.waitDrained(ctx, "bench-ceiling", 30*time.Second); err != nil {
		return nil, err
	}
	n := len(b.bodies)
	return &Drain{Events: n, PublishSeconds: secs(pub), PublishRate: perSecond(n, pub), Seconds: secs(took), Rate: perSecond(n, took), BenchCPUSeconds: secs(cpu)}, nil
}
