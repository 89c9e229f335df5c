package pipeline_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// The publisher's span is the parent of the forwarder's batch span, and the
// HEC request span under it carries the HTTP status.
func TestTraceContinuesFromPublisher(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	js := startJetStream(t)
	h := startHEC(t, huntress.CollectorOptions{})
	cfg := fastConfig()
	cfg.Tracers = tp
	startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: h.client(t)})

	ctx, root := tp.Tracer("test").Start(context.Background(), "producer")
	if _, err := audit.NewPublisher(js, audit.PublisherOptions{}).PublishRaw(ctx, eventBody("traced-1", "sub-01", 1)); err != nil {
		t.Fatal(err)
	}
	root.End()
	eventually(t, 10*time.Second, "delivered", func() bool { return h.unique() == 1 })

	var publish, batch, post sdktrace.ReadOnlySpan
	eventually(t, 10*time.Second, "spans exported", func() bool {
		for _, s := range exp.GetSpans().Snapshots() {
			switch s.Name() {
			case "publish " + audit.SubjectPrefix:
				publish = s
			case "send batch":
				batch = s
			case "POST":
				post = s
			}
		}
		return publish != nil && batch != nil && post != nil
	})
	if batch.Parent().SpanID() != publish.SpanContext().SpanID() || batch.SpanContext().TraceID() != publish.SpanContext().TraceID() {
		t.Errorf("batch span's parent %v, want the publish span %v", batch.Parent().SpanID(), publish.SpanContext().SpanID())
	}
	if post.Parent().SpanID() != batch.SpanContext().SpanID() {
		t.Errorf("HEC request span is not a child of the batch span")
	}
	status := -1
	for _, a := range post.Attributes() {
		if a.Key == "http.response.status_code" {
			status = int(a.Value.AsInt64())
		}
	}
	if status != http.StatusOK {
		t.Errorf("HEC request span status %d, want 200", status)
	}
}
