package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/embedded"
	"github.com/ezssh/siem-forwarder/internal/generate"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/natsconn"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

const demoIntro = `forwarder demo: the whole pipeline on this machine, with nothing installed.

It starts an embedded JetStream server, a local HEC-compatible collector
standing in for Huntress, the real forwarder pipeline between them, and the
producer's generator publishing synthetic SSH and Git events. A status line
shows published, delivered, in flight and the rate; the summary at the end
says whether every published event was delivered (exit 0) or not (exit 1).
Stop it with Ctrl-C or --duration.`

type demoFlags struct {
	duration      time.Duration
	rate          float64
	subscriptions int
	drain         time.Duration
	logLevel      string
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f demoFlags
	s := cliflag.New("forwarder demo", demoIntro, stdout)
	s.Duration(&f.duration, "duration", "FORWARDER_DEMO_DURATION", 15*time.Second, "how long to publish; 0 runs until Ctrl-C")
	s.Float(&f.rate, "rate", "FORWARDER_DEMO_RATE", 500, "events published per second")
	s.Int(&f.subscriptions, "subscriptions", "FORWARDER_DEMO_SUBSCRIPTIONS", 5, "synthetic EZSSH subscriptions")
	s.Duration(&f.drain, "drain-timeout", "FORWARDER_DEMO_DRAIN_TIMEOUT", 30*time.Second, "how long to wait for the last events after publishing stops")
	s.String(&f.logLevel, "log-level", "FORWARDER_LOG_LEVEL", "warn", "forwarder log level: debug, info, warn or error")
	if err := s.Parse(args); err != nil {
		if isHelp(err) {
			return nil
		}
		return err
	}
	if f.rate <= 0 || f.subscriptions <= 0 || f.duration < 0 {
		return cliflag.Usagef("--rate and --subscriptions must be positive and --duration not negative")
	}
	if _, err := parseLevel(f.logLevel); err != nil {
		return &cliflag.UsageError{Msg: err.Error()}
	}
	log := newLogger(stderr, f.logLevel, "text")

	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		return err
	}
	defer srv.Shutdown()

	token := randomToken()
	var (
		mu        sync.Mutex
		delivered = map[string]int{}
	)
	coll, err := huntress.StartCollector("", huntress.CollectorOptions{
		Token: token,
		Keep:  -1,
		OnEvent: func(body []byte, _ time.Time) {
			if fields, err := audit.Inspect(body); err == nil {
				mu.Lock()
				delivered[fields.EventId]++
				mu.Unlock()
			}
		},
	})
	if err != nil {
		return err
	}
	defer coll.Close()
	client, err := huntress.New(huntress.Config{URL: coll.URL(), Token: token})
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()

	conn, err := connect(ctx, natsconn.Options{URL: srv.URL()}, "", "", "ezssh-demo", log)
	if err != nil {
		return err
	}
	defer conn.close()
	if _, err := audit.EnsureStream(ctx, conn.js, audit.StreamOptions{}); err != nil {
		return err
	}
	fw, err := pipeline.New(conn.js, pipeline.Config{}, []pipeline.Route{{
		Name: "global", Consumer: "huntress", Destination: destination(coll.URL()), Sink: client,
	}}, log)
	if err != nil {
		return err
	}
	fwCtx, stopFw := context.WithCancel(context.WithoutCancel(ctx))
	fwDone := make(chan error, 1)
	go func() { fwDone <- fw.Run(fwCtx) }()
	defer func() {
		stopFw()
		<-fwDone
	}()

	fmt.Fprintf(stdout, "demo: NATS %s (embedded), HEC collector %s, publishing %.0f events/s over %d subscriptions\n",
		srv.URL(), coll.URL(), f.rate, f.subscriptions)

	pubCtx := ctx
	if f.duration > 0 {
		var cancel context.CancelFunc
		pubCtx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	published := map[string]bool{}
	tty := isTerminal(stdout)
	start := time.Now()
	countDelivered := func() (unique, dup int) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range delivered {
			unique++
			dup += n - 1
		}
		return
	}
	status := func(final bool) {
		unique, _ := countDelivered()
		var inFlight int64
		for _, st := range fw.Stats() {
			inFlight += st.InFlight
		}
		line := fmt.Sprintf("published=%d delivered=%d in-flight=%d rate=%.0f/s",
			len(published), unique, inFlight, float64(unique)/time.Since(start).Seconds())
		switch {
		case !tty:
			fmt.Fprintln(stdout, line)
		case final:
			fmt.Fprintf(stdout, "\r%s   \n", line)
		default:
			fmt.Fprintf(stdout, "\r%s   ", line)
		}
	}

	pub := audit.NewPublisher(conn.js, audit.PublisherOptions{})
	gen := generate.New(generate.Options{Subscriptions: f.subscriptions})
	lim := rate.NewLimiter(rate.Limit(f.rate), int(f.rate/10)+1)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var pubErr error
publish:
	for {
		if err := lim.Wait(pubCtx); err != nil {
			break
		}
		body, _ := gen.NextBody()
		fields, err := audit.Inspect(body)
		if err != nil {
			return fmt.Errorf("demo: generator produced an invalid event: %w", err)
		}
		if err := pub.PublishRawAsync(pubCtx, body); err != nil {
			if pubCtx.Err() != nil {
				break
			}
			pubErr = err
			break
		}
		published[fields.EventId] = true
		select {
		case <-tick.C:
			status(false)
		default:
		}
		if pubCtx.Err() != nil {
			break publish
		}
	}
	flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	if err := pub.Flush(flushCtx); err != nil && pubErr == nil {
		pubErr = err
	}
	cancelFlush()
	pubElapsed := time.Since(start)

	// Wait for the last events, also after Ctrl-C.
	deadline := time.Now().Add(f.drain)
	for time.Now().Before(deadline) {
		if unique, _ := countDelivered(); unique >= len(published) {
			break
		}
		<-tick.C
		status(false)
	}
	status(true)
	elapsed := time.Since(start)
	unique, dups := countDelivered()
	missing := 0
	mu.Lock()
	for id := range published {
		if delivered[id] == 0 {
			missing++
		}
	}
	mu.Unlock()
	st := coll.Stats()
	fmt.Fprintf(stdout, "summary: published %d events in %v (%.0f/s); delivered %d distinct, %d duplicates, %d missing; %d HEC requests (%.1f events each) in %v\n",
		len(published), pubElapsed.Round(time.Millisecond), float64(len(published))/pubElapsed.Seconds(),
		unique, dups, missing, st.Accepted, float64(st.Events)/max(1, float64(st.Accepted)), elapsed.Round(time.Millisecond))
	if pubErr != nil {
		return fmt.Errorf("demo: publishing failed: %w", pubErr)
	}
	if missing > 0 {
		return fmt.Errorf("demo: %d published events were not delivered", missing)
	}
	fmt.Fprintln(stdout, "OK: every published event was delivered.")
	return nil
}

// isTerminal reports whether w is a terminal, where the status line redraws
// itself; elsewhere it prints a line a second.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
