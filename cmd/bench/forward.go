package main

import (
	"context"
	"time"
)

// forward is phases (b) and (d): a fresh backlog drained by n forwarder
// processes sharing one durable consumer, timed from their start until the
// collector holds every distinct EventId. The forwarders are then stopped
// with SIGTERM, and what they used read from the kernel.
func (b *bench) forward(ctx context.Context, phase string, fsync bool, n int, res *Results) (*Forwarding, error) {
	phase = phaseName(phase, fsync)
	st, pub, err := b.backlogStage(ctx, phase, fsync)
	if err != nil {
		return nil, err
	}
	defer st.close()
	col, err := startCountingCollector(len(b.bodies))
	if err != nil {
		return nil, err
	}
	defer col.Close()

	b.logf("phase %s: draining with %d forwarder(s)", phase, n)
	var prof *profiler
	if n == 1 {
		// 2 seconds: about the drain of the default backlog.
		if prof, err = newProfiler(b.opts.forwarderProf, 2); err != nil {
			return nil, err
		}
	}
	start, cpu0 := time.Now(), selfCPU()
	fl, err := b.startFleet(ctx, phase, n, st.url(), col.URL(), prof.env()...)
	if err != nil {
		return nil, err
	}
	defer fl.kill()
	prof.start(ctx)
	if err := col.waitFor(ctx, len(b.bodies), b.opts.drainTimeout, fl.exited); err != nil {
		return nil, fl.explain(err)
	}
	took, benchCPU := time.Since(start), selfCPU()-cpu0
	prof.finish(res, phase)
	stats, err := fl.stop()
	if err != nil {
		return nil, err
	}
	if err := st.waitDrained(ctx, consumerName, 5*time.Second); err != nil {
		res.Warnings = append(res.Warnings, "phase "+phase+": after SIGTERM: "+err.Error())
	}

	events := len(b.bodies)
	out := &Forwarding{
		Drain:     Drain{Events: events, PublishSeconds: secs(pub), PublishRate: perSecond(events, pub), Seconds: secs(took), Rate: perSecond(events, took), BenchCPUSeconds: secs(benchCPU)},
		Instances: n,
	}
	var cpu time.Duration
	for _, s := range stats {
		cpu += s.CPU
		out.PeakRSSBytes = max(out.PeakRSSBytes, s.PeakRSS)
	}
	out.CPUSeconds = secs(cpu)
	out.CPUPer100k = cpu.Seconds() * 100_000 / float64(events)
	_, out.Duplicates = col.distinct()
	return out, nil
}
