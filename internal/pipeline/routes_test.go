package pipeline_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// subRoute is a subscription's route to its own HEC.
func subRoute(t *testing.T, sub string, h *hec) pipeline.Route {
	return pipeline.Route{
		Name:          sub,
		Consumer:      "huntress-" + sub,
		FilterSubject: audit.SubscriptionFilter(sub),
		Destination:   h.srv.URL,
		Sink:          h.client(t),
	}
}

// bySubscription splits published events by subscription (publishN spreads
// event i over sub-%02d, i%subs).
func bySubscription(want map[string][]byte, subs int) []map[string][]byte {
	out := make([]map[string][]byte, subs)
	for i := range out {
		out[i] = map[string][]byte{}
	}
	for id, body := range want {
		f, _ := audit.Inspect(body)
		var i int
		fmt.Sscanf(f.SubscriptionId, "sub-%02d", &i)
		out[i][id] = body
	}
	return out
}

func TestEachSubscriptionReachesOnlyItsOwnHEC(t *testing.T) {
	js := startJetStream(t)
	const subs = 10
	want := publishN(t, js, 5_000, subs, "own")
	perSub := bySubscription(want, subs)
	hecs := make([]*hec, subs)
	routes := []pipeline.Route{}
	for i := range subs {
		hecs[i] = startHEC(t, huntress.CollectorOptions{})
		routes = append(routes, subRoute(t, fmt.Sprintf("sub-%02d", i), hecs[i]))
	}
	global := startHEC(t, huntress.CollectorOptions{})
	routes = append(routes, pipeline.Route{Name: "global", Sink: global.client(t)})
	startForwarder(t, js, fastConfig(), routes...)
	eventually(t, 60*time.Second, "every HEC has its events", func() bool {
		for i, h := range hecs {
			if h.unique() < len(perSub[i]) {
				return false
			}
		}
		return global.unique() >= len(want)
	})
	for i, h := range hecs {
		h.check(t, perSub[i]) // exactly its own, exactly once
	}
	global.check(t, want)
}

// One customer's HEC fails for a minute — answering 503, or never answering —
// while the other nine keep delivering everything; the failing route is
// paused, its events arrive after it recovers, and nothing is dead-lettered.
func TestOneBrokenHECDoesNotHurtTheOthers(t *testing.T) {
	for _, mode := range []string{"503", "hang"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testIsolation(t, mode, 60*time.Second)
		})
	}
}

func testIsolation(t *testing.T, mode string, outage time.Duration) {
	js := startJetStream(t)
	const subs = 10
	var down atomic.Bool
	down.Store(true)
	release := make(chan struct{})
	hecs := make([]*hec, subs)
	routes := []pipeline.Route{}
	for i := range subs {
		opts := huntress.CollectorOptions{}
		if i == 0 {
			opts.Fail = func(r *http.Request, _ [][]byte) (int, string, bool) {
				if !down.Load() {
					return 0, "", false
				}
				if mode == "hang" {
					select {
					case <-release:
					case <-r.Context().Done():
					}
				}
				return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
			}
		}
		hecs[i] = startHEC(t, opts)
		rt := subRoute(t, fmt.Sprintf("sub-%02d", i), hecs[i])
		if i == 0 {
			c, err := huntress.New(huntress.Config{URL: hecs[i].srv.URL, Token: testToken, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			rt.Sink = c
		}
		routes = append(routes, rt)
	}
	cfg := fastConfig()
	cfg.ProbeTimeout = 500 * time.Millisecond
	startForwarder(t, js, cfg, routes...)

	// Events keep flowing to every subscription during the outage.
	ctx, stopPublishing := context.WithTimeout(context.Background(), outage)
	defer stopPublishing()
	want := publishFor(t, ctx, js, subs, 200)
	perSub := bySubscription(want, subs)
	for i := 1; i < subs; i++ {
		eventually(t, 30*time.Second, "healthy routes deliver during the outage", func() bool {
			return hecs[i].unique() >= len(perSub[i])
		})
	}
	if got := hecs[0].unique(); got != 0 {
		t.Errorf("the broken HEC accepted %d events while down", got)
	}
	if !consumerInfo(t, js, "huntress-sub-00").Paused {
		t.Error("the broken route's consumer is not paused")
	}
	down.Store(false)
	close(release)
	eventually(t, 60*time.Second, "the broken route catches up", func() bool { return hecs[0].unique() >= len(perSub[0]) })
	for i, h := range hecs {
		h.check(t, perSub[i])
	}
	if n := len(streamMessages(t, js, "ezssh.dlq.")); n != 0 {
		t.Errorf("%d events dead-lettered during an outage", n)
	}
}

// publishFor publishes events over subs subscriptions at about rate per
// second until ctx is done and returns them by EventId.
func publishFor(t *testing.T, ctx context.Context, js jetstream.JetStream, subs, rate int) map[string][]byte {
	t.Helper()
	p := audit.NewPublisher(js, audit.PublisherOptions{})
	out := map[string][]byte{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; {
		select {
		case <-ctx.Done():
			if err := p.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			return out
		case <-tick.C:
		}
		for range rate / 10 {
			id := fmt.Sprintf("iso-%06d", i)
			b := eventBody(id, fmt.Sprintf("sub-%02d", i%subs), i)
			if err := p.PublishRawAsync(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			out[id] = b
			i++
		}
	}
}

func TestRoutesChangeWhileEventsFlow(t *testing.T) {
	js := startJetStream(t)
	a := startHEC(t, huntress.CollectorOptions{})
	f, _ := startForwarder(t, js, fastConfig())
	ctx := context.Background()

	// Add: a route set while running starts delivering.
	if err := f.SetRoute(subRoute(t, "sub-00", a)); err != nil {
		t.Fatal(err)
	}
	first := publishN(t, js, 500, 1, "add")
	eventually(t, 20*time.Second, "added route delivers", func() bool { return a.unique() >= len(first) })

	// Change the token (and destination): events in flight and after go to
	// the new HEC, none is lost, none goes to the old one afterwards.
	b := startHEC(t, huntress.CollectorOptions{})
	before := a.unique()
	second := publishN(t, js, 500, 1, "change")
	if err := f.SetRoute(subRoute(t, "sub-00", b)); err != nil {
		t.Fatal(err)
	}
	third := publishN(t, js, 500, 1, "after")
	eventually(t, 20*time.Second, "all delivered across the change", func() bool {
		return a.unique()+b.unique() >= len(first)+len(second)+len(third)
	})
	for id := range third {
		if a.count(id) > 0 {
			t.Fatalf("event %s published after the change went to the old HEC", id)
		}
	}
	if a.unique() < before {
		t.Fatal("old HEC lost events")
	}

	// Disable: delivery stops, events wait in the stream.
	if err := f.RemoveRoute(ctx, "sub-00", false); err != nil {
		t.Fatal(err)
	}
	deliveredBefore := a.unique() + b.unique()
	held := publishN(t, js, 300, 1, "held")
	eventually(t, 10*time.Second, "held events wait in the consumer", func() bool {
		return consumerInfo(t, js, "huntress-sub-00").NumPending == uint64(len(held))
	})
	if n := a.unique() + b.unique(); n != deliveredBefore {
		t.Fatalf("the disabled route delivered %d events", n-deliveredBefore)
	}

	// Re-enable: the held events arrive.
	if err := f.SetRoute(subRoute(t, "sub-00", b)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "held events delivered after re-enable", func() bool {
		for id := range held {
			if b.count(id) == 0 {
				return false
			}
		}
		return true
	})

	// Delete: the route and its consumer go.
	if err := f.RemoveRoute(ctx, "sub-00", true); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Consumer(ctx, audit.StreamName, "huntress-sub-00"); err == nil {
		t.Error("deleted route's consumer still exists")
	}
	// Nothing lost, nothing duplicated across all of it.
	all := map[string][]byte{}
	for _, m := range []map[string][]byte{first, second, third, held} {
		for k, v := range m {
			all[k] = v
		}
	}
	for id := range all {
		if n := a.count(id) + b.count(id); n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
}

// A route with UntilSeq delivers up to that stream sequence and ends there.
func TestRouteEndsAtUntilSeq(t *testing.T) {
	js := startJetStream(t)
	first := publishN(t, js, 300, 1, "window")
	info, err := js.Stream(context.Background(), audit.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	end := info.CachedInfo().State.LastSeq
	later := publishN(t, js, 200, 1, "later")
	h := startHEC(t, huntress.CollectorOptions{})
	start := time.Now()
	f, _ := startForwarder(t, js, fastConfig(), pipeline.Route{Name: "replay", Sink: h.client(t), UntilSeq: end, Rate: 500})
	eventually(t, 20*time.Second, "the window delivered and the route ended", func() bool {
		return h.unique() >= len(first) && f.Stats()[0].Ended
	})
	// 300 events at 500/s (burst 50) take at least half a second.
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Errorf("300 events at 500/s took %v", d)
	}
	h.check(t, first)
	for id := range later {
		if h.count(id) != 0 {
			t.Fatalf("event %s after UntilSeq was delivered", id)
		}
	}
}
