package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ezssh/siem-forwarder/internal/notify"
	"github.com/ezssh/siem-forwarder/internal/notify/smtptest"
)

// One route's admin gets the incident email; the other route's address is
// refused by the mail server. The metrics count one sent and one failed (and
// dropped) email, each under its route, kind and reason.
func TestNotificationMetricsCountSentAndFailed(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Reject: func(rcpt string) error {
		if rcpt == "gone@example.com" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}})
	mailer, err := notify.NewSMTPMailer(notify.SMTPConfig{Host: srv.Host, Port: srv.Port, From: "forwarder@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	admins := map[string][]string{"global": {"admin@example.com"}, "sub-1": {"gone@example.com"}}
	n, err := notify.New(notify.Config{
		Mailer:       mailer,
		Store:        &notify.MemStore{},
		Recipients:   func(route string) []string { return admins[route] },
		RetryInitial: time.Millisecond,
		SendTimeout:  5 * time.Second,
		Meters:       mp,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, route := range []string{"global", "sub-1"} {
		a := deadLetter(notify.ReasonRejected, "sub-1", route+"-1")
		a.Route = route
		handle(t, n, a)
	}
	if got := len(srv.Messages()); got != 1 {
		t.Fatalf("the mail server received %d emails, want 1", got)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		metric string
		attrs  []attribute.KeyValue
		want   int64
	}{
		{"ezssh.forwarder.notifications.sent", kvs("route", "global", "kind", "incident"), 1},
		{"ezssh.forwarder.notifications.sent", kvs("route", "sub-1", "kind", "incident"), 0},
		{"ezssh.forwarder.notifications.failed", kvs("route", "sub-1", "kind", "incident", "reason", "refused"), 1},
		{"ezssh.forwarder.notifications.failed", kvs("route", "global", "kind", "incident", "reason", "refused"), 0},
		{"ezssh.forwarder.notifications.dropped", kvs("route", "sub-1", "kind", "incident", "reason", "refused"), 1},
	} {
		if got := counterValue(t, rm, c.metric, c.attrs); got != c.want {
			t.Errorf("%s%v = %d, want %d", c.metric, c.attrs, got, c.want)
		}
	}
	if s := n.Stats(); s.Sent != 1 || s.Failed != 1 || s.Dropped != 1 {
		t.Errorf("stats %+v, want 1 sent, 1 failed, 1 dropped", s)
	}
}

func kvs(pairs ...string) []attribute.KeyValue {
	var out []attribute.KeyValue
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, attribute.String(pairs[i], pairs[i+1]))
	}
	return out
}

// counterValue is the value of the integer counter name with exactly attrs;
// 0 when there is no such series.
func counterValue(t *testing.T, rm metricdata.ResourceMetrics, name string, attrs []attribute.KeyValue) int64 {
	t.Helper()
	want := attribute.NewSet(attrs...)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || !sum.IsMonotonic {
				t.Fatalf("%s is %T, want a monotonic int64 counter", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				if dp.Attributes.Equals(&want) {
					return dp.Value
				}
			}
		}
	}
	return 0
}
