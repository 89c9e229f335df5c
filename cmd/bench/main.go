// Command bench measures the forwarder against the JetStream it reads from,
// on this machine, in one run: (a) the ceiling of a bare pull consumer, (b)
// one forwarder draining the same backlog into a local HEC collector, with
// its CPU and memory, (c) end-to-end latency at a steady rate and (d) three
// forwarders sharing one consumer. Every phase gets a fresh fsync-always
// embedded nats-server, so each drains an equal backlog.
//
// Phase (f), the protocol floor, not in the default, drains the same
// backlog through a minimal pipeline in the bench process: phase (a)'s
// consumer, batches of 500 with 4 in flight, huntress.Client.Send to phase
// (b)'s collector and an ack after each accepted batch. It separates the
// forwarder's own overhead (b/f) from what gzip, HTTP and the collector
// cost on this machine (f/a): go run ./cmd/bench --phases a,f,b.
//
// Two phases, not in the default, measure subscription routes (the bucket
// EZSSH_SIEM, no global route): (r) one forwarder with --routes routes
// configured and the backlog spread over --busy-routes of them, its drain
// rate, CPU, peak RSS and how long its consumers took to set up; (i)
// isolation: --isolation-routes routes, each to its own collector, drained
// three times, with the first route's HEC healthy, answering 503 and never
// answering; the other routes' rate while it fails, against all healthy.
//
// --fsync=false runs the phases against a server that does not fsync
// (embedded.Config.NoSync); --fsync=both runs each phase in both modes and
// sets them side by side, which separates the disk's share of the latency
// from the forwarder's:
//
//	go run ./cmd/bench [--events 200000] [--phases a,b,c,d] [--fsync=true|false|both] [--json]
//	go run ./cmd/bench --phases c --fsync=both
//	go run ./cmd/bench --phases r,i [--routes 1000] [--busy-routes 20] [--isolation-routes 10] [--route-events N]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
