package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
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
}

// allPhases are the phases in the order they run.
var allPhases = []string{"a", "b", "c", "d"}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var phases string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./cmd/bench [flags]\n\n"+
			"Phases: a = JetStream ceiling (bare pull consumer), b = one forwarder,\n"+
			"c = end-to-end latency at a steady rate, d = scale-out to several forwarders.\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.IntVar(&o.events, "events", 200_000, "events in each backlog (phases a, b and d)")
	fs.IntVar(&o.latencyRate, "latency-rate", 2000, "events per second published in the latency phase")
	fs.DurationVar(&o.latencyDuration, "latency-duration", 15*time.Second, "length of the latency phase (its first second is warm-up)")
	fs.StringVar(&o.forwarder, "forwarder", "", "forwarder binary to run (default: build ./cmd/forwarder into a temporary folder)")
	fs.StringVar(&phases, "phases", "a,b,c,d", "comma-separated phases to run")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of a report")
	fs.IntVar(&o.instances, "instances", 3, "forwarder processes in the scale-out phase")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 5*time.Minute, "fail if a backlog is not drained within this")
	fs.IntVar(&o.subscriptions, "subscriptions", 5, "subscriptions the generated events are spread over")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	o.phases = map[string]bool{}
	for p := range strings.SplitSeq(phases, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		switch p {
		case "a", "b", "c", "d":
			o.phases[p] = true
		case "":
		default:
			errs = append(errs, fmt.Errorf("--phases: unknown phase %q (want a, b, c or d)", p))
		}
	}
	if len(o.phases) == 0 {
		errs = append(errs, errors.New("--phases: no phase to run"))
	}
	if o.events <= 0 {
		errs = append(errs, errors.New("--events must be positive"))
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
	return o, errors.Join(errs...)
}

// needsBacklog reports whether a phase that drains the shared backlog runs.
func (o options) needsBacklog() bool { return o.phases["a"] || o.phases["b"] || o.phases["d"] }

// needsForwarder reports whether a phase that runs the forwarder runs.
func (o options) needsForwarder() bool { return o.phases["b"] || o.phases["c"] || o.phases["d"] }
