package pipeline_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

func TestEveryEventArrivesOnceByteForByte(t *testing.T) {
	js := startJetStream(t)
	want := publishN(t, js, 10_000, 20, "ev")
	h := startHEC(t, huntress.CollectorOptions{})
	startForwarder(t, js, fastConfig(), pipeline.Route{Name: "global", Sink: h.client(t)})
	eventually(t, 60*time.Second, "all events delivered", func() bool { return h.unique() >= len(want) })
	eventually(t, 10*time.Second, "all acked", func() bool {
		i := consumerInfo(t, js, "global")
		return i.NumAckPending == 0 && i.NumPending == 0
	})
	h.check(t, want)
}

func TestRetriesWithBackoffWhileHECFails(t *testing.T) {
	js := startJetStream(t)
	want := publishN(t, js, 2_000, 4, "retry")
	var failing atomic.Bool
	failing.Store(true)
	var failed atomic.Int64
	h := startHEC(t, huntress.CollectorOptions{
		Fail: func(*http.Request, [][]byte) (int, string, bool) {
			if failing.Load() {
				failed.Add(1)
				return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
			}
			return 0, "", false
		},
	})
	cfg := fastConfig()
	cfg.RetryInitial = 100 * time.Millisecond
	cfg.RetryMax = 400 * time.Millisecond
	cfg.BreakerFailures = 1000 // this test is about retries, not the breaker
	start := time.Now()
	startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: h.client(t)})
	eventually(t, 10*time.Second, "failures", func() bool { return failed.Load() >= 12 })
	elapsed := time.Since(start)
	failing.Store(false)
	eventually(t, 30*time.Second, "all delivered after recovery", func() bool { return h.unique() >= len(want) })
	h.check(t, want)
	// Four senders retrying with exponential backoff from 100ms: a storm
	// would be hundreds of requests a second.
	if rate := float64(failed.Load()) / elapsed.Seconds(); rate > 60 {
		t.Errorf("%d failed requests in %v (%.0f/s): retries are a storm, not a backoff", failed.Load(), elapsed, rate)
	}
}

func TestBreakerPausesConsumerThenResumesAndDrains(t *testing.T) {
	js := startJetStream(t)
	want := publishN(t, js, 3_000, 3, "brk")
	var down atomic.Bool
	down.Store(true)
	var probes, eventRequests atomic.Int64
	h := startHEC(t, huntress.CollectorOptions{
		Fail: func(_ *http.Request, events [][]byte) (int, string, bool) {
			if events == nil {
				probes.Add(1)
			} else {
				eventRequests.Add(1)
			}
			if down.Load() {
				return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
			}
			return 0, "", false
		},
	})
	f, _ := startForwarder(t, js, fastConfig(), pipeline.Route{Name: "global", Sink: h.client(t)})
	eventually(t, 10*time.Second, "consumer paused on the server", func() bool {
		return consumerInfo(t, js, "global").Paused
	})
	eventually(t, 10*time.Second, "several probes while paused", func() bool { return probes.Load() >= 3 })
	sent := eventRequests.Load()
	// While paused, the route probes but sends no events.
	eventually(t, 10*time.Second, "another probe", func() bool { return probes.Load() >= 5 })
	if got := eventRequests.Load(); got != sent {
		t.Errorf("route sent %d event requests while paused", got-sent)
	}
	if s := f.Stats()[0]; s.Breaker != "open" && s.Breaker != "half-open" {
		t.Errorf("breaker %q while destination is down, want open", s.Breaker)
	}
	down.Store(false)
	eventually(t, 30*time.Second, "all delivered after recovery", func() bool { return h.unique() >= len(want) })
	eventually(t, 10*time.Second, "consumer resumed", func() bool { return !consumerInfo(t, js, "global").Paused })
	h.check(t, want)
	// Held in hand, not redelivered: the outage did not push events toward
	// the delivery limit.
	if n := consumerInfo(t, js, "global").NumRedelivered; n != 0 {
		t.Errorf("%d messages redelivered during the outage", n)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	js := startJetStream(t)
	want := publishN(t, js, 1, 1, "ra")
	var mu sync.Mutex
	var times []time.Time
	h := startHEC(t, huntress.CollectorOptions{
		RetryAfter: 1,
		Fail: func(_ *http.Request, events [][]byte) (int, string, bool) {
			if events == nil {
				return 0, "", false
			}
			mu.Lock()
			defer mu.Unlock()
			times = append(times, time.Now())
			if len(times) == 1 {
				return http.StatusTooManyRequests, `{"text":"Too many requests","code":9}`, true
			}
			return 0, "", false
		},
	})
	startForwarder(t, js, fastConfig(), pipeline.Route{Name: "global", Sink: h.client(t)})
	eventually(t, 10*time.Second, "delivered", func() bool { return h.unique() == 1 })
	h.check(t, want)
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 2 {
		t.Fatalf("%d requests, want 2", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < 900*time.Millisecond {
		t.Errorf("retried after %v; the HEC asked for Retry-After: 1", gap)
	}
}

func TestShutdownNaksWhatDidNotFinish(t *testing.T) {
	js := startJetStream(t)
	publishN(t, js, 500, 1, "stop")
	release := make(chan struct{})
	h := startHEC(t, huntress.CollectorOptions{
		Fail: func(r *http.Request, events [][]byte) (int, string, bool) {
			if events != nil {
				select {
				case <-release:
				case <-r.Context().Done():
					// The forwarder gave up on this request: record nothing.
					return http.StatusServiceUnavailable, "", true
				}
			}
			return 0, "", false
		},
	})
	defer close(release)
	cfg := fastConfig()
	cfg.ShutdownTimeout = 500 * time.Millisecond
	f, stop := startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: h.client(t)})
	eventually(t, 10*time.Second, "a batch in flight", func() bool { return f.Stats()[0].InFlight > 0 })
	start := time.Now()
	stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v with a 500ms deadline", d)
	}
	if n := h.Stats().Events; n != 0 {
		t.Fatalf("HEC accepted %d events of a hung request", n)
	}
	info := consumerInfo(t, js, "global")
	if info.AckFloor.Stream != 0 {
		t.Errorf("ack floor at %d: something was acked although nothing was delivered", info.AckFloor.Stream)
	}
	// Everything is still there for the next forwarder.
	h2 := startHEC(t, huntress.CollectorOptions{})
	startForwarder(t, js, fastConfig(), pipeline.Route{Name: "global", Sink: h2.client(t)})
	eventually(t, 20*time.Second, "all delivered by the next forwarder", func() bool { return h2.unique() == 500 })
}

func TestDeadLettersRejectedEventsAndDeliversTheRest(t *testing.T) {
	js := startJetStream(t)
	want := publishN(t, js, 20_000, 20, "poison")
	poison := map[string]bool{"poison-000000": true, "poison-004321": true, "poison-010000": true, "poison-010001": true, "poison-019999": true}
	h := startHEC(t, huntress.CollectorOptions{
		RejectEvent: func(body []byte) bool {
			for id := range poison {
				if contains(body, id) {
					return true
				}
			}
			return false
		},
	})
	startForwarder(t, js, fastConfig(), pipeline.Route{Name: "global", Sink: h.client(t)})
	for id := range poison {
		delete(want, id)
	}
	eventually(t, 60*time.Second, "good events delivered", func() bool { return h.unique() >= len(want) })
	dlq := dlqMessages(t, js, len(poison))
	for _, m := range dlq {
		if got := m.Header.Get(pipeline.HeaderReason); got != "rejected" {
			t.Errorf("dead letter reason %q, want rejected", got)
		}
		if got := m.Header.Get(pipeline.HeaderCode); got != "6" {
			t.Errorf("dead letter HEC code %q, want 6", got)
		}
		found := false
		for id := range poison {
			found = found || contains(m.Data, id)
		}
		if !found {
			t.Errorf("dead letter %s is not a poison event", m.Data)
		}
	}
	h.check(t, want)
}

func TestInvalidEventsAreDeadLettered(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	big := append([]byte(`{"EventId":"big","EventType":"EZSSH_SSH","SubscriptionId":"sub-01","RequestDate":"2026-01-01T00:00:00Z","Padding":"`),
		repeat('x', 2<<20)...)
	big = append(big, `"}`...)
	bad := [][]byte{
		{},
		big,
		[]byte(`not json`),
		[]byte(`[1,2,3]`),
		[]byte("{\"EventId\":\"x\xff\"}"),
		[]byte(`{"EventId":"no-type","SubscriptionId":"sub-01","RequestDate":"2026-01-01T00:00:00Z"}`),
	}
	for _, b := range bad {
		if _, err := js.Publish(ctx, "ezssh.audit.sub-01.ssh", b); err != nil {
			t.Fatal(err)
		}
	}
	want := publishN(t, js, 100, 1, "good")
	h := startHEC(t, huntress.CollectorOptions{})
	startForwarder(t, js, fastConfig(), pipeline.Route{Name: "global", Sink: h.client(t)})
	eventually(t, 20*time.Second, "good events delivered", func() bool { return h.unique() >= len(want) })
	for _, m := range dlqMessages(t, js, len(bad)) {
		if got := m.Header.Get(pipeline.HeaderReason); got != "invalid" {
			t.Errorf("dead letter reason %q, want invalid", got)
		}
		if m.Header.Get(pipeline.HeaderError) == "" {
			t.Errorf("dead letter without an error text")
		}
	}
	h.check(t, want)
}
