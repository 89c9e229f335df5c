package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// writeReport prints res for a person: each phase's numbers, then every
// target with its verdict and, when missed, by how much. With --fsync=both
// each of phases a, f, b and d is printed once per mode, and phase c as one
// table with the two modes side by side.
func writeReport(w io.Writer, res *Results) error {
	p := &printer{w: w, cpus: res.CPUs}
	modes := res.modes()
	both := len(modes) > 1
	p.f("EZSSH forwarder benchmark: %s, %d CPUs", res.Platform, res.CPUs)
	switch {
	case both:
		p.f("embedded nats-server, every phase twice: with fsync always (sync_interval: always, as shipped) and with no fsync (NoSync); a fresh server each time")
	case res.Fsync:
		p.f("embedded nats-server with fsync always (sync_interval: always), a fresh one per phase")
	default:
		p.f("embedded nats-server with NO fsync (NoSync: acknowledged before it is on disk, unlike the product), a fresh one per phase")
	}
	if res.AvgEventBytes > 0 {
		p.f("backlog: %s events of %d B on average, over %d subscriptions", count(float64(res.Events)), res.AvgEventBytes, res.Subscriptions)
	}
	// title adds the mode to a phase's title when both ran.
	title := func(m *Phases, format string, args ...any) {
		if both {
			format += " [" + mode(m.Fsync) + "]"
		}
		p.f("")
		p.f(format, args...)
	}
	if both {
		p.backlogPublish(modes)
	}
	for _, m := range modes {
		if a := m.Ceiling; a != nil {
			title(m, "(a) JetStream ceiling: bare durable pull consumer, PullMaxMessages %d, explicit ack", ceilingPull)
			p.publish(a)
			p.f("    drain          %8.2f s   %10s events/s", float64(a.Seconds), count(a.Rate))
			p.runs(a)
			p.f("    bench CPU      %8.2f s   (nats-server + bare consumer, during the drain)", float64(a.BenchCPUSeconds))
		}
	}
	for _, m := range modes {
		if f := m.Floor; f != nil {
			title(m, "(f) protocol floor: (a)'s consumer → batches of %d, %d in flight, huntress.Client.Send (gzip level 1) → (b)'s collector, ack after 2xx; informative", floorBatch, floorInFlight)
			p.publish(f)
			p.f("    drain          %8.2f s   %10s events/s", float64(f.Seconds), count(f.Rate))
			p.runs(f)
			p.f("    bench CPU      %8.2f s   (nats-server + floor pipeline + collector, during the drain)", float64(f.BenchCPUSeconds))
			if f.Seconds > 0 && p.cpus > 0 {
				p.f("    machine busy   %8.0f %%   ≈ bench CPU / (drain time × %d CPUs)",
					100*float64(f.BenchCPUSeconds)/(float64(f.Seconds)*float64(p.cpus)), p.cpus)
			}
			if m.Ceiling != nil {
				p.f("    ratio f/a      %8.2f   (what gzip, HTTP and the collector leave of the ceiling)", m.FloorRatio)
			}
			if m.Forwarder != nil {
				p.f("    ratio b/f      %8.2f   (the forwarder against the floor: its own overhead)", m.ForwarderFloorRatio)
			}
		}
	}
	for _, m := range modes {
		if b := m.Forwarder; b != nil {
			title(m, "(b) one forwarder → local HEC collector (gzip on), timed from process start to the last distinct event")
			p.forwarding(b)
			if m.Ceiling != nil {
				p.f("    ratio b/a      %8.2f", b.RatioToCeiling)
			}
		}
	}
	if both && modes[0].Latency != nil && modes[1].Latency != nil {
		p.latencyTable(modes[0].Latency, modes[1].Latency)
	} else {
		for _, m := range modes {
			if c := m.Latency; c != nil {
				title(m, "(c) end-to-end latency (collector receipt − RequestDate), one forwarder on an empty stream")
				p.latency(c)
			}
		}
	}
	for _, m := range modes {
		if d := m.ScaleOut; d != nil {
			title(m, "(d) scale-out: %d forwarders on one durable consumer", d.Instances)
			p.forwarding(d)
			if m.Forwarder != nil {
				p.f("    ratio d/b      %8.2f", m.ScaleOutRatio)
			}
		}
	}
	for _, m := range modes {
		if r := m.RouteScale; r != nil {
			title(m, "(r) routes at scale: %s subscription routes in EZSSH_SIEM, %d of them busy, all to one collector; one forwarder, no global route", count(float64(r.Routes)), r.BusyRoutes)
			p.routeScale(r)
		}
	}
	for _, m := range modes {
		if i := m.Isolation; i != nil {
			timeout := "the forwarder's default HEC timeout"
			if i.HECTimeout > 0 {
				timeout = fmt.Sprintf("HEC timeout %gs", float64(i.HECTimeout))
			}
			title(m, "(i) isolation: %d subscription routes, each to its own collector, %s events each; route 1's HEC fails until routes 2–%d are drained (%s)",
				i.Routes, count(float64(i.EventsPerRoute)), i.Routes, timeout)
			p.isolation(i)
		}
	}
	p.f("")
	p.f("targets")
	met := 0
	for _, t := range res.Targets {
		verdict := "ok"
		if t.Met {
			met++
		} else {
			verdict = "MISS " + missBy(t)
		}
		op := "≥"
		if t.AtMost {
			op = "≤"
		}
		p.f("    %-50s %12s   target %s %-10s  %s", t.Name, num(t.Value, t.Unit), op, num(t.Limit, t.Unit), verdict)
	}
	p.f("    %d of %d met", met, len(res.Targets))
	for _, warn := range res.Warnings {
		p.f("warning: %s", warn)
	}
	p.f("(took %.0f s)", float64(res.Elapsed))
	return p.err
}

// backlogPublish sets the backlog's publish rate of each mode side by side.
func (p *printer) backlogPublish(modes []*Phases) {
	var ds []*Drain
	for _, m := range modes {
		if d := m.backlogPublish(); d != nil {
			ds = append(ds, d)
		}
	}
	if len(ds) != len(modes) {
		return
	}
	p.f("")
	p.f("backlog publish: %s events, async with Nats-Msg-Id, every PubAck awaited", count(float64(ds[0].Events)))
	for i, m := range modes {
		p.f("    %-14s %8.2f s   %10s events/s", mode(m.Fsync), float64(ds[i].PublishSeconds), count(ds[i].PublishRate))
	}
	if ds[0].PublishRate > 0 && ds[1].PublishRate > 0 {
		p.f("    fsync cuts it by %6.0f %%   (no fsync is %.1f× faster)",
			100*(1-ds[0].PublishRate/ds[1].PublishRate), ds[1].PublishRate/ds[0].PublishRate)
	}
}

// latency prints phase (c) of one mode.
func (p *printer) latency(c *Latency) {
	p.f("    published      %8s events in %.1f s: %s events/s (asked %d/s); %s measured after the %v warm-up",
		count(float64(c.Published)), float64(c.Seconds), count(c.Rate), c.TargetRate, count(float64(c.EndToEnd.Count)), warmUp)
	p.percentiles("end to end", c.EndToEnd)
	p.percentiles("JetStream only", c.JetStream)
	p.percentiles("after JetStream", c.AfterJetStream)
	p.f("                   (JetStream only: delivery to a bare ordered consumer beside the forwarder − RequestDate;")
	p.f("                    after JetStream: per event, collector receipt − that delivery: the forwarder's own share)")
	p.f("    forwarder CPU  %8.2f s   (%.2f CPU-s per 100k events at this rate)   peak RSS %s",
		float64(c.CPUSeconds), c.CPUPer100k, mb(c.PeakRSSBytes))
}

// latencyTable prints phase (c) with fsync (f) and without (n) side by side.
func (p *printer) latencyTable(f, n *Latency) {
	p.f("")
	p.f("(c) end-to-end latency (collector receipt − RequestDate), one forwarder on an empty stream, %s events/s asked", count(float64(f.TargetRate)))
	p.f("                          %12s  %12s  %12s", "fsync always", "no fsync", "fsync's part")
	p.f("    published rate        %10s/s  %10s/s", count(f.Rate), count(n.Rate))
	p.f("    measured              %12s  %12s   events, after the %v warm-up", count(float64(f.EndToEnd.Count)), count(float64(n.EndToEnd.Count)), warmUp)
	for _, row := range []struct {
		name string
		f, n Percentiles
	}{
		{"end to end", f.EndToEnd, n.EndToEnd},
		{"JetStream only", f.JetStream, n.JetStream},
		{"after JetStream", f.AfterJetStream, n.AfterJetStream},
	} {
		for i, q := range []struct {
			name string
			f, n Millis
		}{{"p50", row.f.P50, row.n.P50}, {"p90", row.f.P90, row.n.P90}, {"p99", row.f.P99, row.n.P99}, {"max", row.f.Max, row.n.Max}} {
			name := ""
			if i == 0 {
				name = row.name
			}
			p.f("    %-15s %-4s %9.2f ms  %9.2f ms  %9.2f ms", name, q.name, float64(q.f), float64(q.n), float64(q.f-q.n))
		}
	}
	p.f("    forwarder CPU         %10.2f s  %10.2f s", float64(f.CPUSeconds), float64(n.CPUSeconds))
	p.f("    forwarder peak RSS    %12s  %12s", mb(f.PeakRSSBytes), mb(n.PeakRSSBytes))
	p.f("    (JetStream only: delivery to a bare ordered consumer beside the forwarder − RequestDate;")
	p.f("     after JetStream: per event, collector receipt − that delivery: the forwarder's own share;")
	p.f("     fsync's part: fsync always − no fsync, percentile by percentile)")
}

// printer writes lines and keeps the first error.
type printer struct {
	w    io.Writer
	cpus int
	err  error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
	}
}

func (p *printer) percentiles(name string, q Percentiles) {
	p.f("    %-14s p50 %7.2f ms   p90 %7.2f ms   p99 %7.2f ms   max %7.2f ms",
		name, float64(q.P50), float64(q.P90), float64(q.P99), float64(q.Max))
}

// runs prints the rates of every round when there were several; the
// figures around it are the median round's.
func (p *printer) runs(d *Drain) {
	if len(d.RunRates) < 2 {
		return
	}
	rates := make([]string, len(d.RunRates))
	for i, r := range d.RunRates {
		rates[i] = count(r)
	}
	p.f("    rounds         %8d     events/s: %s (the median round is shown)", len(d.RunRates), strings.Join(rates, ", "))
}

func (p *printer) publish(d *Drain) {
	p.f("    publish        %8.2f s   %10s events/s (backlog, not the forwarder)", float64(d.PublishSeconds), count(d.PublishRate))
}

func (p *printer) forwarding(f *Forwarding) {
	p.publish(&f.Drain)
	p.f("    drain          %8.2f s   %10s events/s", float64(f.Seconds), count(f.Rate))
	p.runs(&f.Drain)
	p.f("    forwarder CPU  %8.2f s   %10.2f CPU-s per 100k events", float64(f.CPUSeconds), f.CPUPer100k)
	p.f("    bench CPU      %8.2f s   (nats-server + collector, during the drain)", float64(f.BenchCPUSeconds))
	if f.Seconds > 0 && p.cpus > 0 {
		p.f("    machine busy   %8.0f %%   ≈ (forwarder + bench CPU) / (drain time × %d CPUs)",
			100*float64(f.CPUSeconds+f.BenchCPUSeconds)/(float64(f.Seconds)*float64(p.cpus)), p.cpus)
	}
	p.f("    peak RSS       %10s   (largest instance)", mb(f.PeakRSSBytes))
	if f.Duplicates > 0 {
		p.f("    duplicates     %8d     events the collector received more than once", f.Duplicates)
	}
}

// routeScale prints phase (r).
func (p *printer) routeScale(r *RouteScale) {
	ready := "not all seen within the drain timeout"
	if r.ConsumersSeconds > 0 {
		ready = fmt.Sprintf("%.2f s after the forwarder started", float64(r.ConsumersSeconds))
	}
	p.f("    routes         %8.2f s   to write the %s entries; all %s consumers: %s", float64(r.ConfigureSeconds), count(float64(r.Routes)), count(float64(r.Routes)), ready)
	p.forwarding(&r.Forwarding)
}

// isolation prints phase (i): the three runs side by side.
func (p *printer) isolation(i *Isolation) {
	runs := []*IsolationRun{i.Healthy, i.Unavailable, i.Hanging}
	others := fmt.Sprintf("routes 2–%d", i.Routes)
	p.f("    %-28s %14s %14s %14s", "route 1's HEC", "healthy", "answers 503", "hangs")
	row := func(name string, cell func(r *IsolationRun) string) {
		line := fmt.Sprintf("    %-28s", name)
		for _, r := range runs {
			v := "-"
			if r != nil {
				v = cell(r)
			}
			line += fmt.Sprintf(" %14s", v)
		}
		p.f("%s", line)
	}
	row("publish", func(r *IsolationRun) string { return count(r.PublishRate) + "/s" })
	row(others+" drained", func(r *IsolationRun) string { return fmt.Sprintf("%.2f s", float64(r.OthersSeconds)) })
	row(others+" rate", func(r *IsolationRun) string { return count(r.OthersRate) + "/s" })
	row("  ratio to healthy", func(r *IsolationRun) string {
		switch r {
		case i.Unavailable:
			return fmt.Sprintf("%.2f", i.UnavailableRatio)
		case i.Hanging:
			return fmt.Sprintf("%.2f", i.HangingRatio)
		}
		return ""
	})
	row("  each route done (min–max)", func(r *IsolationRun) string {
		lo, hi := minMax(r.OtherRouteSeconds)
		return fmt.Sprintf("%.1f–%.1f s", lo, hi)
	})
	row("route 1 HEC failed requests", func(r *IsolationRun) string { return strconv.FormatInt(r.FailedRequests, 10) })
	row("route 1 delivered in outage", func(r *IsolationRun) string { return strconv.Itoa(r.FirstDuringOutage) })
	row("route 1 all delivered", func(r *IsolationRun) string {
		if r.Fault == "none" {
			return fmt.Sprintf("%.2f s", float64(r.FirstSeconds))
		}
		return fmt.Sprintf("+%.2f s", float64(r.FirstSeconds))
	})
	row("route 1 state events", func(r *IsolationRun) string { return states(r.FirstRouteStates) })
	row("other routes' state events", func(r *IsolationRun) string { return strconv.FormatUint(r.OtherRouteStates, 10) })
	row("dead letters (ezssh.dlq.>)", func(r *IsolationRun) string { return strconv.FormatUint(r.DeadLetters, 10) })
	row("duplicates / misrouted", func(r *IsolationRun) string { return fmt.Sprintf("%d / %d", r.Duplicates, r.Misrouted) })
	row("forwarder CPU", func(r *IsolationRun) string { return fmt.Sprintf("%.2f s", float64(r.CPUSeconds)) })
	row("bench CPU", func(r *IsolationRun) string { return fmt.Sprintf("%.2f s", float64(r.BenchCPUSeconds)) })
	row("forwarder peak RSS", func(r *IsolationRun) string { return mb(r.PeakRSSBytes) })
	p.f("    (drained: forwarder start → last event of %s at their collectors; route 1 all delivered:", others)
	p.f("     healthy, from the start; else +time from its HEC's recovery, after %s were drained)", others)
}

// states prints route state counts as opened×1 recovered×1, sorted.
func states(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func minMax(v []Seconds) (lo, hi float64) {
	for k, s := range v {
		if k == 0 || float64(s) < lo {
			lo = float64(s)
		}
		hi = max(hi, float64(s))
	}
	return lo, hi
}

// missBy says how far a missed target is off.
func missBy(t Target) string {
	if t.Limit == 0 || t.Value == 0 {
		return ""
	}
	if t.AtMost {
		if t.Value < 2*t.Limit {
			return fmt.Sprintf("(%.0f%% over, by %s)", 100*(t.Value/t.Limit-1), num(t.Value-t.Limit, t.Unit))
		}
		return fmt.Sprintf("(%.1f× the limit, %s over)", t.Value/t.Limit, num(t.Value-t.Limit, t.Unit))
	}
	return fmt.Sprintf("(%.0f%% of the target, %s short)", 100*t.Value/t.Limit, num(t.Limit-t.Value, t.Unit))
}

func num(v float64, unit string) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	if unit == "" {
		return s
	}
	return s + " " + unit
}

func mb(b int64) string {
	if b <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f MB", float64(b)/1e6)
}

// count formats a rate or count with thousands separators.
func count(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
