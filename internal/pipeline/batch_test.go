package pipeline_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// requestSizes records the number of events in every request a HEC accepts.
type requestSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (r *requestSizes) hook(_ *http.Request, events [][]byte) (int, string, bool) {
	if events != nil {
		r.mu.Lock()
		r.sizes = append(r.sizes, len(events))
		r.mu.Unlock()
	}
	return 0, "", false
}

func (r *requestSizes) get() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.sizes...)
}

func TestIdleRouteSendsEachEventAtOnce(t *testing.T) {
	js := startJetStream(t)
	var rs requestSizes
	h := startHEC(t, huntress.CollectorOptions{Fail: rs.hook})
	startForwarder(t, js, fastConfig(), pipeline.Route{Name: "global", Sink: h.client(t)})
	p := audit.NewPublisher(js, audit.PublisherOptions{})
	for i := range 5 {
		start := time.Now()
		if _, err := p.PublishRaw(context.Background(), eventBody(fmt.Sprintf("idle-%d", i), "sub-01", i)); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "event delivered", func() bool { return h.unique() == i+1 })
		// No batch-fill wait: far below any linger a fixed batcher would use.
		if d := time.Since(start); d > time.Second {
			t.Errorf("idle event took %v to arrive", d)
		}
	}
	for _, n := range rs.get() {
		if n != 1 {
			t.Errorf("idle route sent a request of %d events, want one per event: %v", n, rs.get())
			break
		}
	}
}

func TestBusyRouteFillsWholeBatches(t *testing.T) {
	js := startJetStream(t)
	want := publishN(t, js, 5_000, 5, "busy")
	var rs requestSizes
	h := startHEC(t, huntress.CollectorOptions{Fail: rs.hook})
	cfg := fastConfig()
	cfg.MaxInFlight = 1
	startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: h.client(t)})
	eventually(t, 30*time.Second, "all delivered", func() bool { return h.unique() >= len(want) })
	h.check(t, want)
	sizes := rs.get()
	full := 0
	for _, n := range sizes {
		if n > 500 {
			t.Fatalf("a request of %d events; the batch limit is 500", n)
		}
		if n == 500 {
			full++
		}
	}
	// 5,000 events of backlog: whole batches, a few partial ones while the
	// prefetch buffer fills at start.
	if len(sizes) > 20 || full < 5 {
		t.Errorf("%d requests, %d full: a backlog should go in full batches: %v", len(sizes), full, sizes)
	}
}

func TestBatchClosesAtMaxBytes(t *testing.T) {
	js := startJetStream(t)
	want := publishN(t, js, 1_000, 2, "bytes")
	var bodyLen int
	for _, b := range want {
		bodyLen = max(bodyLen, len(b))
	}
	var rs requestSizes
	h := startHEC(t, huntress.CollectorOptions{Fail: rs.hook})
	cfg := fastConfig()
	cfg.MaxBatchBytes = 10 * (bodyLen + 160)
	startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: h.client(t)})
	eventually(t, 30*time.Second, "all delivered", func() bool { return h.unique() >= len(want) })
	h.check(t, want)
	tens := 0
	for _, n := range rs.get() {
		if n > 10 {
			t.Fatalf("a request of %d events exceeds the %d-byte batch limit", n, cfg.MaxBatchBytes)
		}
		if n >= 9 {
			tens++
		}
	}
	if tens == 0 {
		t.Errorf("no batch came near the byte limit: %v", rs.get())
	}
}

func TestLingerGathersABatch(t *testing.T) {
	js := startJetStream(t)
	var rs requestSizes
	h := startHEC(t, huntress.CollectorOptions{Fail: rs.hook})
	cfg := fastConfig()
	cfg.Linger = 2 * time.Second
	startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: h.client(t)})
	want := publishN(t, js, 20, 1, "linger")
	eventually(t, 10*time.Second, "all delivered", func() bool { return h.unique() >= len(want) })
	h.check(t, want)
	// 20 events published within far less than the linger go together.
	if sizes := rs.get(); len(sizes) > 2 {
		t.Errorf("with a linger, 20 quick events took %d requests: %v", len(sizes), sizes)
	}
}
