// Command producer publishes EZSSH audit events to JetStream: one event from
// flags, a file of NDJSON bodies, or a stream of synthetic events for demos and
// load tests.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "producer:", err)
	if cliflag.IsUsage(err) {
		os.Exit(2)
	}
	os.Exit(1)
}
