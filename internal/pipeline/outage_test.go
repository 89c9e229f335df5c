package pipeline_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// A destination that refuses our token, then is down, for many probe cycles:
// nothing is dead-lettered, the events in line are not redelivered (their
// delivery count does not grow toward the crash-loop limit), and everything
// arrives once it recovers.
func TestLongOutageDeadLettersNothing(t *testing.T) {
	js := startJetStream(t)
	want := publishN(t, js, 1_000, 2, "outage")
	var mode atomic.Int32 // 0: 401, 1: 503, 2: healthy
	var probes atomic.Int64
	h := startHEC(t, huntress.CollectorOptions{
		Fail: func(_ *http.Request, events [][]byte) (int, string, bool) {
			if events == nil {
				probes.Add(1)
			}
			switch mode.Load() {
			case 0:
				return http.StatusUnauthorized, `{"text":"Invalid token","code":4}`, true
			case 1:
				return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
			}
			return 0, "", false
		},
	})
	cfg := fastConfig()
	cfg.PauseMax = 300 * time.Millisecond
	cfg.MaxDeliveries = 2
	f, _ := startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: h.client(t)})
	eventually(t, 20*time.Second, "probe cycles while the token is refused", func() bool { return probes.Load() >= 8 })
	if !consumerInfo(t, js, "global").Paused {
		t.Error("consumer not paused while the destination refuses the token")
	}
	mode.Store(1)
	p := probes.Load()
	eventually(t, 20*time.Second, "probe cycles while the HEC is down", func() bool { return probes.Load() >= p+8 })
	mode.Store(2)
	eventually(t, 30*time.Second, "all delivered after recovery", func() bool { return h.unique() >= len(want) })
	h.check(t, want)
	if n := len(streamMessages(t, js, "ezssh.dlq.")); n != 0 {
		t.Errorf("%d events dead-lettered during an outage", n)
	}
	info := consumerInfo(t, js, "global")
	if info.NumRedelivered != 0 {
		t.Errorf("%d messages redelivered during the outage: the events in line moved toward the delivery limit", info.NumRedelivered)
	}
	if s := f.Stats()[0]; s.DeadLettered != 0 {
		t.Errorf("stats count %d dead letters", s.DeadLettered)
	}
	evs := routeEvents(t, js)
	if !hasState(evs, pipeline.StateOpened) || !hasState(evs, pipeline.StateRecovered) {
		t.Errorf("route events %+v, want opened and recovered", evs)
	}
	for _, ev := range evs {
		if ev.State == pipeline.StateOpened && ev.Class != "misconfigured" {
			t.Errorf("incident opened with class %q, want misconfigured (401)", ev.Class)
		}
	}
}

func TestTooLargeBatchesAreSplit(t *testing.T) {
	js := startJetStream(t)
	want := publishN(t, js, 300, 2, "split")
	// One event bigger than anything the HEC takes.
	huge := eventBody("split-huge", "sub-00", 0)
	huge = append(huge[:len(huge)-1], []byte(`,"Padding":"`+repeat('x', 40_000)+`"}`)...)
	if _, err := audit.NewPublisher(js, audit.PublisherOptions{}).PublishRaw(context.Background(), huge); err != nil {
		t.Fatal(err)
	}
	h := startHEC(t, huntress.CollectorOptions{MaxBodyBytes: 20_000})
	startForwarder(t, js, fastConfig(), pipeline.Route{Name: "global", Sink: h.client(t)})
	eventually(t, 30*time.Second, "all that fit delivered", func() bool { return h.unique() >= len(want) })
	for _, m := range dlqMessages(t, js, 1) {
		if !contains(m.Data, "split-huge") {
			t.Errorf("dead letter is not the oversized event")
		}
		if got := m.Header.Get(pipeline.HeaderStatus); got != "413" {
			t.Errorf("dead letter status %q, want 413", got)
		}
		if string(m.Data) != string(huge) {
			t.Errorf("dead letter body changed")
		}
	}
	h.check(t, want)
}

func repeat(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func TestWarnsBeforeHeldEventsAgeOut(t *testing.T) {
	js := startJetStream(t)
	if _, err := audit.EnsureStream(context.Background(), js, audit.StreamOptions{MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	publishN(t, js, 50, 1, "aging")
	h := startHEC(t, huntress.CollectorOptions{
		Fail: func(*http.Request, [][]byte) (int, string, bool) {
			return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
		},
	})
	cfg := fastConfig()
	cfg.AgingWarning = 2 * time.Hour // everything held is within the warning
	startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: h.client(t)})
	var aging pipeline.RouteEvent
	eventually(t, 20*time.Second, "an aging warning", func() bool {
		for _, ev := range routeEvents(t, js) {
			if ev.State == pipeline.StateAging {
				aging = ev
				return true
			}
		}
		return false
	})
	if aging.HeldEvents != 50 {
		t.Errorf("aging warning counts %d held events, want 50", aging.HeldEvents)
	}
	if d := time.Until(aging.ExpiresAt); d < 50*time.Minute || d > time.Hour {
		t.Errorf("held events expire in %v, want about an hour", d)
	}
	if len(streamMessages(t, js, "ezssh.dlq.")) != 0 {
		t.Error("events dead-lettered while held")
	}
}

// An outage many ack-waits long redelivers nothing: every message the route
// has pulled, in a batch or still waiting behind a full one, is kept alive
// until it is delivered, so none comes back to be sent twice.
func TestOutageLongerThanAckWaitSendsNothingTwice(t *testing.T) {
	js := startJetStream(t)
	// More than the batches in flight, the batch being filled and the
	// prefetch together, so that messages wait outside any batch.
	want := publishN(t, js, 3_000, 3, "ackwait")
	var down atomic.Bool
	down.Store(true)
	var refused atomic.Int64
	h := startHEC(t, huntress.CollectorOptions{
		Fail: func(_ *http.Request, events [][]byte) (int, string, bool) {
			if down.Load() {
				if events != nil {
					refused.Add(1)
					time.Sleep(300 * time.Millisecond) // a slow failure, as a HEC timing out
				}
				return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
			}
			return 0, "", false
		},
	})
	cfg := fastConfig()
	cfg.AckWait = 1500 * time.Millisecond
	cfg.MaxBatchEvents = 100
	cfg.MaxInFlight = 2
	cfg.Prefetch = 500
	startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: h.client(t)})
	eventually(t, 20*time.Second, "the consumer paused by the outage", func() bool {
		return refused.Load() > 0 && consumerInfo(t, js, "global").Paused
	})
	// Outlast the ack wait several times over, watching the consumer: a
	// message whose ack wait expired shows as redelivered.
	deadline := time.Now().Add(5 * cfg.AckWait)
	for time.Now().Before(deadline) {
		if info := consumerInfo(t, js, "global"); info.NumRedelivered != 0 {
			t.Fatalf("%d messages redelivered during the outage: pulled messages were not kept alive", info.NumRedelivered)
		}
		time.Sleep(100 * time.Millisecond)
	}
	down.Store(false)
	// Within seconds: a pull request that went out while the consumer was
	// paused must not hold the route until it expires.
	eventually(t, 10*time.Second, "all delivered after recovery", func() bool { return h.unique() >= len(want) })
	eventually(t, 10*time.Second, "the consumer settled", func() bool {
		info := consumerInfo(t, js, "global")
		return info.NumAckPending == 0 && info.NumPending == 0
	})
	h.check(t, want)
	if info := consumerInfo(t, js, "global"); info.NumRedelivered != 0 {
		t.Errorf("%d messages redelivered", info.NumRedelivered)
	}
}

// A route whose HEC hangs (within its timeout, so the breaker stays closed)
// stalls with a full batch and no free sender; a route whose HEC is fine can
// still wait long for memory budget that the first one's batches hold. In
// both waits, what was pulled must be kept alive, and the pulling must stop:
// a message that waits unseen past the ack wait comes back and is sent
// twice.
func TestBudgetStarvationLongerThanAckWaitSendsNothingTwice(t *testing.T) {
	js := startJetStream(t)
	release := make(chan struct{})
	var hanging atomic.Int64
	hangs := startHEC(t, huntress.CollectorOptions{
		Fail: func(r *http.Request, events [][]byte) (int, string, bool) {
			if events != nil {
				hanging.Add(1)
				defer hanging.Add(-1)
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			return 0, "", false
		},
	})
	healthy := startHEC(t, huntress.CollectorOptions{})
	cfg := fastConfig()
	cfg.AckWait = 1500 * time.Millisecond
	cfg.MaxBatchEvents = 20
	cfg.MaxInFlight = 2
	cfg.MemoryBudget = 4 << 10 // about 17 events of about 230 bytes
	reader := sdkmetric.NewManualReader()
	cfg.Meters = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	first := publishN(t, js, 400, 1, "held")
	held := subRoute(t, "sub-00", hangs)
	c, err := huntress.New(huntress.Config{URL: hangs.srv.URL, Token: testToken, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	held.Sink = c // hangs for as long as the test holds it
	f, _ := startForwarder(t, js, cfg, held)
	stats := func(route string) pipeline.RouteStats {
		for _, s := range f.Stats() {
			if s.Route == route {
				return s
			}
		}
		t.Fatalf("no route %s", route)
		return pipeline.RouteStats{}
	}
	// Both sends hang, and the route took about as many events as the
	// budget holds: it is spent, or will be with the next one.
	eventually(t, 10*time.Second, "the hanging route holding the budget", func() bool {
		return hanging.Load() == int64(cfg.MaxInFlight) && stats("sub-00").Received > int64(cfg.MemoryBudget)/250
	})
	if err := f.SetRoute(subRoute(t, "sub-01", healthy)); err != nil {
		t.Fatal(err)
	}
	second := bySubscription(publishN(t, js, 400, 2, "starved"), 2)
	for id, body := range second[0] {
		first[id] = body // the hanging route's share
	}
	eventually(t, 10*time.Second, "the healthy route waiting for budget", func() bool {
		return stats("sub-01").Stalls > 0
	})
	deadline := time.Now().Add(4 * cfg.AckWait)
	for time.Now().Before(deadline) {
		for _, c := range []string{"huntress-sub-00", "huntress-sub-01"} {
			if info := consumerInfo(t, js, c); info.NumRedelivered != 0 {
				t.Fatalf("%s: %d messages redelivered while the budget was spent: pulled messages were not kept alive", c, info.NumRedelivered)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(release)
	eventually(t, 20*time.Second, "all delivered once the HEC answers", func() bool {
		return hangs.unique() >= len(first) && healthy.unique() >= len(second[1])
	})
	hangs.check(t, first)
	healthy.check(t, second[1])
	// Each message went out from the server once: none expired in hand.
	for c, n := range map[string]int{"huntress-sub-00": len(first), "huntress-sub-01": len(second[1])} {
		eventually(t, 10*time.Second, c+" settled", func() bool {
			info := consumerInfo(t, js, c)
			return info.NumAckPending == 0 && info.NumPending == 0
		})
		if info := consumerInfo(t, js, c); info.Delivered.Consumer != uint64(n) {
			t.Errorf("%s: %d deliveries of %d messages", c, info.Delivered.Consumer, n)
		}
	}
	if s := stats("sub-00"); s.Stalls == 0 {
		t.Error("the hanging route never stopped pulling while its senders hung")
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	stalled := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "ezssh.forwarder.stalls" {
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					route, _ := dp.Attributes.Value("route")
					stalled[route.AsString()] = dp.Value
				}
			}
		}
	}
	for _, route := range []string{"sub-00", "sub-01"} {
		if stalled[route] != stats(route).Stalls {
			t.Errorf("stalls metric of %s = %d, want %d as in its stats", route, stalled[route], stats(route).Stalls)
		}
	}
}

// A forwarder of the fleet whose own breaker never opened still pulls from a
// consumer another instance paused: its pull request waits on the server
// during the pause, and is served as soon as the pausing instance resumes
// the consumer, not when the request expires (30 s).
func TestPausedByAnotherInstanceResumesForAll(t *testing.T) {
	js := startJetStream(t)
	var down atomic.Bool
	down.Store(true)
	failing := startHEC(t, huntress.CollectorOptions{Fail: func(_ *http.Request, _ [][]byte) (int, string, bool) {
		if down.Load() {
			return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
		}
		return 0, "", false
	}})
	other := startHEC(t, huntress.CollectorOptions{})
	cfg := fastConfig()
	first := publishN(t, js, 10, 1, "before")
	a, _ := startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: failing.client(t)})
	eventually(t, 20*time.Second, "the consumer paused by the first instance", func() bool { return consumerInfo(t, js, "global").Paused })
	// The second instance joins during the pause: nothing reaches it, so
	// its breaker stays closed and its pull request waits on the server.
	b, _ := startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: other.client(t)})
	if !consumerInfo(t, js, "global").Paused {
		t.Fatal("the second instance's start resumed the consumer paused by the first")
	}
	down.Store(false)
	eventually(t, 20*time.Second, "the consumer resumed", func() bool { return !consumerInfo(t, js, "global").Paused })
	resumed := time.Now()
	want := map[string][]byte{}
	for i := 0; b.Stats()[0].Delivered == 0; i++ {
		if time.Since(resumed) > 10*time.Second {
			t.Fatalf("the second instance delivered nothing within 10s of the resume (the first delivered %d)", a.Stats()[0].Delivered)
		}
		for id, body := range publishN(t, js, 20, 1, fmt.Sprintf("after-%02d", i)) {
			want[id] = body
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the second instance delivered its first events %v after the resume", time.Since(resumed).Round(time.Millisecond))
	for id, body := range first {
		want[id] = body
	}
	eventually(t, 20*time.Second, "everything delivered by the two instances", func() bool {
		return failing.unique()+other.unique() >= len(want)
	})
	for id := range want {
		if n := failing.count(id) + other.count(id); n != 1 {
			t.Fatalf("event %s delivered %d times", id, n)
		}
	}
}
