package faults

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/generate"
)

// feed publishes events in the background, like an EZSSH service would, with
// the audit package's publisher: in waves, each published asynchronously
// and published again as a whole until the stream acknowledged every event
// of it. A second attempt reuses the EventIds, so the stream's duplicate
// window stores each event once even when an earlier attempt was stored but
// its acknowledgement lost.
type feed struct {
	ids     []string
	events  []*audit.Event
	sentAt  []atomic.Int64 // when each event's first publish attempt began, Unix ns; 0 before
	acked   atomic.Int64   // events the stream acknowledged
	retries atomic.Int64   // waves published again
	done    chan struct{}  // closed when every event is acknowledged or the feed gave up
	err     error          // why it gave up; read after done
	took    time.Duration  // read after done
}

// pace is when a feed publishes: wave after wave of events, wave k no
// earlier than k × every after the start.
type pace struct {
	wave  int
	every time.Duration
}

// perSecond is a steady pace of r events a second, in tenths of a second.
func perSecond(r int) pace { return pace{wave: max(1, r/10), every: 100 * time.Millisecond} }

// startFeed publishes n realistic events (internal/generate) through cl at
// pace p, giving up after giveUp. The test fails if the feed gave up.
func startFeed(t *testing.T, cl *client, n int, p pace, giveUp time.Duration) *feed {
	t.Helper()
	// A PubAck that never comes (the server died with the message) must
	// fail its wave rather than hold it forever.
	js, err := jetstream.New(cl.nc, jetstream.WithPublishAsyncTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	g := generate.New(generate.Options{Subscriptions: 5, TestEvery: -1})
	f := &feed{ids: make([]string, n), events: make([]*audit.Event, n), sentAt: make([]atomic.Int64, n), done: make(chan struct{})}
	for i := range f.events {
		f.events[i] = g.Next()
		f.ids[i] = f.events[i].EventId
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), giveUp)
	go func() {
		defer close(f.done)
		defer cancel()
		start := time.Now()
		for lo := 0; lo < n; lo += p.wave {
			hi := min(lo+p.wave, n)
			if !sleepCtx(ctx, time.Until(start.Add(time.Duration(lo/p.wave)*p.every))) {
				f.err = fmt.Errorf("events %d to %d of %d not published: %w", lo, hi, n, ctx.Err())
				return
			}
			if err := f.publishWave(ctx, js, lo, hi); err != nil {
				f.err = fmt.Errorf("events %d to %d of %d not acknowledged: %w", lo, hi, n, err)
				return
			}
		}
		f.took = time.Since(start)
	}()
	t.Cleanup(func() {
		cancel()
		<-f.done
		if f.err != nil {
			t.Errorf("feed: %v", f.err)
		}
	})
	t.Logf("feed: publishing %d events, %d every %v", n, p.wave, p.every)
	return f
}

// publishWave publishes events lo to hi until the stream acknowledged all
// of them, or ctx ends.
func (f *feed) publishWave(ctx context.Context, js jetstream.JetStream, lo, hi int) error {
	now := time.Now().UnixNano()
	for i := lo; i < hi; i++ {
		f.sentAt[i].Store(now)
	}
	wait := 50 * time.Millisecond
	for {
		err := f.tryWave(ctx, js, lo, hi)
		if err == nil {
			f.acked.Add(int64(hi - lo))
			return nil
		}
		f.retries.Add(1)
		if !sleepCtx(ctx, wait) {
			return err
		}
		wait = min(2*wait, time.Second)
	}
}

func (f *feed) tryWave(ctx context.Context, js jetstream.JetStream, lo, hi int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pub := audit.NewPublisher(js, audit.PublisherOptions{})
	for i := lo; i < hi; i++ {
		if err := pub.PublishAsync(ctx, f.events[i]); err != nil {
			return err
		}
	}
	return pub.Flush(ctx)
}

// wait blocks until the feed ended and fails the test if it gave up.
func (f *feed) wait(t *testing.T) {
	t.Helper()
	<-f.done
	if f.err != nil {
		t.Fatalf("feed: %v", f.err)
	}
	t.Logf("feed: %d events acknowledged in %v, %d waves published again", len(f.ids), f.took.Round(time.Millisecond), f.retries.Load())
}

// finished reports whether the feed ended.
func (f *feed) finished() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// publishedSince returns the events first published at or after since: the
// stream stored them after since.
func (f *feed) publishedSince(since time.Time) []string {
	var out []string
	for i := range f.ids {
		if at := f.sentAt[i].Load(); at != 0 && at >= since.UnixNano() {
			out = append(out, f.ids[i])
		}
	}
	return out
}

// waitArrival waits until an event first published at or after since
// reached the HEC: the whole path works again, not just the backlog the
// forwarder already held. It returns how long after since that was.
func (f *feed) waitArrival(t *testing.T, col *collector, since time.Time, alive ...*proc) time.Duration {
	t.Helper()
	var at time.Time
	eventually(t, time.Minute, "an event published after "+since.Format("15:04:05.000")+" to arrive", func() bool {
		for _, p := range alive {
			p.mustRun(t)
		}
		col.refresh(t)
		if ids := f.publishedSince(since); len(ids) > 0 && col.distinct(ids) > 0 {
			at = time.Now()
			return true
		}
		return false
	})
	return at.Sub(since)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}
