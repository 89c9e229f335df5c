package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/generate"
)

const generateIntro = `Usage: producer generate [flags]

Publishes synthetic EZSSH events (about 1.5 KB each: 70% EZSSH_SSH, 30%
EZSSH_GIT, 5% denied, every 200th a Test Connection) spread over a few
subscriptions. Progress goes to standard error about every second; the
achieved rate is printed at the end.`

type generateCmd struct {
	conn          conn
	count         int
	rate          float64
	subscriptions int
	seed          int64
	progressEvery time.Duration
}

func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c generateCmd
	s := cliflag.New("producer generate", generateIntro, stdout)
	c.conn.bind(s)
	s.Int(&c.count, "count", "PRODUCER_COUNT", 1000, "events to publish; 0 publishes until interrupted")
	s.Float(&c.rate, "rate", "PRODUCER_RATE", 0, "events per second; 0 publishes as fast as the server acknowledges")
	s.Int(&c.subscriptions, "subscriptions", "PRODUCER_SUBSCRIPTIONS", 5, "number of subscriptions the events are spread over")
	s.Int64(&c.seed, "seed", "PRODUCER_SEED", 0, "seed of the keys, subscriptions and choices")
	s.Duration(&c.progressEvery, "progress", "PRODUCER_PROGRESS", time.Second, "interval between progress lines; 0 for none")
	if err := parse(s, args); err != nil {
		if err == errHelpShown {
			return nil
		}
		return err
	}
	if err := c.conn.validate(); err != nil {
		return err
	}
	switch {
	case c.count < 0:
		return cliflag.Usagef("--count (PRODUCER_COUNT) must not be negative")
	case c.rate < 0:
		return cliflag.Usagef("--rate (PRODUCER_RATE) must not be negative")
	case c.subscriptions <= 0:
		return cliflag.Usagef("--subscriptions (PRODUCER_SUBSCRIPTIONS) must be positive")
	}
	nc, js, p, err := c.conn.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()

	g := generate.New(generate.Options{Subscriptions: c.subscriptions, Seed: c.seed})
	st := stats{start: time.Now(), lastAt: time.Now()}
	pace := newPacer(c.rate, st.start)
	defer pace.stop()
	var runErr error
	for c.count == 0 || st.sent < c.count {
		if err := pace.wait(ctx, st.sent); err != nil {
			break // interrupted
		}
		body, _ := g.NextBody()
		if err := p.PublishRawAsync(ctx, body); err != nil {
			if ctx.Err() == nil {
				runErr = err
			}
			break
		}
		st.sent++
		if now := time.Now(); c.progressEvery > 0 && now.Sub(st.lastAt) >= c.progressEvery {
			st.progress(stderr, now, st.sent-js.PublishAsyncPending())
		}
	}

	// Wait for the acks even after an interrupt, but not forever.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	failed := 0
	if err := p.Flush(fctx); err != nil {
		var ae *audit.AsyncError
		if !errors.As(err, &ae) {
			return fmt.Errorf("waiting for acknowledgements: %w", err)
		}
		failed = ae.Failed
		runErr = errors.Join(runErr, err)
	}
	elapsed := time.Since(st.start)
	fmt.Fprintf(stdout, "sent=%d acked=%d failed=%d elapsed=%s rate=%.0f events/s\n",
		st.sent, st.sent-failed, failed, elapsed.Round(time.Millisecond), float64(st.sent-failed)/elapsed.Seconds())
	if runErr == nil && c.count > 0 && st.sent < c.count {
		runErr = fmt.Errorf("interrupted after %d of %d events", st.sent, c.count)
	}
	return runErr
}

// stats track what has been sent for the progress lines.
type stats struct {
	start    time.Time
	sent     int
	lastAt   time.Time
	lastSent int
}

func (s *stats) progress(w io.Writer, now time.Time, acked int) {
	rate := float64(s.sent-s.lastSent) / now.Sub(s.lastAt).Seconds()
	fmt.Fprintf(w, "sent=%d acked=%d rate=%.0f events/s\n", s.sent, acked, rate)
	s.lastAt, s.lastSent = now, s.sent
}
