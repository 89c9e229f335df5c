package pipeline

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// probeLoop handles the route's outages. When the breaker opens it stops
// pulling, pauses the consumer on the server so that no instance of the fleet
// pulls it, waits, and probes the destination without consuming events. A
// healthy probe closes the breaker and resumes the consumer; a failed one
// doubles the pause, up to PauseMax. Events stay in the stream meanwhile:
// an outage of any length dead-letters nothing and does not add to the
// delivery count of the events in line.
func (r *runner) probeLoop(ctx context.Context) {
	pb := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(r.cfg.PauseMin),
		backoff.WithMaxInterval(r.cfg.PauseMax),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.1),
		backoff.WithMaxElapsedTime(0),
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.breaker.opened:
		}
		if r.breaker.isHealthy() {
			continue
		}
		incident := r.breaker.last()
		r.logIncident(incident)
		opened := RouteEvent{State: StateOpened, Class: delivery.ClassOf(incident).String(), Error: errText(incident)}
		if status, code, ok := delivery.ReplyOf(incident); status != 0 {
			opened.Status = status
			if ok {
				opened.Code = &code
			}
		}
		r.publishRouteEvent(ctx, opened)
		r.pull.drain(false)
		pb.Reset()
		for !r.breaker.isHealthy() {
			wait := pb.NextBackOff()
			until := time.Now().Add(wait)
			r.pauseConsumer(ctx, until.Add(r.cfg.ProbeTimeout))
			r.checkAging(ctx)
			if !r.waitToProbe(ctx, wait) {
				return
			}
			if r.retargeted {
				pb.Reset() // new settings: probe them, then pause from the start
				r.retargeted = false
			}
			pctx, cancel := context.WithTimeout(ctx, r.cfg.ProbeTimeout)
			sink := r.target.load().sink
			err := r.breaker.do(func() error { return sink.Probe(pctx) })
			cancel()
			r.stats.probes.Add(1)
			if err != nil && ctx.Err() == nil {
				r.log.Debug("destination still failing", "err", err, "next_probe_in", wait)
			}
		}
		// Drain a wake-up left by the probes' own open transitions.
		select {
		case <-r.breaker.opened:
		default:
		}
		r.resumeConsumer(ctx)
		r.pull.resumed()
		r.log.Info("destination healthy again; route resumed", "destination", r.target.load().destination)
		r.publishRouteEvent(ctx, RouteEvent{State: StateRecovered})
	}
}

// logIncident logs the start of an outage once, with what to fix when the
// destination refuses our settings.
func (r *runner) logIncident(err error) {
	if delivery.ClassOf(err) == delivery.Misconfigured {
		r.log.Error("destination refuses our settings; route paused until they are fixed (check the HEC URL and token, then run test-connection)",
			"destination", r.target.load().destination, "err", err)
		return
	}
	r.log.Warn("destination failing; route paused, events held in the stream", "destination", r.target.load().destination, "err", err)
}

func (r *runner) pauseConsumer(ctx context.Context, until time.Time) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.js.PauseConsumer(cctx, r.cfg.Stream, r.route.Consumer, until); err != nil && ctx.Err() == nil {
		// This instance still pulls nothing; others find out through their
		// own breakers.
		r.log.Warn("cannot pause consumer on the server", "err", err)
		return
	}
	r.stats.pausedUntil.Store(until.UnixNano())
}

func (r *runner) resumeConsumer(ctx context.Context) {
	r.stats.pausedUntil.Store(0)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.js.ResumeConsumer(cctx, r.cfg.Stream, r.route.Consumer); err != nil && ctx.Err() == nil {
		r.log.Warn("cannot resume consumer on the server; it resumes by itself when the pause ends", "err", err)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return truncate(err.Error(), maxErrorHeader)
}

// waitToProbe waits d, or less when the route gets a new target. It reports
// whether ctx is still live.
func (r *runner) waitToProbe(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-r.retarget:
		r.retargeted = true
	}
	return true
}
