package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

const (
	// replayCheckEvery is how often a running replay asks the server whether
	// the window is settled even when its own counts do not say so yet (an
	// event counted twice, or one settled by another process).
	replayCheckEvery = 3 * time.Second
	// replayStuckAfter: a route past the end of its window pulls no more, so
	// an event of the window that comes back after that (its ack was lost)
	// would wait forever. When the route has been idle at its end this long
	// with events of the window unsettled, the replay starts it again.
	replayStuckAfter = 5 * time.Second
)

// run sends the window: it creates the replay consumer (or continues it),
// runs a one-route pipeline until every event of the window is settled, then
// deletes the consumer. Interrupted, it keeps the consumer and says how to
// resume.
func (r *replayer) run(ctx context.Context) error {
	client, err := r.f.openSink(ctx, r.js, r.p.Target, r.key, r.stderr)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	dest := destination(client.URL())

	var before uint64 // events of the window settled by earlier runs
	if r.cons == nil {
		if r.p.EndSeq == 0 {
			fmt.Fprintf(r.stdout, "nothing to replay: no %s event was stored before %s\n", r.p.Target.filter, replayTime(r.p.Until))
			return nil
		}
		if err := r.create(ctx); err != nil {
			return err
		}
	} else {
		left, err := r.remaining(ctx, true)
		if err != nil {
			return err
		}
		if !r.p.HasTotal {
			r.p.Total, r.p.HasTotal = left, true
		}
		before = r.p.Total - min(left, r.p.Total)
		fmt.Fprintf(r.stderr, "resuming replay %s (begun %s): %d of %d events left; window [%s, %s)\n",
			r.p.ID, replayTime(r.p.Created), left, r.p.Total, replayTime(r.p.Since), replayTime(r.p.Until))
		if left == 0 {
			if err := r.deleteConsumer(); err != nil {
				return err
			}
			fmt.Fprintf(r.stdout, "replay %s finished: every event of the window was already settled\n", r.p.ID)
			return nil
		}
	}
	if r.p.Total == 0 {
		if err := r.deleteConsumer(); err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "nothing to replay: no %s event was stored in [%s, %s)\n", r.p.Target.filter, replayTime(r.p.Since), replayTime(r.p.Until))
		return nil
	}

	name := replayConsumer(r.p.ID)
	route := pipeline.Route{
		Name:          name,
		Consumer:      name,
		FilterSubject: r.p.Target.filter,
		Destination:   dest,
		StartTime:     r.p.Since,
		Sink:          wrapSink(client),
		UntilSeq:      r.p.EndSeq,
		Rate:          r.p.Rate,
	}
	fmt.Fprintf(r.stderr, "replay %s: %d events (%s, stored in [%s, %s)) to %s (%s)\n",
		r.p.ID, r.p.Total, r.p.Target.filter, replayTime(r.p.Since), replayTime(r.p.Until), r.p.Target.describe(), dest)

	prog := newReplayProgress(r.stderr, "replay "+r.p.ID)
	prog.set(before, r.p.Total, before)
	prog.start()
	defer prog.stop()
	began := time.Now()
	var (
		delivered, deadLettered int64 // by this run, over its rounds
		end                     roundEnd
		runErr                  error
	)
	for {
		var st pipeline.RouteStats
		st, end, runErr = r.round(ctx, route, before+uint64(delivered+deadLettered), prog)
		delivered += st.Delivered
		deadLettered += st.DeadLettered
		if end != roundStuck {
			break
		}
		r.log.Info("events of the window came back after the replay reached its end; pulling them again")
	}
	done := before + uint64(delivered+deadLettered)
	prog.set(done, r.p.Total, before)
	prog.stop()
	took := time.Since(began).Round(time.Millisecond)

	if end != roundFinished {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := r.saveMetadata(sctx); err != nil {
			r.log.Warn("could not record the replay in its consumer; resume it with the same arguments", "err", err)
		}
		cancel()
		fmt.Fprintf(r.stderr, "replay %s stopped after %v: %d delivered, %d dead-lettered in this run; about %d of %d events settled\n",
			r.p.ID, took, delivered, deadLettered, min(done, r.p.Total), r.p.Total)
		fmt.Fprintf(r.stderr, "resume with: forwarder replay --resume %s (or the same arguments)\n", r.p.ID)
		if runErr != nil {
			return runErr
		}
		return errReplayInterrupted
	}
	if err := r.deleteConsumer(); err != nil {
		return err
	}
	fmt.Fprintf(r.stdout, "replay %s finished in %v: %d delivered, %d dead-lettered", r.p.ID, took, delivered, deadLettered)
	if before > 0 {
		fmt.Fprintf(r.stdout, " (and %d settled by earlier runs)", before)
	}
	fmt.Fprintf(r.stdout, "; %d events in the window\n", r.p.Total)
	if deadLettered > 0 {
		fmt.Fprintf(r.stdout, "dead letters: forwarder dlq list --route %s\n", name)
	}
	return nil
}

// roundEnd is why a round of the pipeline ended.
type roundEnd int

const (
	roundStopped  roundEnd = iota // interrupted, or the pipeline could not run
	roundFinished                 // every event of the window is settled
	roundStuck                    // idle at the end of the window with events unsettled
)

// round runs the pipeline on the replay's route until the window is
// settled, ctx is done, or the route is stuck at its end; it then stops the
// pipeline (which NAKs what it holds) and returns its counters. settled is
// what earlier runs and rounds settled.
func (r *replayer) round(ctx context.Context, route pipeline.Route, settled uint64, prog *dlqProgress) (pipeline.RouteStats, roundEnd, error) {
	fw, err := pipeline.New(r.js, r.pipelineConfig(ctx), []pipeline.Route{route}, r.log)
	if err != nil {
		return pipeline.RouteStats{}, roundStopped, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- fw.Run(runCtx) }()

	var (
		recorded   bool // the plan is back in the consumer's metadata
		lastCheck  = time.Now()
		stuckSince time.Time
		runErr     error
		stopped    bool // Run returned
		end        = roundStopped
	)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for end == roundStopped && !stopped && ctx.Err() == nil {
		select {
		case <-ctx.Done():
			continue
		case runErr = <-ran:
			stopped = true
			continue
		case <-tick.C:
		}
		if !recorded && fw.Ready() {
			// The pipeline set the consumer up again, without our metadata.
			if err := r.saveMetadata(ctx); err != nil {
				r.log.Warn("could not record the replay in its consumer; resume it with the same arguments", "err", err)
			}
			recorded = true
		}
		st := replayStats(fw, route.Name)
		done := settled + uint64(st.Delivered+st.DeadLettered)
		prog.setDone(done)
		idleAtEnd := st.Ended && st.InFlight == 0 && st.Received <= st.Delivered+st.DeadLettered
		since := time.Since(lastCheck)
		if since < replayCheckEvery && !((done >= r.p.Total || idleAtEnd) && since >= 200*time.Millisecond) {
			continue
		}
		lastCheck = time.Now()
		left, err := r.remaining(ctx, false)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				r.log.Warn("could not count the events left", "err", err)
			}
		case left == 0:
			end = roundFinished
		case !idleAtEnd:
			stuckSince = time.Time{}
		case stuckSince.IsZero():
			stuckSince = time.Now()
		case time.Since(stuckSince) >= replayStuckAfter:
			end = roundStuck
		}
	}
	stop()
	if !stopped {
		runErr = <-ran
	}
	if ctx.Err() != nil {
		end = roundStopped
	}
	return replayStats(fw, route.Name), end, runErr
}

// replayStats returns the counters of the replay's route.
func replayStats(fw *pipeline.Forwarder, name string) pipeline.RouteStats {
	for _, s := range fw.Stats() {
		if s.Route == name {
			return s
		}
	}
	return pipeline.RouteStats{Route: name}
}

// pipelineConfig is the forwarder's configuration for the replay: the batch
// settings of the flags, and the dead-letter stream as it is (its age limit
// and replicas are the running forwarders', not ours to change).
func (r *replayer) pipelineConfig(ctx context.Context) pipeline.Config {
	cfg := pipeline.Config{
		Stream:          r.f.stream,
		DLQStream:       r.f.dlqStream,
		MaxBatchEvents:  r.f.batchEvents,
		MaxBatchBytes:   r.f.batchBytes,
		MaxInFlight:     r.f.inFlight,
		AckWait:         replayAckWait,
		MaxAckPending:   r.maxAckPending(),
		ShutdownTimeout: r.f.shutdownTimeout,
	}
	if si := r.stream.CachedInfo(); si != nil {
		cfg.Replicas = si.Config.Replicas
	}
	if d, err := r.js.Stream(ctx, r.f.dlqStream); err == nil {
		cfg.DLQMaxAge, cfg.Replicas = d.CachedInfo().Config.MaxAge, d.CachedInfo().Config.Replicas
	}
	return cfg
}
