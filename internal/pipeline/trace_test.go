package pipeline_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

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

// Events published under their own spans that travel in one batch: the batch
// span links to every publisher span, the HEC request spans under it carry
// their status, and the event the HEC refuses gets a dead-letter span under
// the batch span.
func TestBatchSpanLinksEveryPublisher(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	js := startJetStream(t)
	const n = 5
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("linked-%d", i)
	}
	bad := ids[2]
	h := startHEC(t, huntress.CollectorOptions{RejectEvent: func(body []byte) bool { return contains(body, bad) }})
	p := audit.NewPublisher(js, audit.PublisherOptions{})
	for i, id := range ids {
		// A root span each: n unrelated traces.
		ctx, root := tp.Tracer("test").Start(context.Background(), "producer "+id)
		if _, err := p.PublishRaw(ctx, eventBody(id, "sub-01", i)); err != nil {
			t.Fatal(err)
		}
		root.End()
	}

	cfg := fastConfig()
	cfg.Tracers = tp
	// Every event is stored before the forwarder starts, and the batch waits
	// to be full: one batch of n.
	cfg.MaxBatchEvents = n
	cfg.Linger = 5 * time.Second
	startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: h.client(t)})
	eventually(t, 20*time.Second, "delivered", func() bool { return h.unique() == n-1 })
	dlqMessages(t, js, 1)

	var (
		publish     = map[trace.SpanID]bool{}
		batches     []sdktrace.ReadOnlySpan
		posts, dead []sdktrace.ReadOnlySpan
	)
	eventually(t, 10*time.Second, "spans exported", func() bool {
		clear(publish)
		batches, posts, dead = nil, nil, nil
		for _, s := range exp.GetSpans().Snapshots() {
			switch s.Name() {
			case "publish " + audit.SubjectPrefix:
				publish[s.SpanContext().SpanID()] = true
			case "send batch":
				batches = append(batches, s)
			case "POST":
				posts = append(posts, s)
			case "dead-letter":
				dead = append(dead, s)
			}
		}
		return len(publish) == n && len(batches) > 0 && len(dead) > 0
	})
	if len(batches) != 1 {
		t.Fatalf("%d batch spans, want 1 batch of %d events", len(batches), n)
	}
	batch := batches[0]
	if got := intAttr(batch.Attributes(), "ezssh.batch.events"); got != n {
		t.Errorf("batch span says %d events, want %d", got, n)
	}
	linked := map[trace.SpanID]bool{}
	for _, l := range batch.Links() {
		if !publish[l.SpanContext.SpanID()] {
			t.Errorf("batch span links to %v, not a publisher span", l.SpanContext.SpanID())
		}
		linked[l.SpanContext.SpanID()] = true
	}
	if len(linked) != n {
		t.Errorf("batch span links to %d publisher spans, want %d", len(linked), n)
	}
	if batch.Parent().IsValid() {
		t.Errorf("a batch of %d continues trace %v; it should only link", n, batch.Parent().TraceID())
	}

	// The first request is refused (400), the retries of its parts accepted.
	statuses := map[int]int{}
	for _, s := range posts {
		if s.Parent().SpanID() != batch.SpanContext().SpanID() {
			t.Errorf("HEC request span is not a child of the batch span")
		}
		statuses[intAttr(s.Attributes(), "http.response.status_code")]++
	}
	if statuses[http.StatusOK] == 0 || statuses[http.StatusBadRequest] == 0 || len(statuses) != 2 {
		t.Errorf("HEC request spans by status %v, want some 200 and some 400", statuses)
	}

	if len(dead) != 1 {
		t.Fatalf("%d dead-letter spans, want 1", len(dead))
	}
	if dead[0].Parent().SpanID() != batch.SpanContext().SpanID() {
		t.Errorf("dead-letter span is not a child of the batch span")
	}
	reason := ""
	for _, a := range dead[0].Attributes() {
		if a.Key == "ezssh.dlq.reason" {
			reason = a.Value.AsString()
		}
	}
	if reason != "rejected" {
		t.Errorf("dead-letter span reason %q, want rejected", reason)
	}
}

func intAttr(attrs []attribute.KeyValue, key attribute.Key) int {
	for _, a := range attrs {
		if a.Key == key {
			return int(a.Value.AsInt64())
		}
	}
	return -1
}
