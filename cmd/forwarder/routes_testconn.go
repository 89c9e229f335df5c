package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

const routesTestIntro = `forwarder routes test SUB: send one test event (ActionPerformed "Test
Connection") to the HEC of subscription SUB's route, with its URL, token and
scheme, and say whether it arrived and, if not, what to fix: the diagnosis of
forwarder test-connection. Exit status 0 when the HEC accepted it, 1 when it
did not, 2 for bad settings (including a sealed token without its key).`

func runRoutesTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c       routesConn
		k       routesKey
		tlsf    hecTLSFlags
		timeout time.Duration
		s       = cliflag.New("forwarder routes test", routesTestIntro, stdout)
	)
	c.bind(s)
	k.bind(s)
	tlsf.bind(s)
	s.Duration(&timeout, "timeout", "", 30*time.Second, "overall time limit")
	sub, help, err := parseRoutesFlags(s, args, &c, true)
	if help || err != nil {
		return err
	}
	key, err := k.load()
	if err != nil {
		return err
	}
	if err := tlsf.check(); err != nil {
		return err
	}
	conn, kv, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer conn.close()
	r, err := getRoute(ctx, kv, sub)
	if err != nil {
		return err
	}
	if r.entry == nil {
		return &cliflag.UsageError{Msg: fmt.Sprintf("the route of subscription %s cannot be used: %v (fix it with routes set)", sub, r.err)}
	}
	cfg, err := r.entry.HECConfig(sub, key, tlsf.apply(huntress.Config{}))
	if err != nil {
		return &cliflag.UsageError{Msg: err.Error()}
	}
	if !r.entry.Enabled {
		fmt.Fprintf(stderr, "note: the route of subscription %s is disabled; testing it anyway\n", sub)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := huntress.TestConnection(ctx, cfg)
	if d.OK {
		fmt.Fprintf(stdout, "OK: the HEC at %s accepted the test event with the %s scheme (HTTP %d, %v).\n",
			routes.Destination(cfg.URL), d.Scheme, d.Status, d.Latency.Round(time.Millisecond))
		fmt.Fprintln(stdout, "Allow a few minutes for it to show up in Huntress (ActionPerformed \"Test Connection\").")
		return nil
	}
	fmt.Fprintf(stdout, "FAILED (%s): %s\n", d.Problem, d.Message)
	return errTestFailed
}
