package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/huntress"
)

const testConnIntro = `forwarder test-connection: send one test event (ActionPerformed "Test
Connection") to the HEC and say whether it arrived and, if not, what to fix.
Exit status 0 when the HEC accepted it, 1 when it did not, 2 for bad settings.`

// errTestFailed makes the command exit 1 after it printed its diagnosis.
var errTestFailed = errors.New("test connection failed")

func runTestConnection(ctx context.Context, args []string, stdout, _ io.Writer) error {
	var h hecFlags
	var timeout time.Duration
	s := cliflag.New("forwarder test-connection", testConnIntro, stdout)
	h.bind(s)
	s.Duration(&timeout, "timeout", "", 30*time.Second, "overall time limit")
	if err := s.Parse(args); err != nil {
		if isHelp(err) {
			return nil
		}
		return err
	}
	cfg, err := h.config()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := huntress.TestConnection(ctx, cfg)
	if d.OK {
		fmt.Fprintf(stdout, "OK: the HEC at %s accepted the test event with the %s scheme (HTTP %d, %v).\n",
			destination(cfg.URL), d.Scheme, d.Status, d.Latency.Round(time.Millisecond))
		fmt.Fprintln(stdout, "Allow a few minutes for it to show up in Huntress (ActionPerformed \"Test Connection\").")
		return nil
	}
	fmt.Fprintf(stdout, "FAILED (%s): %s\n", d.Problem, d.Message)
	return errTestFailed
}
