package audit

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Trace context travels in the W3C headers traceparent and tracestate. The
// Publisher always writes them when ctx holds a span, whatever propagator the
// service configured, because the forwarder reads exactly these.
var traceContext = propagation.TraceContext{}

// tracer makes the publish spans, from the service's global TracerProvider
// (a no-op until the service installs one).
func tracer() trace.Tracer {
	return otel.Tracer("github.com/ezssh/siem-forwarder/audit")
}

// startPublishSpan starts the producer span of one publish.
func startPublishSpan(ctx context.Context, subject, eventID string) (context.Context, trace.Span) {
	return tracer().Start(ctx, "publish "+SubjectPrefix, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", subject),
			attribute.String("messaging.message.id", eventID),
		))
}

// HeaderCarrier lets OpenTelemetry propagators read and write NATS message
// headers. NATS headers are case-sensitive; Get also finds a key written in
// another case (traceparent from `nats pub -H Traceparent:…`).
type HeaderCarrier nats.Header

// Get returns the first value of key.
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// Set sets key to value, replacing any value.
func (c HeaderCarrier) Set(key, value string) { c[key] = []string{value} }

// Keys lists the keys.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Bounds on the trace headers SpanContextOf reads. A traceparent of version
// 00 is 55 bytes (later versions may append fields); W3C asks vendors to
// propagate at least 512 bytes of tracestate. The span context keeps the
// tracestate for as long as the spans that continue it wait for export, so
// an oversize header from a careless or hostile publisher would otherwise be
// held once per span.
const (
	maxTraceParent = 256
	maxTraceState  = 1024
)

// SpanContextOf returns the publisher's span context carried by headers, if
// any. A traceparent longer than 256 bytes is ignored, and a tracestate
// longer than 1 KiB is dropped (the trace continues without it).
func SpanContextOf(h nats.Header) trace.SpanContext {
	if len(h) == 0 {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(traceContext.Extract(context.Background(), boundedCarrier{HeaderCarrier(h)}))
}

// boundedCarrier reads trace headers, treating an oversize one as absent.
type boundedCarrier struct{ HeaderCarrier }

func (c boundedCarrier) Get(key string) string {
	v := c.HeaderCarrier.Get(key)
	limit := maxTraceState
	if strings.EqualFold(key, "traceparent") {
		limit = maxTraceParent
	}
	if len(v) > limit {
		return ""
	}
	return v
}
