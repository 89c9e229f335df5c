// Command collector serves the repository's local HEC-compatible collector
// (internal/huntress.Collector) as a process: the HEC for docker-compose
// without a real Huntress, and the destination of the process-level fault
// suite. It can append every accepted event to a file and, when allowed,
// switch to failing modes on request.
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
	fmt.Fprintln(os.Stderr, "collector:", err)
	if cliflag.IsUsage(err) {
		os.Exit(2)
	}
	os.Exit(1)
}
