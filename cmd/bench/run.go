package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
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
		started:       time.Now(),
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
func (b *bench) cleanup(err error) error {
	if logs, _ := os.ReadDir(b.logDir); err != nil && len(logs) > 0 {
		os.Remove(filepath.Join(b.root, "forwarder"))
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

// runPhases runs the selected phases: the backlog drains first, then the
// latency phase.
func (b *bench) runPhases(ctx context.Context, res *Results) error {
	var err error
	if b.opts.phases["a"] {
		if res.Ceiling, err = b.ceiling(ctx); err != nil {
			return fmt.Errorf("phase a (JetStream ceiling): %w", err)
		}
	}
	if b.opts.phases["b"] {
		if res.Forwarder, err = b.forward(ctx, "b", 1, res); err != nil {
			return fmt.Errorf("phase b (one forwarder): %w", err)
		}
		if res.Ceiling != nil {
			res.Forwarder.RatioToCeiling = res.Forwarder.Rate / res.Ceiling.Rate
		}
	}
	if b.opts.phases["d"] {
		if res.ScaleOut, err = b.forward(ctx, "d", b.opts.instances, res); err != nil {
			return fmt.Errorf("phase d (scale-out): %w", err)
		}
		if res.Forwarder != nil {
			res.ScaleOutRatio = res.ScaleOut.Rate / res.Forwarder.Rate
		}
	}
	// Latency runs last, with the backlog's bodies released, so that the
	// bench's own heap does not add GC work to the server it measures.
	b.bodies = nil
	runtime.GC()
	if b.opts.phases["c"] {
		if res.Latency, err = b.latency(ctx, res); err != nil {
			return fmt.Errorf("phase c (latency): %w", err)
		}
	}
	return nil
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
