package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/delivery"
	"github.com/ezssh/siem-forwarder/internal/huntress"
)

// The floor's batching is the forwarder's default: batches of floorBatch
// events (pipeline MaxBatchEvents), floorInFlight of them sent at once
// (pipeline MaxInFlight).
const (
	floorBatch    = 500
	floorInFlight = 4
)

// floorConsumer is phase (f)'s durable consumer.
const floorConsumer = "bench-floor"

// floor is phase (f), the protocol floor: a minimal pipeline in this
// process that does only the work the protocol cannot skip. A bare durable
// pull consumer, configured as phase (a)'s, drains a fresh backlog into
// batches of floorBatch; floorInFlight workers each send one batch at a
// time with huntress.Client.Send (the forwarder's envelope, gzip level 1
// above 1 KiB, HTTP) to the collector phase (b) uses, and ack the batch's
// messages once Send returned nil. No validation, no retries, no metrics:
// any error fails the phase. It is timed as phase (b), from the start of the
// drain until the collector holds every distinct EventId, so (b)/(f) is the
// forwarder's own overhead and (f)/(a) what gzip, HTTP and the collector
// cost on this machine.
func (b *bench) floor(ctx context.Context, fsync bool) (*Drain, error) {
	name := phaseName("f", fsync)
	st, pub, err := b.backlogStage(ctx, name, fsync)
	if err != nil {
		return nil, err
	}
	defer st.close()
	col, err := startCountingCollector(len(b.bodies))
	if err != nil {
		return nil, err
	}
	defer col.Close()

	b.logf("phase %s: draining with a minimal pipeline (%d workers, batches of %d, huntress.Client.Send)", name, floorInFlight, floorBatch)
	took, cpu, err := floorDrain(ctx, st, col, len(b.bodies), b.opts.drainTimeout)
	if err != nil {
		return nil, err
	}
	n := len(b.bodies)
	return &Drain{Events: n, PublishSeconds: secs(pub), PublishRate: perSecond(n, pub), Seconds: secs(took), Rate: perSecond(n, took), BenchCPUSeconds: secs(cpu)}, nil
}

// floorDrain drains the n messages of st's audit stream through the floor's
// pipeline into col, and returns how long until col held n distinct events
// and the CPU the bench process used meanwhile. It returns once the
// consumer has nothing pending or unacknowledged.
func floorDrain(ctx context.Context, st *stage, col *collector, n int, timeout time.Duration) (took, cpu time.Duration, err error) {
	client, err := huntress.New(huntress.Config{URL: col.URL(), Token: benchToken})
	if err != nil {
		return 0, 0, err
	}
	defer client.CloseIdleConnections()
	cons, err := st.js.CreateOrUpdateConsumer(ctx, audit.StreamName, bareConsumer(floorConsumer))
	if err != nil {
		return 0, 0, err
	}

	start, cpu0 := time.Now(), selfCPU()
	it, err := cons.Messages(jetstream.PullMaxMessages(ceilingPull))
	if err != nil {
		return 0, 0, err
	}
	defer it.Stop()
	drainCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// The pipeline runs beside the wait on the collector; failed is closed
	// when it fails, which ends the wait, and done when it has returned.
	var pipeErr error
	failed, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		if pipeErr = floorPipeline(drainCtx, it, client, n, timeout); pipeErr != nil {
			close(failed)
		}
	}()
	stop := func() { cancel(); <-done }

	if err := col.waitFor(ctx, n, timeout, failed); err != nil {
		stop()
		if errors.Is(err, errForwarderExited) {
			got, _ := col.distinct()
			return 0, 0, fmt.Errorf("after %d of %d events arrived: %w", got, n, pipeErr)
		}
		return 0, 0, err
	}
	took, cpu = time.Since(start), selfCPU()-cpu0
	<-done // the last acks
	if pipeErr != nil {
		return 0, 0, pipeErr
	}
	if err := st.waitDrained(ctx, floorConsumer, 30*time.Second); err != nil {
		return 0, 0, err
	}
	return took, cpu, nil
}

// floorPipeline reads n messages from it into batches of floorBatch (the
// last one holds the rest) and hands them to floorInFlight workers, which
// send each with client and then ack its messages. It returns the first
// error; ctx's end stops it, and so does a failure, both by stopping it.
func floorPipeline(ctx context.Context, it jetstream.MessagesContext, client *huntress.Client, n int, timeout time.Duration) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	unblock := context.AfterFunc(ctx, it.Stop) // Next has no context of its own
	defer unblock()
	batches := make(chan []jetstream.Msg, floorInFlight)
	var wg sync.WaitGroup
	for range floorInFlight {
		wg.Go(func() {
			events := make([]delivery.Event, 0, floorBatch)
			for batch := range batches {
				if ctx.Err() != nil {
					continue // failed: let the reader finish
				}
				events = events[:0]
				for _, m := range batch {
					events = append(events, delivery.Event{Body: m.Data()}) // zero Time: the envelope says now
				}
				if err := client.Send(ctx, events); err != nil {
					cancel(fmt.Errorf("send a batch of %d events: %w", len(batch), err))
					continue
				}
				for _, m := range batch {
					if err := m.Ack(); err != nil {
						cancel(fmt.Errorf("ack: %w", err))
						break
					}
				}
			}
		})
	}

	err := func() error {
		defer close(batches)
		for read := 0; read < n; {
			batch := make([]jetstream.Msg, 0, min(floorBatch, n-read))
			for len(batch) < cap(batch) {
				m, err := it.Next()
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return fmt.Errorf("only %d of %d messages read", read, n)
				}
				if err != nil {
					continue // a missed heartbeat or similar; the iterator carries on
				}
				batch = append(batch, m)
				read++
			}
			select {
			case batches <- batch:
			case <-ctx.Done():
				return nil
			}
		}
		return nil
	}()
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		if errors.Is(cause, context.DeadlineExceeded) {
			return fmt.Errorf("not drained within %v", timeout)
		}
		return cause
	}
	return err
}
