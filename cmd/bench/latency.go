package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/generate"
)

// warmUp is the start of the latency phase left out of the percentiles.
const warmUp = time.Second

// latency is phase (c): one forwarder on an empty stream while events are
// published at a steady rate, each generated (RequestDate = now) just before
// its publish; latency is the collector's receipt minus RequestDate, so it
// includes the publish and its fsync.
func (b *bench) latency(ctx context.Context, fsync bool, res *Results) (*Latency, error) {
	name := phaseName("c", fsync)
	st, err := newStage(ctx, b.root, name, fsync)
	if err != nil {
		return nil, err
	}
	defer st.close()
	col, err := startCollector(b.opts.latencyRate * int(b.opts.latencyDuration/time.Second+1))
	if err != nil {
		return nil, err
	}
	defer col.Close()
	var prof *profiler
	if b.opts.forwarderProf != "" {
		// The steady stream after the warm-up, mostly.
		if prof, err = newProfiler(b.opts.forwarderProf+".latency", 5); err != nil {
			return nil, err
		}
	}
	fl, err := b.startFleet(ctx, name, 1, st.url(), col.URL(), prof.env()...)
	if err != nil {
		return nil, err
	}
	defer fl.kill()

	g := generate.New(generate.Options{Subscriptions: b.opts.subscriptions, Seed: 2})
	pub := audit.NewPublisher(st.js, audit.PublisherOptions{})
	if err := b.warm(ctx, st, col, fl, g, pub); err != nil {
		return nil, err
	}

	obs, err := startObserver(ctx, st.js, b.opts.latencyRate*int(b.opts.latencyDuration/time.Second+1))
	if err != nil {
		return nil, err
	}
	defer obs.stop()

	b.logf("phase %s: publishing %d events/s for %v (%s)", name, b.opts.latencyRate, b.opts.latencyDuration, mode(fsync))
	// A burst of 5ms' worth lets the publisher catch up after a late wake-up
	// instead of falling below the rate; it is still a steady stream.
	lim := rate.NewLimiter(rate.Limit(b.opts.latencyRate), max(1, b.opts.latencyRate/200))
	prof.start(ctx)
	defer prof.finish(res, name)
	start := time.Now()
	end := start.Add(b.opts.latencyDuration)
	published := 0
	for time.Now().Before(end) {
		if err := lim.Wait(ctx); err != nil {
			return nil, err
		}
		body, _ := g.NextBody()
		if err := pub.PublishRawAsync(ctx, body); err != nil {
			return nil, err
		}
		published++
	}
	took := time.Since(start)
	if err := pub.Flush(ctx); err != nil {
		return nil, err
	}
	if err := col.waitFor(ctx, published+1, b.opts.drainTimeout, fl.exited); err != nil { // +1: the warm-up event
		return nil, fl.explain(err)
	}
	stats, err := fl.stop()
	if err != nil {
		return nil, err
	}
	if err := st.waitDrained(ctx, consumerName, 5*time.Second); err != nil {
		res.Warnings = append(res.Warnings, "phase "+name+": after SIGTERM: "+err.Error())
	}
	obs.stop()

	measured := start.Add(warmUp)
	endToEnd := col.since(measured)
	if len(endToEnd) == 0 {
		return nil, fmt.Errorf("no events published after the %v warm-up", warmUp)
	}
	out := &Latency{
		TargetRate:     b.opts.latencyRate,
		Rate:           perSecond(published, took),
		Seconds:        secs(took),
		Published:      published,
		EndToEnd:       summarize(endToEnd),
		JetStream:      summarize(obs.since(measured)),
		AfterJetStream: summarize(col.after(obs, measured)),
		CPUSeconds:     secs(stats[0].CPU),
		CPUPer100k:     stats[0].CPU.Seconds() * 100_000 / float64(published),
		PeakRSSBytes:   stats[0].PeakRSS,
	}
	if out.Rate < 0.97*float64(out.TargetRate) {
		res.Warnings = append(res.Warnings, fmt.Sprintf("phase %s: the publisher reached only %.0f of %d events/s: the %s server could not store events as fast as asked, so they queued in the publisher (and that queueing counts as latency)", name, out.Rate, out.TargetRate, mode(fsync)))
	}
	if float64(out.JetStream.P99) > latencyTarget {
		what := "publish, fsync, delivery to a bare consumer"
		if !fsync {
			what = "publish, no fsync, delivery to a bare consumer"
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("phase %s: JetStream alone (%s) has a p99 of %.1f ms, over the %v ms target before the forwarder is involved", name, what, float64(out.JetStream.P99), latencyTarget))
	}
	return out, nil
}

// latencyTarget is the end-to-end p99 the forwarder is held to, in ms.
const latencyTarget = 20

// warm waits until the forwarder has created its consumer and one event has
// made the whole trip, so that the measured stream starts on a live pipeline.
func (b *bench) warm(ctx context.Context, st *stage, col *collector, fl *fleet, g *generate.Generator, pub *audit.Publisher) error {
	if err := st.waitConsumer(ctx, consumerName, time.Minute); err != nil {
		return fl.explain(err)
	}
	body, _ := g.NextBody()
	if err := pub.PublishRawAsync(ctx, body); err != nil {
		return err
	}
	if err := pub.Flush(ctx); err != nil {
		return err
	}
	if err := col.waitFor(ctx, 1, time.Minute, fl.exited); err != nil {
		return fl.explain(fmt.Errorf("warm-up event: %w", err))
	}
	return nil
}

// summarize returns the percentiles of sorted latencies.
func summarize(sorted []time.Duration) Percentiles {
	if len(sorted) == 0 {
		return Percentiles{}
	}
	return Percentiles{
		Count: len(sorted),
		P50:   millis(percentile(sorted, 0.50)),
		P90:   millis(percentile(sorted, 0.90)),
		P99:   millis(percentile(sorted, 0.99)),
		Max:   millis(sorted[len(sorted)-1]),
	}
}

// percentile returns the nearest-rank p-quantile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
