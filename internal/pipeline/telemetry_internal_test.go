package pipeline

import (
	"context"
	"log/slog"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

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
