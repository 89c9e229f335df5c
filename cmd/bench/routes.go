package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/generate"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

// dlqStream is the forwarder's default dead-letter stream, which also holds
// the routes' state events.
const dlqStream = "EZSSH_AUDIT_DLQ"

// configureRoutes creates the bucket EZSSH_SIEM and writes an enabled
// huntress entry for every subscription in subs, to the collector url(sub),
// several at a time. Every entry's updated_at is an hour ago, before any
// event of the backlog, so that each route's consumer delivers the whole
// backlog. It returns how long the writes took.
func configureRoutes(ctx context.Context, st *stage, subs []string, url func(sub string) string) (time.Duration, error) {
	kv, err := routes.EnsureBucket(ctx, st.js, 1)
	if err != nil {
		return 0, err
	}
	updated := time.Now().Add(-time.Hour)
	start := time.Now()
	const writers = 16
	work := make(chan string)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for sub := range work {
				if errs[w] != nil {
					continue
				}
				e := &routes.Entry{Enabled: true, Provider: routes.ProviderHuntress, HECURL: url(sub), HECToken: benchToken, AuthScheme: "Splunk", UpdatedAt: updated}
				v, err := e.Encode()
				if err == nil {
					_, err = kv.Put(ctx, sub, v)
				}
				if err != nil {
					errs[w] = fmt.Errorf("route %s: %w", sub, err)
				}
			}
		})
	}
	for _, sub := range subs {
		work <- sub
	}
	close(work)
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// routeScale is phase (r): Routes subscription routes configured, the
// backlog of --events spread over BusyRoutes of them, every route to the
// one collector, and one forwarder with no global route, timed from its
// start until the collector holds every distinct EventId.
func (b *bench) routeScale(ctx context.Context, fsync bool, res *Results) (*RouteScale, error) {
	name := phaseName("r", fsync)
	st, err := newStage(ctx, b.root, name, fsync)
	if err != nil {
		return nil, err
	}
	defer st.close()
	col, err := startCountingCollector(b.opts.events)
	if err != nil {
		return nil, err
	}
	defer col.Close()

	n, busy := b.opts.routes, b.opts.busyRoutes
	g := generate.New(generate.Options{Subscriptions: busy, Seed: 3})
	// The busy routes are spread evenly among the idle ones, so that the
	// forwarder, which sets the routes up in the bucket's order, meets them
	// at its own pace.
	subs := make([]string, n)
	for k, sub := range g.Subscriptions() {
		subs[k*(n/busy)] = sub
	}
	for k := range subs {
		if subs[k] == "" {
			subs[k] = fmt.Sprintf("sub-idle-%05d", k)
		}
	}
	b.logf("phase %s: configuring %d routes (%d busy)", name, n, busy)
	conf, err := configureRoutes(ctx, st, subs, func(string) string { return col.URL() })
	if err != nil {
		return nil, err
	}
	b.logf("phase %s: publishing %d events over %d subscriptions (%s)", name, b.opts.events, busy, mode(fsync))
	pub, err := st.publishEach(ctx, b.opts.events, func(int) []byte { body, _ := g.NextBody(); return body })
	if err != nil {
		return nil, err
	}

	b.logf("phase %s: draining with one forwarder and %d routes", name, n)
	start, cpu0 := time.Now(), selfCPU()
	fl, err := b.startFleet(ctx, name, 1, st.url(), "")
	if err != nil {
		return nil, err
	}
	defer fl.kill()
	// The consumers are counted until they are all there, even after the
	// drain (the idle routes' may come last), and the forwarder is stopped,
	// its peak RSS read, only then: the peak is that of every route set up.
	pollCtx, stopPoll := context.WithDeadline(ctx, start.Add(b.opts.drainTimeout))
	defer stopPoll()
	consumers := make(chan time.Duration, 1)
	go func() { consumers <- st.waitConsumers(pollCtx, n, start) }()
	err = col.waitFor(ctx, b.opts.events, b.opts.drainTimeout, fl.exited)
	took, benchCPU := time.Since(start), selfCPU()-cpu0
	if err != nil {
		stopPoll()
		<-consumers
		return nil, fl.explain(err)
	}
	var ready time.Duration
	select {
	case ready = <-consumers:
	case <-fl.exited:
		stopPoll()
		<-consumers
		return nil, fl.explain(fmt.Errorf("%w while its routes were set up", errForwarderExited))
	}
	stats, err := fl.stop()
	if err != nil {
		return nil, err
	}
	for _, sub := range g.Subscriptions() {
		if err := st.waitDrained(ctx, routes.ConsumerName(consumerName, sub), 5*time.Second); err != nil {
			res.Warnings = append(res.Warnings, "phase "+name+": after SIGTERM: "+err.Error())
		}
	}
	if ready == 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("phase %s: the stream did not have all %d consumers within %v", name, n, b.opts.drainTimeout))
	}

	events := b.opts.events
	out := &RouteScale{
		Forwarding: Forwarding{
			Drain:        Drain{Events: events, PublishSeconds: secs(pub), PublishRate: perSecond(events, pub), Seconds: secs(took), Rate: perSecond(events, took), BenchCPUSeconds: secs(benchCPU)},
			Instances:    1,
			CPUSeconds:   secs(stats[0].CPU),
			CPUPer100k:   stats[0].CPU.Seconds() * 100_000 / float64(events),
			PeakRSSBytes: stats[0].PeakRSS,
		},
		Routes:           n,
		BusyRoutes:       busy,
		ConfigureSeconds: secs(conf),
		ConsumersSeconds: secs(ready),
	}
	_, out.Duplicates = col.distinct()
	return out, nil
}

// waitConsumers polls the audit stream every 100ms until it has n
// consumers, and returns how long after start that was, or 0 if ctx ended
// first.
func (s *stage) waitConsumers(ctx context.Context, n int, start time.Time) time.Duration {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if info, err := s.stream.Info(ctx); err == nil && info.State.Consumers >= n {
			return time.Since(start)
		}
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
		}
	}
}

// isolation is phase (i): the same backlogs drained three times, on a fresh
// server each, with the first route's HEC healthy, answering 503, and
// hanging.
func (b *bench) isolation(ctx context.Context, fsync bool) (*Isolation, error) {
	out := &Isolation{Routes: b.opts.isolationRoutes, EventsPerRoute: b.opts.routeEvents, HECTimeout: secs(b.opts.hecTimeout)}
	for _, f := range []int32{faultNone, fault503, faultHang} {
		run, err := b.isolationRun(ctx, fsync, f)
		if err != nil {
			return nil, fmt.Errorf("first route's HEC %s: %w", faultName(f), err)
		}
		switch f {
		case faultNone:
			out.Healthy = run
		case fault503:
			out.Unavailable = run
			out.UnavailableRatio = run.OthersRate / out.Healthy.OthersRate
		case faultHang:
			out.Hanging = run
			out.HangingRatio = run.OthersRate / out.Healthy.OthersRate
		}
	}
	return out, nil
}

// isolationRun is one drain of phase (i): each route to its own collector,
// the first one answering with fault until the other routes are drained,
// and then healthy until its own events have arrived too.
func (b *bench) isolationRun(ctx context.Context, fsync bool, fault int32) (*IsolationRun, error) {
	name := phaseName("i-"+faultName(fault), fsync)
	st, err := newStage(ctx, b.root, name, fsync)
	if err != nil {
		return nil, err
	}
	defer st.close()
	n, per := b.opts.isolationRoutes, b.opts.routeEvents
	g := generate.New(generate.Options{Subscriptions: n, Seed: 4})
	subs := g.Subscriptions()
	cols := make([]*collector, n)
	urls := make(map[string]string, n)
	for k, sub := range subs {
		c, err := startSubCollector(per, sub)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		cols[k], urls[sub] = c, c.URL()
	}
	cols[0].setFault(fault)
	if _, err := configureRoutes(ctx, st, subs, func(sub string) string { return urls[sub] }); err != nil {
		return nil, err
	}
	b.logf("phase %s: publishing %d events to each of %d routes (%s)", name, per, n, mode(fsync))
	pub, err := st.publishEach(ctx, n*per, func(i int) []byte {
		e := g.Next()
		e.SubscriptionId = subs[i%n]
		body, err := e.AppendJSON(make([]byte, 0, 2048))
		if err != nil {
			panic("bench: " + err.Error()) // every field is the generator's; cannot happen
		}
		return body
	})
	if err != nil {
		return nil, err
	}

	var env []string
	if b.opts.hecTimeout > 0 {
		env = append(env, "HUNTRESS_HEC_TIMEOUT="+b.opts.hecTimeout.String())
	}
	b.logf("phase %s: draining with one forwarder, the first route's HEC failing with %s", name, faultName(fault))
	start, cpu0 := time.Now(), selfCPU()
	fl, err := b.startFleet(ctx, name, 1, st.url(), "", env...)
	if err != nil {
		return nil, err
	}
	defer fl.kill()
	deadline := start.Add(b.opts.drainTimeout)
	waiting := cols[1:]
	if fault == faultNone {
		waiting = cols
	}
	if err := waitAll(ctx, waiting, per, deadline, fl.exited); err != nil {
		return nil, fl.explain(err)
	}
	out := &IsolationRun{Fault: faultName(fault), PublishSeconds: secs(pub), PublishRate: perSecond(n*per, pub)}
	var last time.Duration
	for _, c := range cols[1:] {
		d := c.reachedTime().Sub(start)
		last = max(last, d)
		out.OtherRouteSeconds = append(out.OtherRouteSeconds, secs(d))
	}
	out.OthersSeconds, out.OthersRate = secs(last), perSecond((n-1)*per, last)
	if fault == faultNone {
		out.FirstSeconds = secs(cols[0].reachedTime().Sub(start))
	} else {
		out.FirstDuringOutage, _ = cols[0].distinct()
		out.FailedRequests = cols[0].hurt.Load()
		b.logf("phase %s: the other routes drained in %.1f s; the first route's HEC is healthy again", name, last.Seconds())
		cols[0].setFault(faultNone)
		recovered := time.Now()
		if err := waitAll(ctx, cols[:1], per, recovered.Add(b.opts.drainTimeout), fl.exited); err != nil {
			return nil, fl.explain(fmt.Errorf("after its HEC recovered: %w", err))
		}
		out.FirstSeconds = secs(cols[0].reachedTime().Sub(recovered))
	}
	benchCPU := selfCPU() - cpu0
	stats, err := fl.stop()
	if err != nil {
		return nil, err
	}
	out.CPUSeconds, out.PeakRSSBytes, out.BenchCPUSeconds = secs(stats[0].CPU), stats[0].PeakRSS, secs(benchCPU)
	for _, c := range cols {
		_, dups := c.distinct()
		out.Duplicates += dups
		out.Misrouted += c.wrongSubscription()
	}
	if out.DeadLetters, out.FirstRouteStates, out.OtherRouteStates, err = st.deadLetters(ctx, subs[0]); err != nil {
		return nil, err
	}
	return out, nil
}

// waitAll waits until each collector has n distinct events, all at once,
// until deadline.
func waitAll(ctx context.Context, cols []*collector, n int, deadline time.Time, exited <-chan struct{}) error {
	errs := make([]error, len(cols))
	var wg sync.WaitGroup
	for k, c := range cols {
		wg.Go(func() {
			if err := c.waitFor(ctx, n, time.Until(deadline), exited); err != nil {
				errs[k] = fmt.Errorf("route %s: %w", c.sub, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, e := range errs {
			if errors.Is(e, errForwarderExited) {
				return e // every route says the same; once is enough
			}
		}
		return err
	}
	return nil
}

// deadLetters counts, in the dead-letter stream, the dead letters
// (ezssh.dlq.>), the state events of route first by state and those of
// every other route (ezssh.route.<route>.<state>). A stream that does not
// exist holds none.
func (s *stage) deadLetters(ctx context.Context, first string) (dead uint64, firstStates map[string]uint64, others uint64, err error) {
	stream, err := s.js.Stream(ctx, dlqStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil, 0, nil
	}
	if err != nil {
		return 0, nil, 0, err
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(pipeline.DLQSubjectPrefix+".>"))
	if err != nil {
		return 0, nil, 0, fmt.Errorf("dead-letter stream %s: %w", dlqStream, err)
	}
	for _, c := range info.State.Subjects {
		dead += c
	}
	info, err = stream.Info(ctx, jetstream.WithSubjectFilter(pipeline.RouteEventSubjectPrefix+".>"))
	if err != nil {
		return 0, nil, 0, fmt.Errorf("dead-letter stream %s: %w", dlqStream, err)
	}
	prefix := pipeline.RouteEventSubjectPrefix + "." + first + "."
	for subject, c := range info.State.Subjects {
		if state, ok := strings.CutPrefix(subject, prefix); ok {
			if firstStates == nil {
				firstStates = map[string]uint64{}
			}
			firstStates[state] += c
			continue
		}
		others += c
	}
	return dead, firstStates, others, nil
}
