package pipeline

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/delivery"
)

const scope = "github.com/ezssh/siem-forwarder/internal/pipeline"

// maxLinks bounds the publisher spans a batch span links to.
const maxLinks = 128

// instruments are the forwarder's metrics. Names follow OpenTelemetry's
// semantic conventions where one exists (http.client.request.duration); the
// rest are ezssh.forwarder.*. Every one carries the route.
type instruments struct {
	received, delivered, deadLettered, returned metric.Int64Counter
	requests, stalls                            metric.Int64Counter
	requestDuration                             metric.Float64Histogram
	batchEvents, batchBytes                     metric.Int64Histogram
	latency                                     metric.Float64Histogram
	tracer                                      trace.Tracer
}

func newInstruments(cfg Config, f *Forwarder) (*instruments, error) {
	mp, tp := cfg.Meters, cfg.Tracers
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m := mp.Meter(scope)
	in := &instruments{tracer: tp.Tracer(scope)}
	var err, e error
	counter := func(name, desc, unit string) metric.Int64Counter {
		var c metric.Int64Counter
		c, e = m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		if e != nil {
			err = e
		}
		return c
	}
	in.received = counter("ezssh.forwarder.events.received", "Events pulled from the stream.", "{event}")
	in.delivered = counter("ezssh.forwarder.events.delivered", "Events the destination accepted (and that were acknowledged).", "{event}")
	in.deadLettered = counter("ezssh.forwarder.events.dead_lettered", "Events stored in the dead-letter stream, by reason.", "{event}")
	in.returned = counter("ezssh.forwarder.events.skipped", "Events returned to the stream undelivered (shutdown, route stopped or changed); they are delivered later.", "{event}")
	in.requests = counter("ezssh.forwarder.hec.requests", "Requests to the destination, by HTTP status and outcome class.", "{request}")
	in.stalls = counter("ezssh.forwarder.stalls", "Waits of a route for a free sender or for memory budget that lasted a third of the ack wait; the route stops pulling until each ends.", "{stall}")
	if in.requestDuration, e = m.Float64Histogram("http.client.request.duration", metric.WithDescription("Duration of HEC requests."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)); e != nil {
		err = e
	}
	if in.batchEvents, e = m.Int64Histogram("ezssh.forwarder.batch.events", metric.WithDescription("Events per HEC request."), metric.WithUnit("{event}"),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)); e != nil {
		err = e
	}
	if in.batchBytes, e = m.Int64Histogram("ezssh.forwarder.batch.bytes", metric.WithDescription("Uncompressed event bytes per HEC request."), metric.WithUnit("By"),
		metric.WithExplicitBucketBoundaries(1<<10, 4<<10, 16<<10, 64<<10, 256<<10, 512<<10, 1<<20, 2<<20)); e != nil {
		err = e
	}
	if in.latency, e = m.Float64Histogram("ezssh.forwarder.delivery.latency", metric.WithDescription("End-to-end latency: the event's RequestDate to the HEC's 2xx."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3600)); e != nil {
		err = e
	}
	breaker, e := m.Int64ObservableGauge("ezssh.forwarder.breaker.state", metric.WithDescription("Route breaker: 0 closed, 1 half-open, 2 open (consumer paused)."))
	if e != nil {
		err = e
	}
	pending, e := m.Int64ObservableGauge("ezssh.forwarder.consumer.pending", metric.WithDescription("Events waiting for the route in the stream plus those delivered but not yet acknowledged (polled)."), metric.WithUnit("{event}"))
	if e != nil {
		err = e
	}
	if err != nil {
		return nil, err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, h := range f.routes {
			if h.r == nil {
				continue
			}
			o.ObserveInt64(breaker, int64(h.r.stats.breaker.Load()), h.r.attrs)
			if p := h.r.stats.pending.Load(); p >= 0 {
				o.ObserveInt64(pending, p, h.r.attrs)
			}
		}
		return nil
	}, breaker, pending)
	return in, err
}

// routeAttrs is the attribute set of a route's measurements.
func routeAttrs(route string) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(attribute.String("route", route)))
}

// startBatchSpan starts the span of one batch send. A batch of one event
// continues its publisher's trace; a larger one links to up to maxLinks of
// its publishers' spans.
func (r *runner) startBatchSpan(ctx context.Context, msgs []jetstream.Msg, evs []delivery.Event) (context.Context, trace.Span) {
	bytes := 0
	for _, ev := range evs {
		bytes += len(ev.Body)
	}
	attrs := trace.WithAttributes(attribute.String("route", r.route.Name), attribute.Int("ezssh.batch.events", len(evs)), attribute.Int("ezssh.batch.bytes", bytes))
	if len(msgs) == 1 {
		if sc := audit.SpanContextOf(msgs[0].Headers()); sc.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
		return r.in.tracer.Start(ctx, "send batch", attrs, trace.WithSpanKind(trace.SpanKindConsumer))
	}
	ctx, span := r.in.tracer.Start(ctx, "send batch", attrs, trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() {
		for i, m := range msgs {
			if i == maxLinks {
				break
			}
			if sc := audit.SpanContextOf(m.Headers()); sc.IsValid() {
				span.AddLink(trace.Link{SpanContext: sc})
			}
		}
	}
	return ctx, span
}

// observeRequest records one HEC request: its span, its count and duration.
func (r *runner) observeRequest(ctx context.Context, start time.Time, t *target, err error) {
	attrs, add, rec := t.okAttrs, t.okAdd, t.okRecord
	if err != nil {
		status, _, _ := delivery.ReplyOf(err)
		attrs = requestAttrs(r.route.Name, t.host, status, delivery.ClassOf(err).String())
		opt := metric.WithAttributeSet(attrs)
		add, rec = []metric.AddOption{opt}, []metric.RecordOption{opt}
	}
	r.in.requests.Add(ctx, 1, add...)
	r.in.requestDuration.Record(ctx, time.Since(start).Seconds(), rec...)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attrs.ToSlice()...)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	}
}

// requestAttrs are the attributes of a HEC request's metrics and span; a
// status of 200 stands for any 2xx (the client does not say which).
func requestAttrs(route, host string, status int, class string) attribute.Set {
	return attribute.NewSet(
		attribute.String("route", route),
		attribute.String("http.request.method", "POST"),
		attribute.String("server.address", host),
		attribute.Int("http.response.status_code", status),
		attribute.String("ezssh.hec.class", class),
	)
}

// observeDelivered records a batch the destination accepted.
func (r *runner) observeDelivered(ctx context.Context, evs []delivery.Event) {
	now := time.Now()
	bytes := 0
	for _, ev := range evs {
		bytes += len(ev.Body)
		if !ev.Time.IsZero() {
			r.in.latency.Record(ctx, now.Sub(ev.Time).Seconds(), r.recordAttrs...)
		}
	}
	r.in.delivered.Add(ctx, int64(len(evs)), r.addAttrs...)
	r.in.batchEvents.Record(ctx, int64(len(evs)), r.recordAttrs...)
	r.in.batchBytes.Record(ctx, int64(bytes), r.recordAttrs...)
}
