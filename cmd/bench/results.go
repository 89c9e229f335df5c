package main

import "time"

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
	// consumer). It competes with the forwarder for the same CPUs.
	BenchCPUSeconds Seconds `json:"bench_cpu_seconds"`
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
			add("forwarder / JetStream ceiling (b/a)", b.RatioToCeiling, 0.6, false, "")
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
	return ts
}
