package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
)

const usage = `Usage: producer <command> [flags]

Publishes EZSSH audit events to the JetStream stream EZSSH_AUDIT.

Commands:
  publish    publish one event from flags, or NDJSON bodies with -f FILE (- for stdin)
  generate   publish synthetic events, optionally at a fixed rate

Run "producer <command> --help" for the flags of a command.`

// run runs the producer with the arguments after the program name. Usage
// errors satisfy cliflag.IsUsage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return cliflag.Usagef("no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "publish":
		return runPublish(ctx, rest, stdout, stderr)
	case "generate":
		return runGenerate(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return cliflag.Usagef("unknown command %q (commands: %s)", cmd, strings.Join([]string{"publish", "generate"}, ", "))
	}
}
