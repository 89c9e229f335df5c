// Command forwarder delivers EZSSH audit events from NATS JetStream to
// Huntress SIEM (Splunk HEC). Run `forwarder --help` for its commands.
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
	if err != nil {
		if cliflag.IsUsage(err) {
			fmt.Fprintln(os.Stderr, "forwarder:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "forwarder:", err)
		os.Exit(1)
	}
}
