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

// SpanContextOf returns the publisher's span context carried by headers, if
// any.
func SpanContextOf(h nats.Header) trace.SpanContext {
	if len(h) == 0 {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(traceContext.Extract(context.Background(), HeaderCarrier(h)))
}
