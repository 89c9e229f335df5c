package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// options are the bench's flags.
type options struct {
	events          int
	latencyRate     int
	latencyDuration time.Duration
	forwarder       string // a prebuilt forwarder binary; empty builds one
	phases          map[string]bool
	json            bool
	instances       int           // forwarders in the scale-out phase
	drainTimeout    time.Duration // longest wait for any drain
	subscriptions   int
	fsync           fsyncFlag // which server modes every phase runs in

	routes          int           // subscription routes configured in phase r
	busyRoutes      int           // of them, the ones phase r's backlog is spread over
	isolationRoutes int           // subscription routes in phase i, each with its own collector
	routeEvents     int           // backlog per route in phase i; 0: events / isolationRoutes
	hecTimeout      time.Duration // HUNTRESS_HEC_TIMEOUT of phase i; 0: the forwarder's default
	keepLogs        bool          // keep the forwarder logs after a successful run
	cpuProfile      string        // write the bench process's CPU profile here
	runs            int           // rounds of phases a, f, b and d; each reports its median
	forwarderEnv    envFlag       // extra KEY=value settings of every forwarder
	forwarderProf   string        // write the phase-b forwarder's CPU profile here
}

// envFlag is a repeatable KEY=value flag.
type envFlag []string

func (e *envFlag) String() string { return strings.Join(*e, " ") }

func (e *envFlag) Set(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=value, e.g. HUNTRESS_HEC_GZIP_LEVEL=6")
	}
	*e = append(*e, v)
	return nil
}

// fsyncFlag is --fsync: true (the product's sync_interval: always), false
// (embedded.Config.NoSync) or both, which runs every selected phase once in
// each mode, fsync first. A bare --fsync means true.
type fsyncFlag string

const (
	fsyncAlways fsyncFlag = "true"
	fsyncOff    fsyncFlag = "false"
	fsyncBoth   fsyncFlag = "both"
)

func (f *fsyncFlag) String() string { return string(*f) }

func (f *fsyncFlag) Set(v string) error {
	if strings.EqualFold(strings.TrimSpace(v), "both") {
		*f = fsyncBoth
		return nil
	}
	on, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("want true, false or both")
	}
	*f = fsyncOff
	if on {
		*f = fsyncAlways
	}
	return nil
}

func (f *fsyncFlag) IsBoolFlag() bool { return true }

// modes are the fsync settings the phases run with, in order: true is
// fsync before acknowledge.
func (f fsyncFlag) modes() []bool {
	switch f {
	case fsyncOff:
		return []bool{false}
	case fsyncBoth:
		return []bool{true, false}
	}
	return []bool{true}
}

// allPhases are the phases in the order they run.
var allPhases = []string{"a", "f", "b", "c", "d", "r", "i"}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{fsync: fsyncAlways}
	var phases string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./cmd/bench [flags]\n\n"+
			"Phases: a = JetStream ceiling (bare pull consumer), b = one forwarder,\n"+
			"f = protocol floor: a minimal pipeline in the bench (a's consumer, batches of 500,\n"+
			"4 in flight, huntress.Client.Send to b's collector, ack after), informative,\n"+
			"c = end-to-end latency at a steady rate, d = scale-out to several forwarders,\n"+
			"r = subscription routes at scale (--routes routes, --busy-routes of them busy),\n"+
			"i = isolation: --isolation-routes routes with a collector each, the first one\n"+
			"failing (503, then hanging) while the others drain; f, r and i are not in the default.\n"+
			"--fsync=both runs each selected phase twice, with and without fsync, and\n"+
			"sets the two side by side, e.g. --phases c --fsync=both.\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.IntVar(&o.events, "events", 200_000, "events in each backlog (phases a, f, b and d)")
	fs.IntVar(&o.runs, "runs", 1, "rounds of phases a, f, b and d, interleaved; each phase reports its median round (a shared machine is noisy: 5 steadies the ratio)")
	fs.IntVar(&o.latencyRate, "latency-rate", 2000, "events per second published in the latency phase")
	fs.DurationVar(&o.latencyDuration, "latency-duration", 15*time.Second, "length of the latency phase (its first second is warm-up)")
	fs.StringVar(&o.forwarder, "forwarder", "", "forwarder binary to run (default: build ./cmd/forwarder into a temporary folder)")
	fs.StringVar(&phases, "phases", "a,b,c,d", "comma-separated phases to run")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of a report")
	fs.IntVar(&o.instances, "instances", 3, "forwarder processes in the scale-out phase")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 5*time.Minute, "fail if a backlog is not drained within this")
	fs.IntVar(&o.subscriptions, "subscriptions", 5, "subscriptions the generated events are spread over")
	fs.IntVar(&o.routes, "routes", 1000, "subscription routes configured in the bucket EZSSH_SIEM (phase r)")
	fs.IntVar(&o.busyRoutes, "busy-routes", 20, "routes the backlog of --events is spread over (phase r)")
	fs.IntVar(&o.isolationRoutes, "isolation-routes", 10, "subscription routes, each with its own collector (phase i)")
	fs.IntVar(&o.routeEvents, "route-events", 0, "backlog of each route in phase i (default --events / --isolation-routes)")
	fs.DurationVar(&o.hecTimeout, "hec-timeout", 0, "HUNTRESS_HEC_TIMEOUT of the forwarder in phase i, how long a hanging HEC holds a request (default: the forwarder's, 30s)")
	fs.BoolVar(&o.keepLogs, "keep-logs", false, "keep the forwarders' logs after a successful run too (their folder is printed on stderr)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the bench process (nats-server, collector, bare consumer, floor pipeline) to this file; the forwarder's own comes from its --pprof")
	fs.Var(&o.forwarderEnv, "forwarder-env", "a setting for every forwarder, KEY=value as in its environment (repeatable), to compare settings: --forwarder-env HUNTRESS_HEC_GZIP_THRESHOLD=-1")
	fs.StringVar(&o.forwarderProf, "forwarder-cpuprofile", "", "write a CPU profile of the phase-b forwarder, taken from its --pprof while it drains, to this file, and its allocations to FILE.allocs (the last round's with --runs); phase c's go to FILE.latency and FILE.latency.allocs")
	fs.Var(&o.fsync, "fsync", "embedded server fsyncs before it acknowledges (sync_interval: always, as shipped): true, false (embedded.Config.NoSync) or both")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		if v := strings.ToLower(fs.Arg(0)); v == "both" || v == "true" || v == "false" {
			return o, fmt.Errorf("unexpected arguments %q (--fsync takes its value after =: --fsync=%s)", fs.Args(), v)
		}
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	o.phases = map[string]bool{}
	for p := range strings.SplitSeq(phases, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		switch p {
		case "a", "b", "c", "d", "f", "r", "i":
			o.phases[p] = true
		case "":
		default:
			errs = append(errs, fmt.Errorf("--phases: unknown phase %q (want a, b, c, d, f, r or i)", p))
		}
	}
	if len(o.phases) == 0 {
		errs = append(errs, errors.New("--phases: no phase to run"))
	}
	if o.events <= 0 {
		errs = append(errs, errors.New("--events must be positive"))
	}
	if o.runs < 1 {
		errs = append(errs, errors.New("--runs must be at least 1"))
	}
	if o.latencyRate <= 0 {
		errs = append(errs, errors.New("--latency-rate must be positive"))
	}
	if o.latencyDuration <= time.Second {
		errs = append(errs, errors.New("--latency-duration must be longer than the 1s warm-up"))
	}
	if o.instances < 1 {
		errs = append(errs, errors.New("--instances must be at least 1"))
	}
	if o.drainTimeout <= 0 {
		errs = append(errs, errors.New("--drain-timeout must be positive"))
	}
	if o.subscriptions <= 0 {
		errs = append(errs, errors.New("--subscriptions must be positive"))
	}
	if o.routes <= 0 || o.busyRoutes <= 0 || o.busyRoutes > o.routes {
		errs = append(errs, errors.New("--routes and --busy-routes must be positive, with --busy-routes ≤ --routes"))
	}
	if o.isolationRoutes < 2 {
		errs = append(errs, errors.New("--isolation-routes must be at least 2: one failing, the others measured"))
	}
	if o.routeEvents < 0 {
		errs = append(errs, errors.New("--route-events must not be negative"))
	}
	if o.routeEvents == 0 && o.isolationRoutes > 0 {
		o.routeEvents = max(1, o.events/o.isolationRoutes)
	}
	if o.hecTimeout < 0 {
		errs = append(errs, errors.New("--hec-timeout must not be negative"))
	}
	return o, errors.Join(errs...)
}

// drainsBacklog reports whether a phase that drains the shared backlog runs.
func (o options) drainsBacklog() bool {
	return o.phases["a"] || o.phases["f"] || o.phases["b"] || o.phases["d"]
}

// needsBacklog reports whether the backlog is generated: for a phase that
// drains it, or, with --fsync=both, to time its publish in both modes.
func (o options) needsBacklog() bool { return o.drainsBacklog() || o.fsync == fsyncBoth }

// needsForwarder reports whether a phase that runs the forwarder runs.
func (o options) needsForwarder() bool {
	return o.phases["b"] || o.phases["c"] || o.phases["d"] || o.phases["r"] || o.phases["i"]
}
