package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
)

const usage = `forwarder delivers EZSSH audit events from NATS JetStream to Huntress SIEM
(the Splunk HEC protocol): durable consumers, batching, circuit breakers,
nothing acknowledged before the HEC accepted it.

Usage:
  forwarder [run] [flags]          run the forwarder (the default command)
  forwarder test-connection [flags] send one test event to the HEC and diagnose the reply
  forwarder demo [flags]           run the whole pipeline locally: embedded NATS,
                                   a local HEC collector and synthetic traffic
  forwarder dlq COMMAND [flags]    dead letters: list, show, redrive or purge them
  forwarder routes COMMAND [flags] per-subscription routes: list, get, set, enable, disable, delete, test, rewind
  forwarder replay [flags]         send the events stored in a time window again (resumable)
  forwarder status [--json]        per route: pending, breaker, pause, last delivery, DLQ; streams; instances
  forwarder help                   this text

Run "forwarder COMMAND --help" for a command's flags. Every flag can also be
set by the environment variable shown beside it.
`

// run dispatches a subcommand. Errors wrapping *cliflag.UsageError exit 2.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		// Bare --help: the commands, then the flags of the default command.
		fmt.Fprint(stdout, usage+"\n")
	}
	switch cmd {
	case "run":
		return runForwarder(ctx, args, stdout, stderr)
	case "test-connection":
		return runTestConnection(ctx, args, stdout, stderr)
	case "demo":
		return runDemo(ctx, args, stdout, stderr)
	case "dlq":
		return runDLQ(ctx, args, stdout, stderr)
	case "routes":
		return runRoutes(ctx, args, stdout, stderr)
	case "replay":
		return runReplay(ctx, args, stdout, stderr)
	case "status":
		return runStatus(ctx, args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return cliflag.Usagef("unknown command %q", cmd)
}

// isHelp reports whether err is the request for --help, which is not a failure.
func isHelp(err error) bool { return err == flag.ErrHelp }
