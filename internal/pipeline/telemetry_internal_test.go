package pipeline

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// The measurements taken for every event (received, end-to-end latency)
// allocate nothing once their series exist: the hot path stays allocation
// free whatever the event rate.
func TestPerEventMeasurementsDoNotAllocate(t *testing.T) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	in, err := newInstruments(Config{Meters: mp}, &Forwarder{})
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(Config{}.withDefaults(), Route{Name: "r"}, nil, newBudget(1<<20), 10, in, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	evs := []delivery.Event{{Time: time.Now()}, {Time: time.Now()}}
	measure := func() {
		r.in.received.Add(ctx, 1, r.addAttrs...)
		r.observeDelivered(ctx, evs)
	}
	measure() // creates the series
	if n := testing.AllocsPerRun(200, measure); n > 0 {
		t.Fatalf("per-event measurements allocate %v times per run, want 0", n)
	}
}

// A HEC request is counted under its route, the destination's host, its
// status and its class; an accepted one with attributes built once per
// destination, a failed one with those of its reply.
func TestRequestMetricsAttributes(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	in, err := newInstruments(Config{Meters: mp}, &Forwarder{})
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(Config{}.withDefaults(), Route{Name: "r", Destination: "https://hec.example.com:8088/services/collector"}, nil, newBudget(1<<20), 10, in, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	tgt := r.target.load()
	r.observeRequest(ctx, time.Now(), tgt, nil)
	r.observeRequest(ctx, time.Now(), tgt, nil)
	if allocs := testing.AllocsPerRun(100, func() { r.observeRequest(ctx, time.Now(), tgt, nil) }); allocs > 0 {
		t.Errorf("an accepted request's measurements allocate %v times, want 0", allocs)
	}
	r.setTarget(nil, "https://other.example.com/services/collector")
	r.observeRequest(ctx, time.Now(), r.target.load(), busyErr{})

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "ezssh.forwarder.hec.requests" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				key := ""
				for _, k := range []attribute.Key{"route", "server.address", "http.response.status_code", "ezssh.hec.class"} {
					v, _ := dp.Attributes.Value(k)
					key += v.String() + " "
				}
				got[key] = dp.Value
			}
		}
	}
	want := map[string]int64{
		"r hec.example.com 200 success ": 103,
		"r other.example.com 503 retry ": 1,
	}
	if len(got) != len(want) {
		t.Fatalf("request series %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("series %q = %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
}

// busyErr is a HEC's 503 "Server is busy".
type busyErr struct{}

func (busyErr) Error() string                      { return "503 Server is busy" }
func (busyErr) DeliveryClass() delivery.Class      { return delivery.Retry }
func (busyErr) Reply() (status, code int, ok bool) { return 503, 9, true }
