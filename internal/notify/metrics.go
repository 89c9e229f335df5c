package notify

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const scope = "github.com/ezssh/siem-forwarder/internal/notify"

// Values of the reason attribute of the failed and dropped counters.
const (
	// reasonRefused: the mail server refused the email (ErrPermanent).
	reasonRefused = "refused"
	// reasonError: any other failure (network, TLS, timeout, a temporary
	// refusal); the email is tried again.
	reasonError = "error"
	// reasonAttempts: given up after MaxAttempts claims.
	reasonAttempts = "attempts"
	// reasonOverflow: the oldest waiting emails of a route with too many.
	reasonOverflow = "overflow"
)

// instruments are the notifier's metrics, named like the pipeline's
// (ezssh.forwarder.*). Every one carries the route and, where known, the
// kind of email (incident, outage, digest, recovered, aging); failed and
// dropped carry a reason. They count what Stats counts.
type instruments struct {
	sent, failed, dropped, unaddressed metric.Int64Counter
}

func newInstruments(mp metric.MeterProvider) (*instruments, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(scope)
	in := &instruments{}
	var errs []error
	counter := func(name, desc, unit string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return c
	}
	in.sent = counter("ezssh.forwarder.notifications.sent", "Admin emails the mail server accepted, by route and kind.", "{email}")
	in.failed = counter("ezssh.forwarder.notifications.failed", "Attempts to send an admin email that failed, by route, kind and reason (refused or error).", "{attempt}")
	in.dropped = counter("ezssh.forwarder.notifications.dropped", "Admin emails given up, by route, kind and reason (refused, attempts or overflow).", "{email}")
	in.unaddressed = counter("ezssh.forwarder.notifications.unaddressed", "Admin emails not queued because the route has no recipients, by route and kind.", "{email}")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return in, nil
}

// attrs is the attribute set of one measurement; empty values are left out.
func attrs(route, kind, reason string) metric.MeasurementOption {
	kv := []attribute.KeyValue{attribute.String("route", route)}
	if kind != "" {
		kv = append(kv, attribute.String("kind", kind))
	}
	if reason != "" {
		kv = append(kv, attribute.String("reason", reason))
	}
	return metric.WithAttributeSet(attribute.NewSet(kv...))
}

// failReason is the reason attribute of a failed attempt.
func failReason(err error) string {
	if errors.Is(err, ErrPermanent) {
		return reasonRefused
	}
	return reasonError
}

// count adds n to c with the attributes.
func count(ctx context.Context, c metric.Int64Counter, n int64, route, kind, reason string) {
	c.Add(ctx, n, attrs(route, kind, reason))
}
