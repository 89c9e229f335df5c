package main

import (
	"fmt"
	"time"
)

// Results are everything one bench run measured; --json prints them as is.
// A phase that did not run is nil. Rates are events per second.
type Results struct {
	Events        int    `json:"events"`
	AvgEventBytes int    `json:"avg_event_bytes"`
	Subscriptions int    `json:"subscriptions"`
	CPUs          int    `json:"cpus"`
	Platform      string `json:"platform"`
	// Phases are the phases run in the first mode of --fsync: fsync before
	// acknowledge unless --fsync=false.
	Phases
	// NoFsync are the same phases again without fsync, with --fsync=both.
	NoFsync  *Phases  `json:"no_fsync,omitempty"`
	Targets  []Target `json:"targets"`
	Warnings []string `json:"warnings,omitempty"`
	Elapsed  Seconds  `json:"elapsed_seconds"`
	started  time.Time
}

// Phases are the phases run against servers of one fsync mode.
type Phases struct {
	// Fsync is true when the embedded servers fsynced every write before
	// acknowledging it (sync_interval: always), false with NoSync.
	Fsync         bool        `json:"fsync"`
	Ceiling       *Drain      `json:"ceiling,omitempty"`   // (a)
	Forwarder     *Forwarding `json:"forwarder,omitempty"` // (b)
	Latency       *Latency    `json:"latency,omitempty"`   // (c)
	ScaleOut      *Forwarding `json:"scale_out,omitempty"` // (d)
	ScaleOutRatio float64     `json:"scale_out_ratio,omitempty"`
	RouteScale    *RouteScale `json:"route_scale,omitempty"` // (r)
	Isolation     *Isolation  `json:"isolation,omitempty"`   // (i)

	// Floor is the protocol floor, (f): a minimal pipeline in the bench
	// process (phase a's consumer, huntress.Client.Send, ack after) into
	// phase b's collector. Informative: it has no target.
	Floor               *Drain  `json:"floor,omitempty"`
	FloorRatio          float64 `json:"floor_ratio,omitempty"`           // (f)/(a)
	ForwarderFloorRatio float64 `json:"forwarder_floor_ratio,omitempty"` // (b)/(f)

	// Publish is the backlog's publish alone, timed when --fsync=both but no
	// phase that drains the backlog ran.
	Publish *Drain `json:"publish,omitempty"`
}

// mode names an fsync mode for people.
func mode(fsync bool) string {
	if fsync {
		return "fsync always"
	}
	return "no fsync"
}

// modes returns the phases of each mode that ran, in order.
func (r *Results) modes() []*Phases {
	m := []*Phases{&r.Phases}
	if r.NoFsync != nil {
		m = append(m, r.NoFsync)
	}
	return m
}

// backlogPublish returns the first measure of the backlog's publish, or nil.
func (p *Phases) backlogPublish() *Drain {
	switch {
	case p.Publish != nil:
		return p.Publish
	case p.Ceiling != nil:
		return p.Ceiling
	case p.Floor != nil:
		return p.Floor
	case p.Forwarder != nil:
		return &p.Forwarder.Drain
	case p.ScaleOut != nil:
		return &p.ScaleOut.Drain
	}
	return nil
}

// Seconds is a duration printed as seconds in JSON.
type Seconds float64

func secs(d time.Duration) Seconds { return Seconds(d.Seconds()) }

// Millis is a duration printed as milliseconds in JSON.
type Millis float64

func millis(d time.Duration) Millis { return Millis(float64(d) / float64(time.Millisecond)) }

// Drain is the draining of one backlog.
type Drain struct {
	Events         int     `json:"events"`
	PublishSeconds Seconds `json:"publish_seconds"` // storing the backlog
	PublishRate    float64 `json:"publish_rate"`
	Seconds        Seconds `json:"drain_seconds"`
	Rate           float64 `json:"drain_rate"`
	// BenchCPUSeconds is the CPU the bench process used during the drain:
	// the embedded nats-server and the collector (phase a: the bare
	// consumer; phase f: the floor's pipeline and the collector). It
	// competes with the forwarder for the same CPUs.
	BenchCPUSeconds Seconds `json:"bench_cpu_seconds"`
	// RunRates are the drain rates of every round with --runs above 1, in
	// the order they ran; the fields above are the median round's.
	RunRates []float64 `json:"run_rates,omitempty"`
}

// Forwarding is a drain by forwarder processes, and what they used.
type Forwarding struct {
	Drain
	Instances      int     `json:"instances"`
	RatioToCeiling float64 `json:"ratio_to_ceiling,omitempty"` // (b)/(a)
	CPUSeconds     Seconds `json:"cpu_seconds"`                // all instances, user + system
	CPUPer100k     float64 `json:"cpu_seconds_per_100k_events"`
	PeakRSSBytes   int64   `json:"peak_rss_bytes"` // the largest instance's
	Duplicates     int     `json:"duplicates"`     // events the collector received more than once
}

// RouteScale is phase (r): one forwarder with no global route and Routes
// subscription routes in the bucket EZSSH_SIEM, all to one collector,
// draining a backlog spread over BusyRoutes of them.
type RouteScale struct {
	Forwarding
	Routes     int `json:"routes"`
	BusyRoutes int `json:"busy_routes"`
	// ConfigureSeconds is the writing of the Routes entries to the bucket.
	ConfigureSeconds Seconds `json:"configure_seconds"`
	// ConsumersSeconds is from the forwarder's start until the audit stream
	// had a consumer for every route (polled every 100ms, also after the
	// drain); 0 if that was not seen within --drain-timeout.
	ConsumersSeconds Seconds `json:"consumers_seconds"`
}

// Isolation is phase (i): Routes subscription routes, each to its own
// collector, each with a backlog of EventsPerRoute, drained by one forwarder
// three times on a fresh server: all healthy, then with the first route's
// collector answering 503, then with it never answering. The first route's
// collector fails until the other routes are drained, and is then healthy.
type Isolation struct {
	Routes         int           `json:"routes"`
	EventsPerRoute int           `json:"events_per_route"`
	HECTimeout     Seconds       `json:"hec_timeout_seconds,omitempty"` // 0: the forwarder's default
	Healthy        *IsolationRun `json:"healthy"`
	Unavailable    *IsolationRun `json:"unavailable"` // the first route's HEC answers 503
	Hanging        *IsolationRun `json:"hanging"`     // the first route's HEC never answers
	// The other routes' rate while the first one fails, over their rate
	// when all are healthy.
	UnavailableRatio float64 `json:"unavailable_ratio"`
	HangingRatio     float64 `json:"hanging_ratio"`
}

// runs returns the runs that took place, in order.
func (i *Isolation) runs() []*IsolationRun {
	var out []*IsolationRun
	for _, r := range []*IsolationRun{i.Healthy, i.Unavailable, i.Hanging} {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

// IsolationRun is one drain of phase (i). "Others" are every route but
// the first.
type IsolationRun struct {
	Fault          string  `json:"fault"` // the first route's HEC: none, 503 or hang
	PublishSeconds Seconds `json:"publish_seconds"`
	PublishRate    float64 `json:"publish_rate"`
	// OthersSeconds is from the forwarder's start until the last event of
	// the other routes arrived; OthersRate is their events over it.
	OthersSeconds Seconds `json:"others_seconds"`
	OthersRate    float64 `json:"others_rate"`
	// OtherRouteSeconds is, per other route, when its last event arrived.
	OtherRouteSeconds []Seconds `json:"other_route_seconds"`
	// FirstSeconds is, when healthy, from the start until the first route's
	// last event arrived; else from its recovery (once the others were
	// drained) until then.
	FirstSeconds Seconds `json:"first_route_seconds"`
	// FirstDuringOutage is how many of the first route's events arrived
	// while its HEC failed (none can).
	FirstDuringOutage int `json:"first_route_during_outage,omitempty"`
	// FailedRequests are the requests the first route's HEC failed.
	FailedRequests int64 `json:"failed_requests"`
	// FirstRouteStates counts the first route's state events (opened,
	// recovered …) in the dead-letter stream; OtherRouteStates are those of
	// every other route, which should have none.
	FirstRouteStates map[string]uint64 `json:"first_route_states,omitempty"`
	OtherRouteStates uint64            `json:"other_route_states"`
	// DeadLetters are the messages on ezssh.dlq.> in the dead-letter stream.
	DeadLetters     uint64  `json:"dead_letters"`
	Duplicates      int     `json:"duplicates"`
	Misrouted       int     `json:"misrouted"` // events at another subscription's collector
	CPUSeconds      Seconds `json:"cpu_seconds"`
	BenchCPUSeconds Seconds `json:"bench_cpu_seconds"`
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
}

// Latency is the end-to-end latency at a steady publish rate: collector
// receipt minus RequestDate, set just before the publish.
type Latency struct {
	TargetRate int     `json:"target_rate"`
	Rate       float64 `json:"rate"` // achieved publish rate
	Seconds    Seconds `json:"seconds"`
	Published  int     `json:"published"`
	// EndToEnd is collector receipt minus RequestDate, after the warm-up.
	EndToEnd Percentiles `json:"end_to_end"`
	// JetStream is delivery to a bare ordered consumer minus RequestDate:
	// the share of EndToEnd spent before the forwarder could see the event.
	JetStream Percentiles `json:"jetstream"`
	// AfterJetStream is, per event, collector receipt minus that delivery to
	// the bare consumer: the forwarder's own share (its pull, batch, gzip and
	// HEC request) plus the collector's.
	AfterJetStream Percentiles `json:"after_jetstream"`
	CPUSeconds     Seconds     `json:"cpu_seconds"`
	CPUPer100k     float64     `json:"cpu_seconds_per_100k_events"`
	PeakRSSBytes   int64       `json:"peak_rss_bytes"`
}

// Percentiles summarise latencies.
type Percentiles struct {
	Count int    `json:"count"`
	P50   Millis `json:"p50_ms"`
	P90   Millis `json:"p90_ms"`
	P99   Millis `json:"p99_ms"`
	Max   Millis `json:"max_ms"`
}

// Target is one goal the forwarder is held to.
type Target struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	AtMost bool    `json:"at_most"` // the value must be ≤ Limit; else ≥
	Unit   string  `json:"unit,omitempty"`
	Met    bool    `json:"met"`
}

func newTarget(name string, value, limit float64, atMost bool, unit string) Target {
	met := value >= limit
	if atMost {
		met = value <= limit
	}
	return Target{Name: name, Value: value, Limit: limit, AtMost: atMost, Unit: unit, Met: met}
}

// evaluate fills Targets from the phases that ran, in each mode. Targets
// measured without fsync say so in their name.
func (r *Results) evaluate() {
	r.Targets = nil
	for _, p := range r.modes() {
		r.Targets = append(r.Targets, p.targets()...)
	}
}

// ratioTarget is the least forwarder/ceiling drain rate ratio (b/a).
const ratioTarget = 0.6

// floorWarning says when the protocol floor (f) itself is under the ratio
// target, which the forwarder, doing more, cannot then reach; "" otherwise.
func (p *Phases) floorWarning() string {
	if p.Floor == nil || p.Ceiling == nil || p.FloorRatio >= ratioTarget {
		return ""
	}
	return fmt.Sprintf("phase f (%s): the protocol floor alone reaches %.2f of the ceiling, under the %.1f target before the forwarder's own work (validation, metrics, keep-alive) is added",
		mode(p.Fsync), p.FloorRatio, ratioTarget)
}

func (p *Phases) targets() []Target {
	suffix := ""
	if !p.Fsync {
		suffix = " (no fsync)"
	}
	var ts []Target
	add := func(name string, value, limit float64, atMost bool, unit string) {
		ts = append(ts, newTarget(name+suffix, value, limit, atMost, unit))
	}
	if b := p.Forwarder; b != nil {
		if p.Ceiling != nil {
			add("forwarder / JetStream ceiling (b/a)", b.RatioToCeiling, ratioTarget, false, "")
		}
		add("forwarder CPU per 100k events", b.CPUPer100k, 1, true, "CPU-s")
		add("forwarder peak RSS", float64(b.PeakRSSBytes)/1e6, 100, true, "MB")
	}
	if c := p.Latency; c != nil {
		add("end-to-end latency p99", float64(c.EndToEnd.P99), latencyTarget, true, "ms")
	}
	if p.ScaleOut != nil && p.Forwarder != nil {
		add("scale-out rate / single forwarder (d/b)", p.ScaleOutRatio, 0.8, false, "")
	}
	if r := p.RouteScale; r != nil {
		add(fmt.Sprintf("forwarder peak RSS, %d routes (r)", r.Routes), float64(r.PeakRSSBytes)/1e6, 200, true, "MB")
	}
	if i := p.Isolation; i != nil {
		if i.Unavailable != nil {
			add("other routes' rate, one HEC 503 / healthy (i)", i.UnavailableRatio, 0.9, false, "")
		}
		if i.Hanging != nil {
			add("other routes' rate, one HEC hangs / healthy (i)", i.HangingRatio, 0.9, false, "")
		}
		var dead uint64
		for _, run := range i.runs() {
			dead += run.DeadLetters
		}
		add("events dead-lettered (i)", float64(dead), 0, true, "")
	}
	return ts
}
