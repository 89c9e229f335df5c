package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBenchSmall runs every phase with small numbers and checks that the
// JSON results and the report carry every number. It builds and runs the
// real forwarder, so it takes a while.
func TestBenchSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the forwarder; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"--events", "2000", "--latency-rate", "500", "--latency-duration", "2s", "--phases", "a,f,b,c,d,r,i", "--json",
		"--routes", "50", "--busy-routes", "5", "--route-events", "100", "--hec-timeout", "3s"}
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	var res Results
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("decode results: %v\n%s", err, stdout.String())
	}

	positive := map[string]float64{
		"a drain rate":   rateOf(res.Ceiling),
		"b drain rate":   rateOf(drainOf(res.Forwarder)),
		"b ratio":        field(res.Forwarder, func(f *Forwarding) float64 { return f.RatioToCeiling }),
		"f drain rate":   rateOf(res.Floor),
		"f ratio to a":   res.FloorRatio,
		"b ratio to f":   res.ForwarderFloorRatio,
		"b CPU":          field(res.Forwarder, func(f *Forwarding) float64 { return float64(f.CPUSeconds) }),
		"b peak RSS":     field(res.Forwarder, func(f *Forwarding) float64 { return float64(f.PeakRSSBytes) }),
		"d drain rate":   rateOf(drainOf(res.ScaleOut)),
		"d CPU":          field(res.ScaleOut, func(f *Forwarding) float64 { return float64(f.CPUSeconds) }),
		"d ratio":        res.ScaleOutRatio,
		"avg event size": float64(res.AvgEventBytes),
	}
	if r := res.RouteScale; r != nil {
		positive["r drain rate"] = r.Rate
		positive["r CPU"] = float64(r.CPUSeconds)
		positive["r peak RSS"] = float64(r.PeakRSSBytes)
		positive["r consumers ready"] = float64(r.ConsumersSeconds)
		if r.Routes != 50 || r.BusyRoutes != 5 || r.Events != 2000 {
			t.Errorf("phase r ran %d routes, %d busy, %d events; want 50, 5, 2000", r.Routes, r.BusyRoutes, r.Events)
		}
	} else {
		t.Error("no routes-at-scale results")
	}
	if i := res.Isolation; i != nil && i.Healthy != nil && i.Unavailable != nil && i.Hanging != nil {
		positive["i 503 ratio"], positive["i hang ratio"] = i.UnavailableRatio, i.HangingRatio
		for _, run := range i.runs() {
			positive["i "+run.Fault+" others rate"] = run.OthersRate
			positive["i "+run.Fault+" route 1 delivered"] = float64(run.FirstSeconds)
			positive["i "+run.Fault+" peak RSS"] = float64(run.PeakRSSBytes)
			if len(run.OtherRouteSeconds) != 9 {
				t.Errorf("isolation %s: %d other routes timed, want 9", run.Fault, len(run.OtherRouteSeconds))
			}
			if run.DeadLetters != 0 || run.Misrouted != 0 || run.FirstDuringOutage != 0 {
				t.Errorf("isolation %s: %d dead letters, %d misrouted, %d of route 1's events delivered during its outage; want none",
					run.Fault, run.DeadLetters, run.Misrouted, run.FirstDuringOutage)
			}
		}
		if i.Unavailable.FailedRequests == 0 || i.Hanging.FailedRequests == 0 {
			t.Errorf("route 1's HEC failed %d requests with 503 and hung %d; want some of each", i.Unavailable.FailedRequests, i.Hanging.FailedRequests)
		}
	} else {
		t.Errorf("isolation results incomplete: %+v", res.Isolation)
	}
	if c := res.Latency; c != nil {
		for name, q := range map[string]Percentiles{"c end to end": c.EndToEnd, "c JetStream": c.JetStream} {
			positive[name+" p50"], positive[name+" p90"], positive[name+" p99"], positive[name+" max"] = float64(q.P50), float64(q.P90), float64(q.P99), float64(q.Max)
			positive[name+" count"] = float64(q.Count)
			if q.P50 > q.P90 || q.P90 > q.P99 || q.P99 > q.Max {
				t.Errorf("%s percentiles out of order: %+v", name, q)
			}
		}
		positive["c CPU"] = float64(c.CPUSeconds)
	} else {
		t.Error("no latency results")
	}
	for name, v := range positive {
		if !(v > 0) {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	if f := res.Forwarder; f != nil && f.Events != 2000 {
		t.Errorf("phase b drained %d events, want 2000", f.Events)
	}
	// Phase f fails unless its collector received every event.
	if f := res.Floor; f == nil || f.Events != 2000 {
		t.Errorf("phase f results %+v, want 2000 events drained", f)
	}
	if len(res.Targets) != 9 {
		t.Errorf("%d targets evaluated, want 9: %+v", len(res.Targets), res.Targets)
	}

	var report bytes.Buffer
	if err := writeReport(&report, &res); err != nil {
		t.Fatal(err)
	}
	text := report.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`\(a\)[^\n]*\n(.*\n)*?    drain +[0-9.]+ s +[0-9,]+ events/s`),
		regexp.MustCompile(`\(b\)[^\n]*\n(.*\n)*?    drain +[0-9.]+ s +[0-9,]+ events/s`),
		regexp.MustCompile(`ratio b/a +[0-9.]+`),
		regexp.MustCompile(`\(a\)[^\n]*\n(.*\n)*?\n\(f\) protocol floor[^\n]*\n(.*\n)*?    drain +[0-9.]+ s +[0-9,]+ events/s\n(.*\n)*?    ratio f/a +[0-9.]+ .*\n    ratio b/f +[0-9.]+ .*\n\n\(b\)`),
		regexp.MustCompile(`forwarder CPU +[0-9.]+ s +[0-9.]+ CPU-s per 100k events`),
		regexp.MustCompile(`peak RSS +[0-9.]+ MB`),
		regexp.MustCompile(`end to end +p50 +[0-9.]+ ms +p90 +[0-9.]+ ms +p99 +[0-9.]+ ms +max +[0-9.]+ ms`),
		regexp.MustCompile(`JetStream only +p50 +[0-9.]+ ms +p90 +[0-9.]+ ms +p99 +[0-9.]+ ms +max +[0-9.]+ ms`),
		regexp.MustCompile(`ratio d/b +[0-9.]+`),
		regexp.MustCompile(`\(r\)[^\n]*\n(.*\n)*?    routes +[0-9.]+ s +to write the 50 entries; all 50 consumers: [0-9.]+ s after`),
		regexp.MustCompile(`\(r\)[^\n]*\n(.*\n)*?    drain +[0-9.]+ s +[0-9,]+ events/s`),
		regexp.MustCompile(`routes 2–10 rate +[0-9,]+/s +[0-9,]+/s +[0-9,]+/s`),
		regexp.MustCompile(`ratio to healthy +[0-9.]+ +[0-9.]+\n`),
		regexp.MustCompile(`route 1 all delivered +[0-9.]+ s +\+[0-9.]+ s +\+[0-9.]+ s`),
		regexp.MustCompile(`dead letters \(ezssh.dlq.>\) +0 +0 +0`),
		regexp.MustCompile(`forwarder peak RSS, 50 routes \(r\) +[0-9.]+ MB`),
		regexp.MustCompile(`one HEC 503 / healthy \(i\) +[0-9.]+`),
		regexp.MustCompile(`one HEC hangs / healthy \(i\) +[0-9.]+`),
		regexp.MustCompile(`[0-9] of 9 met`),
	} {
		if !want.MatchString(text) {
			t.Errorf("report lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, "unknown") {
		t.Errorf("report has an unknown number:\n%s", text)
	}
}

func drainOf(f *Forwarding) *Drain {
	if f == nil {
		return nil
	}
	return &f.Drain
}

func rateOf(d *Drain) float64 {
	if d == nil {
		return 0
	}
	return d.Rate
}

func field(f *Forwarding, get func(*Forwarding) float64) float64 {
	if f == nil {
		return 0
	}
	return get(f)
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr bool
		phases  string
	}{
		{args: nil, phases: "abcd"},
		{args: []string{"--phases", "b, D"}, phases: "bd"},
		{args: []string{"--phases", "r,i"}, phases: "ri"},
		{args: []string{"--phases", "a,f,b"}, phases: "afb"},
		{args: []string{"--phases", "F"}, phases: "f"},
		{args: []string{"--phases", "i", "--isolation-routes", "1"}, wantErr: true},
		{args: []string{"--phases", "r", "--routes", "10", "--busy-routes", "20"}, wantErr: true},
		{args: []string{"--phases", "e"}, wantErr: true},
		{args: []string{"--events", "0"}, wantErr: true},
		{args: []string{"--latency-duration", "1s"}, wantErr: true},
		{args: []string{"extra"}, wantErr: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o, err := parseFlags(tc.args, &bytes.Buffer{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			got := ""
			for _, p := range allPhases {
				if o.phases[p] {
					got += p
				}
			}
			if got != tc.phases {
				t.Errorf("phases %q, want %q", got, tc.phases)
			}
		})
	}
}

// TestDrainsBacklog checks which phases make the bench generate and drain
// the shared backlog: phase f alone does.
func TestDrainsBacklog(t *testing.T) {
	for phases, want := range map[string]bool{"a": true, "f": true, "b": true, "d": true, "c": false, "r,i": false, "c,f": true} {
		o, err := parseFlags([]string{"--phases", phases}, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if got := o.drainsBacklog(); got != want || o.needsBacklog() != want {
			t.Errorf("--phases %s: drainsBacklog %v, needsBacklog %v; want %v", phases, got, o.needsBacklog(), want)
		}
	}
}

func TestForwarderEnvFlag(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr bool
		env     []string
	}{
		{args: nil},
		{args: []string{"--forwarder-env", "HUNTRESS_HEC_GZIP_LEVEL=6"}, env: []string{"HUNTRESS_HEC_GZIP_LEVEL=6"}},
		{args: []string{"--forwarder-env", "A=1", "--forwarder-env=B=x=y", "--forwarder-env", "C="}, env: []string{"A=1", "B=x=y", "C="}},
		{args: []string{"--forwarder-env", "HUNTRESS_HEC_GZIP_LEVEL"}, wantErr: true},
		{args: []string{"--forwarder-env", "=6"}, wantErr: true},
		{args: []string{"--forwarder-env", "A=1", "--forwarder-env", "B"}, wantErr: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseFlags(tc.args, &stderr)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "KEY=value") {
					t.Errorf("error %q does not say what the flag wants", err)
				}
				return
			}
			if !slices.Equal(o.forwarderEnv, tc.env) {
				t.Errorf("forwarder env %q, want %q", o.forwarderEnv, tc.env)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond} {
		if got := percentile(d, p); got != want {
			t.Errorf("percentile(%v) = %v, want %v", p, got, want)
		}
	}
}

func TestFsyncFlag(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr bool
		modes   []bool
	}{
		{args: nil, modes: []bool{true}},
		{args: []string{"--fsync"}, modes: []bool{true}},
		{args: []string{"--fsync=true"}, modes: []bool{true}},
		{args: []string{"--fsync=false"}, modes: []bool{false}},
		{args: []string{"--fsync=both"}, modes: []bool{true, false}},
		{args: []string{"--fsync=both", "--phases", "c"}, modes: []bool{true, false}},
		{args: []string{"--fsync", "both"}, wantErr: true}, // a boolean flag: the value needs =
		{args: []string{"--fsync=sometimes"}, wantErr: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o, err := parseFlags(tc.args, &bytes.Buffer{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got := o.fsync.modes(); !slices.Equal(got, tc.modes) {
				t.Errorf("modes %v, want %v", got, tc.modes)
			}
		})
	}
}

// TestReportBothModes checks the report of --fsync=both from made-up
// results: both modes' backlog publish, the side-by-side latency table and a
// target per mode.
func TestReportBothModes(t *testing.T) {
	lat := func(scale Millis) *Latency {
		q := Percentiles{Count: 28_000, P50: 1 * scale, P90: 2 * scale, P99: 3 * scale, Max: 4 * scale}
		return &Latency{TargetRate: 2000, Rate: 1999, Seconds: 15, Published: 29_985, EndToEnd: q, JetStream: q, AfterJetStream: q, CPUSeconds: 1, CPUPer100k: 3, PeakRSSBytes: 20e6}
	}
	res := &Results{
		Events: 1000, AvgEventBytes: 1400, Subscriptions: 5, CPUs: 2, Platform: "test",
		Phases: Phases{Fsync: true, Latency: lat(10), Publish: &Drain{Events: 1000, PublishSeconds: 1, PublishRate: 1000},
			Floor: &Drain{Events: 1000, Seconds: 0.5, Rate: 2000, BenchCPUSeconds: 0.5}},
		NoFsync: &Phases{Fsync: false, Latency: lat(1), Publish: &Drain{Events: 1000, PublishSeconds: 0.1, PublishRate: 10_000},
			Ceiling: &Drain{Events: 1000, Seconds: 0.01, Rate: 100_000}, Floor: &Drain{Events: 1000, Seconds: 0.02, Rate: 50_000}, FloorRatio: 0.5},
	}
	res.evaluate()
	if len(res.Targets) != 2 || res.Targets[0].Met || !res.Targets[1].Met {
		t.Errorf("targets %+v, want the p99 missed with fsync and met without", res.Targets)
	}
	var report bytes.Buffer
	if err := writeReport(&report, res); err != nil {
		t.Fatal(err)
	}
	text := report.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`fsync always +1\.00 s +1,000 events/s\n +no fsync +0\.10 s +10,000 events/s`),
		regexp.MustCompile(`fsync always +no fsync +fsync's part`),
		regexp.MustCompile(`end to end +p50 +10\.00 ms +1\.00 ms +9\.00 ms`),
		regexp.MustCompile(`JetStream only +p50 +10\.00 ms +1\.00 ms`),
		regexp.MustCompile(`after JetStream +p50 +10\.00 ms +1\.00 ms`),
		regexp.MustCompile(` +p99 +30\.00 ms +3\.00 ms +27\.00 ms`),
		regexp.MustCompile(`end-to-end latency p99 \(no fsync\) +3\.00 ms +target ≤ 20\.00 ms +ok`),
		regexp.MustCompile(`1 of 2 met`),
		regexp.MustCompile(`\(f\) protocol floor[^\n]*\[fsync always\]\n(.*\n)*?    drain +0\.50 s +2,000 events/s\n(.*\n)*?    machine busy +50 %`),
		regexp.MustCompile(`\(f\) protocol floor[^\n]*\[no fsync\]\n(.*\n)*?    drain +0\.02 s +50,000 events/s\n(.*\n)*?    ratio f/a +0\.50 `),
	} {
		if !want.MatchString(text) {
			t.Errorf("report lacks %s:\n%s", want, text)
		}
	}
	// No ratio to a phase that did not run.
	if n := strings.Count(text, "ratio f/a"); n != 1 || strings.Contains(text, "ratio b/f") {
		t.Errorf("report has %d f/a ratios (want 1, of the no-fsync mode) or a b/f one without phase b:\n%s", n, text)
	}
}

func TestMedianRun(t *testing.T) {
	if medianRun([]*Drain(nil), func(d *Drain) *Drain { return d }) != nil {
		t.Fatal("no rounds gave a result")
	}
	one := &Drain{Rate: 5}
	if got := medianRun([]*Drain{one}, func(d *Drain) *Drain { return d }); got != one || got.RunRates != nil {
		t.Fatalf("one round: %+v", got)
	}
	runs := []*Drain{{Rate: 30}, {Rate: 10}, {Rate: 50}, {Rate: 20}, {Rate: 40}}
	got := medianRun(runs, func(d *Drain) *Drain { return d })
	if got != runs[0] || !slices.Equal(got.RunRates, []float64{30, 10, 50, 20, 40}) {
		t.Fatalf("median of 5 = %+v, want the 30 round with every rate in run order", got)
	}
	even := []*Forwarding{{Drain: Drain{Rate: 4}}, {Drain: Drain{Rate: 1}}, {Drain: Drain{Rate: 3}}, {Drain: Drain{Rate: 2}}}
	if f := medianRun(even, func(f *Forwarding) *Drain { return &f.Drain }); f.Rate != 2 {
		t.Fatalf("median of 4 = %v, want the lower middle, 2", f.Rate)
	}
}

func TestEventIDOf(t *testing.T) {
	for body, want := range map[string]string{
		`{"EventType":"EZSSH_SSH","EventId":"0193a-b","X":1}`: "0193a-b",
		`{"EventId":"a\"b"}`:    "", // escaped: left to the full parser
		`{"EventId":""}`:        "",
		`{"Other":"EventId"}`:   "",
		`{"EventId": "spaced"}`: "",
	} {
		id, ok := eventIDOf([]byte(body))
		if string(id) != want || ok != (want != "") {
			t.Errorf("eventIDOf(%s) = %q, %v; want %q", body, id, ok, want)
		}
	}
}

func TestFloorWarning(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      Phases
		warned bool
	}{
		{"floor under the target", Phases{Ceiling: &Drain{Rate: 200}, Floor: &Drain{Rate: 110}, FloorRatio: 0.55}, true},
		{"floor over the target", Phases{Ceiling: &Drain{Rate: 200}, Floor: &Drain{Rate: 130}, FloorRatio: 0.65}, false},
		{"no floor", Phases{Ceiling: &Drain{Rate: 200}}, false},
		{"no ceiling", Phases{Floor: &Drain{Rate: 110}}, false},
	} {
		w := tc.p.floorWarning()
		if (w != "") != tc.warned {
			t.Errorf("%s: warning %q, want one: %v", tc.name, w, tc.warned)
		}
		if tc.warned && !strings.Contains(w, "0.55") {
			t.Errorf("%s: warning %q does not give the floor's ratio", tc.name, w)
		}
	}
}
