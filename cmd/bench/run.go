package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/ezssh/siem-forwarder/internal/generate"
)

// bench is what the phases share.
type bench struct {
	opts     options
	root     string   // temporary folder: stores, binary, logs
	logDir   string   // forwarder logs
	bodies   [][]byte // the backlog every draining phase publishes
	bin      string   // the forwarder binary
	progress io.Writer
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "ezssh-bench-*")
	if err != nil {
		return err
	}
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	b := &bench{opts: opts, root: root, logDir: filepath.Join(root, "logs"), progress: stderr}
	defer func() { err = b.cleanup(err) }()
	if err := os.Mkdir(b.logDir, 0o700); err != nil {
		return err
	}
	res := &Results{
		Events:        opts.events,
		Subscriptions: opts.subscriptions,
		CPUs:          runtime.NumCPU(),
		Platform:      runtime.GOOS + "/" + runtime.GOARCH + " " + runtime.Version(),
		Phases:        Phases{Fsync: opts.fsync.modes()[0]},
		started:       time.Now(),
	}
	if len(opts.fsync.modes()) > 1 {
		res.NoFsync = &Phases{Fsync: false}
	}
	if err := b.prepare(ctx, res); err != nil {
		return err
	}
	if err := b.runPhases(ctx, res); err != nil {
		return err
	}
	res.Elapsed = secs(time.Since(res.started))
	res.evaluate()
	if opts.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return writeReport(stdout, res)
}

// cleanup removes the temporary folder, but after a failure keeps the
// forwarder logs and says where they are.
// With --keep-logs it keeps them after a success too.
func (b *bench) cleanup(err error) error {
	if logs, _ := os.ReadDir(b.logDir); (err != nil || b.opts.keepLogs) && len(logs) > 0 {
		os.Remove(filepath.Join(b.root, "forwarder"))
		if err == nil {
			b.logf("forwarder logs kept in %s", b.logDir)
			return nil
		}
		return fmt.Errorf("%w\n(forwarder logs kept in %s)", err, b.logDir)
	}
	os.RemoveAll(b.root)
	return err
}

// prepare builds the forwarder and generates the backlog, once for all
// phases.
func (b *bench) prepare(ctx context.Context, res *Results) error {
	if b.opts.needsForwarder() {
		b.bin = b.opts.forwarder
		if b.bin == "" {
			b.logf("building %s", forwarderPkg)
			bin, err := buildForwarder(ctx, b.root)
			if err != nil {
				return err
			}
			b.bin = bin
		} else if _, err := os.Stat(b.bin); err != nil {
			return fmt.Errorf("--forwarder: %w", err)
		}
	}
	if b.opts.needsBacklog() {
		b.logf("generating %d events", b.opts.events)
		g := generate.New(generate.Options{Subscriptions: b.opts.subscriptions, Seed: 1})
		b.bodies = make([][]byte, b.opts.events)
		total := 0
		for i := range b.bodies {
			b.bodies[i], _ = g.NextBody()
			total += len(b.bodies[i])
		}
		res.AvgEventBytes = total / len(b.bodies)
	}
	return nil
}

// runPhases runs the selected phases in each fsync mode: the backlog
// drains first, then the latency phase, so that with --fsync=both the two
// latency runs follow each other under the same conditions.
func (b *bench) runPhases(ctx context.Context, res *Results) error {
	modes := res.modes()
	for _, m := range modes {
		if err := b.drainPhases(ctx, m, res); err != nil {
			return err
		}
	}
	// Latency runs last, with the backlog's bodies released, so that the
	// bench's own heap does not add GC work to the server it measures.
	b.bodies = nil
	runtime.GC()
	if b.opts.phases["c"] {
		for _, m := range modes {
			var err error
			if m.Latency, err = b.latency(ctx, m.Fsync, res); err != nil {
				return fmt.Errorf("phase c (latency, %s): %w", mode(m.Fsync), err)
			}
		}
	}
	return nil
}

// drainPhases runs phases a, f, b and d against servers of m's fsync mode. With
// --fsync=both and none of them selected, it times the backlog's publish
// alone, so that both modes' publish rates are still reported.
func (b *bench) drainPhases(ctx context.Context, m *Phases, res *Results) error {
	var err error
	if !b.opts.drainsBacklog() {
		if b.bodies != nil {
			if m.Publish, err = b.publishOnly(ctx, m.Fsync); err != nil {
				return fmt.Errorf("backlog publish (%s): %w", mode(m.Fsync), err)
			}
		}
		return b.routePhases(ctx, m, res)
	}
	// Rounds interleave the phases, so that a noisy stretch of the machine
	// hurts all of them alike; each phase then reports its median round.
	var ceilings, floors []*Drain
	var singles, fleets []*Forwarding
	for round := range b.opts.runs {
		if b.opts.runs > 1 {
			b.logf("round %d of %d", round+1, b.opts.runs)
		}
		if b.opts.phases["a"] {
			a, err := b.ceiling(ctx, m.Fsync)
			if err != nil {
				return fmt.Errorf("phase a (JetStream ceiling, %s): %w", mode(m.Fsync), err)
			}
			ceilings = append(ceilings, a)
		}
		if b.opts.phases["f"] {
			f, err := b.floor(ctx, m.Fsync)
			if err != nil {
				return fmt.Errorf("phase f (protocol floor, %s): %w", mode(m.Fsync), err)
			}
			floors = append(floors, f)
		}
		if b.opts.phases["b"] {
			f, err := b.forward(ctx, "b", m.Fsync, 1, res)
			if err != nil {
				return fmt.Errorf("phase b (one forwarder, %s): %w", mode(m.Fsync), err)
			}
			singles = append(singles, f)
		}
		if b.opts.phases["d"] {
			f, err := b.forward(ctx, "d", m.Fsync, b.opts.instances, res)
			if err != nil {
				return fmt.Errorf("phase d (scale-out, %s): %w", mode(m.Fsync), err)
			}
			fleets = append(fleets, f)
		}
	}
	m.Ceiling = medianRun(ceilings, func(d *Drain) *Drain { return d })
	m.Floor = medianRun(floors, func(d *Drain) *Drain { return d })
	m.Forwarder = medianRun(singles, func(f *Forwarding) *Drain { return &f.Drain })
	m.ScaleOut = medianRun(fleets, func(f *Forwarding) *Drain { return &f.Drain })
	if m.Forwarder != nil && m.Ceiling != nil {
		m.Forwarder.RatioToCeiling = m.Forwarder.Rate / m.Ceiling.Rate
	}
	if m.Floor != nil && m.Ceiling != nil {
		m.FloorRatio = m.Floor.Rate / m.Ceiling.Rate
		if w := m.floorWarning(); w != "" {
			res.Warnings = append(res.Warnings, w)
		}
	}
	if m.Forwarder != nil && m.Floor != nil {
		m.ForwarderFloorRatio = m.Forwarder.Rate / m.Floor.Rate
	}
	if m.ScaleOut != nil && m.Forwarder != nil {
		m.ScaleOutRatio = m.ScaleOut.Rate / m.Forwarder.Rate
	}
	return b.routePhases(ctx, m, res)
}

// medianRun returns the round with the median drain rate (the lower middle
// one of an even count), with every round's rate recorded in its RunRates;
// nil when there was no round.
func medianRun[T any](runs []*T, drain func(*T) *Drain) *T {
	if len(runs) == 0 {
		return nil
	}
	rates := make([]float64, len(runs))
	for i, r := range runs {
		rates[i] = drain(r).Rate
	}
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(x, y *T) int { return cmp.Compare(drain(x).Rate, drain(y).Rate) })
	med := sorted[(len(sorted)-1)/2]
	if len(runs) > 1 {
		drain(med).RunRates = rates
	}
	return med
}

// routePhases runs phases r and i against servers of m's fsync mode. They
// make their own backlogs, for the subscriptions they configure.
func (b *bench) routePhases(ctx context.Context, m *Phases, res *Results) error {
	var err error
	if b.opts.phases["r"] {
		if m.RouteScale, err = b.routeScale(ctx, m.Fsync, res); err != nil {
			return fmt.Errorf("phase r (routes at scale, %s): %w", mode(m.Fsync), err)
		}
	}
	if b.opts.phases["i"] {
		if m.Isolation, err = b.isolation(ctx, m.Fsync); err != nil {
			return fmt.Errorf("phase i (isolation, %s): %w", mode(m.Fsync), err)
		}
	}
	return nil
}

// publishOnly stores the backlog in a fresh server of the given mode and
// times that, draining nothing.
func (b *bench) publishOnly(ctx context.Context, fsync bool) (*Drain, error) {
	st, took, err := b.backlogStage(ctx, phaseName("publish", fsync), fsync)
	if err != nil {
		return nil, err
	}
	st.close()
	n := len(b.bodies)
	return &Drain{Events: n, PublishSeconds: secs(took), PublishRate: perSecond(n, took)}, nil
}

// phaseName names a phase's server folder and forwarder logs: the phase's
// letter, with -nosync when the server does not fsync.
func phaseName(phase string, fsync bool) string {
	if fsync {
		return phase
	}
	return phase + "-nosync"
}

// logf reports progress on stderr, so that stdout holds only the report.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "bench: "+format+"\n", args...)
}

// perSecond is events per second.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
