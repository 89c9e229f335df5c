package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// statusHEC is a collector behind httptest; with failing set it answers 503
// to everything, probes included.
func statusHEC(t *testing.T, token string, failing bool) *huntress.Client {
	t.Helper()
	opts := huntress.CollectorOptions{Token: token}
	if failing {
		opts.Fail = func(*http.Request, [][]byte) (int, string, bool) {
			return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
		}
	}
	srv := httptest.NewServer(huntress.NewCollector(opts))
	t.Cleanup(srv.Close)
	c, err := huntress.New(huntress.Config{URL: srv.URL, Token: token, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runStatusJSON runs forwarder status --json against url.
func runStatusJSON(t *testing.T, url string) *statusReport {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"status", "--json", "--nats-url", url}, &out, &errb); err != nil {
		t.Fatalf("status --json: %v\n%s", err, errb.String())
	}
	var rep statusReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("status --json is not one JSON document: %v\n%s", err, out.String())
	}
	return &rep
}

func findRoute(rs []routeStatus, name string) *routeStatus {
	for i := range rs {
		if rs[i].Route == name {
			return &rs[i]
		}
	}
	return nil
}

// TestStatusReflectsPausedRouteAndDeadLetter runs the real pipeline with a
// heartbeat: route sub-x's HEC answers 503, so its breaker opens and its
// consumer is paused, and an invalid event on it is dead-lettered; route ok
// delivers. status --json and the table must show exactly that.
func TestStatusReflectsPausedRouteAndDeadLetter(t *testing.T) {
	e := startDLQEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const token = "11111111-2222-3333-4444-555555555555"
	bad, good := statusHEC(t, token, true), statusHEC(t, token, false)
	cfg := pipeline.Config{
		RetryInitial:    20 * time.Millisecond,
		RetryMax:        100 * time.Millisecond,
		PauseMin:        3 * time.Second, // each pause reaches past the probe: always paused
		PauseMax:        5 * time.Second,
		ProbeTimeout:    2 * time.Second,
		BreakerFailures: 3,
		ShutdownTimeout: 5 * time.Second,
	}
	fw, err := pipeline.New(e.js, cfg, []pipeline.Route{
		{Name: "sub-x", Consumer: "huntress-sub-x", FilterSubject: "ezssh.audit.sub-x.>", Destination: "bad", Sink: bad},
		{Name: "ok", Consumer: "huntress_ok", FilterSubject: "ezssh.audit.sub-y.>", Destination: "good", Sink: good},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- fw.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	dlqEventually(t, 10*time.Second, "forwarder ready", fw.Ready)
	const instance = "test-host-a1b2c3"
	stopHB, err := startHeartbeatEvery(ctx, e.js, fw, instance, 1, 50*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stopHB()

	// A consumer paused by hand that no instance reports: its breaker is
	// inferred. A replay consumer is listed apart.
	for _, name := range []string{"huntress-sub-z", "replay-7f3a"} {
		if _, err := e.audit.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: name, FilterSubject: "ezssh.audit.sub-z.>", AckPolicy: jetstream.AckExplicitPolicy,
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.js.PauseConsumer(ctx, e.audit.CachedInfo().Config.Name, "huntress-sub-z", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	// The invalid event first, so it is dead-lettered before the breaker
	// opens; then a valid one that the HEC refuses with 503.
	publish := func(subject string, body []byte) {
		t.Helper()
		if _, err := e.js.Publish(ctx, subject, body); err != nil {
			t.Fatal(err)
		}
	}
	publish("ezssh.audit.sub-x.ssh", []byte("not json"))
	dlqEventually(t, 10*time.Second, "the invalid event dead-lettered", func() bool {
		n, _ := e.dlq.Info(ctx, jetstream.WithSubjectFilter("ezssh.dlq.>"))
		return n != nil && n.State.Msgs > 0
	})
	publish("ezssh.audit.sub-x.ssh", dlqTestEvent("evt-x-1", "sub-x"))
	for i := range 3 {
		publish("ezssh.audit.sub-y.ssh", dlqTestEvent(fmt.Sprintf("evt-y-%d", i), "sub-y"))
	}
	const published = 5

	var rep *statusReport
	var x, ok *routeStatus
	deadline := time.Now().Add(20 * time.Second)
	for {
		rep = runStatusJSON(t, e.url)
		x, ok = findRoute(rep.Routes, "sub-x"), findRoute(rep.Routes, "ok")
		if x != nil && ok != nil && x.Paused && x.PausedUntil != nil && x.BreakerFrom == instance &&
			(x.Breaker == "open" || x.Breaker == "half-open") && ok.LastDelivery != nil && ok.Pending == 0 && ok.AckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(rep, "", "  ")
			t.Fatalf("status never showed sub-x paused with an open breaker and ok delivered:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if !x.PausedUntil.After(rep.Time) {
		t.Errorf("sub-x paused_until %v is not after the report's time %v", x.PausedUntil, rep.Time)
	}
	if x.Kind != kindSubscription || x.Consumer != "huntress-sub-x" {
		t.Errorf("sub-x: kind %q consumer %q, want subscription huntress-sub-x", x.Kind, x.Consumer)
	}
	if x.DLQ != 1 || ok.DLQ != 0 {
		t.Errorf("DLQ counts: sub-x %d, ok %d; want 1 and 0", x.DLQ, ok.DLQ)
	}
	if x.Pending+uint64(x.AckPending) != 1 {
		t.Errorf("sub-x pending %d + ack pending %d, want the one refused event", x.Pending, x.AckPending)
	}
	if x.LastDelivery != nil {
		t.Errorf("sub-x never delivered, but last_delivery is %v", x.LastDelivery)
	}
	if ok.Kind != kindStatic || ok.Breaker != "closed" || ok.Paused {
		t.Errorf("ok: kind %q breaker %q paused %v, want static, closed, not paused", ok.Kind, ok.Breaker, ok.Paused)
	}
	if z := findRoute(rep.Routes, "sub-z"); z == nil || z.Breaker != "paused" || z.BreakerFrom != "consumer" || z.PausedUntil == nil {
		t.Errorf("sub-z (paused by hand, reported by no instance): %+v, want breaker paused from the consumer", z)
	}
	if r := findRoute(rep.Replays, "replay-7f3a"); r == nil || findRoute(rep.Routes, "replay-7f3a") != nil {
		t.Errorf("replay-7f3a should be listed among the replays only: replays %+v", rep.Replays)
	}
	if len(rep.Instances) != 1 || rep.Instances[0].Instance != instance || rep.Instances[0].RoutesTotal != 2 ||
		rep.Instances[0].StartedAt.IsZero() || rep.Instances[0].UpdatedAt.Before(rep.Instances[0].StartedAt) {
		t.Errorf("instances: %+v, want %s running 2 routes", rep.Instances, instance)
	}
	if len(rep.Streams) != 2 {
		t.Fatalf("streams: %+v", rep.Streams)
	}
	as, ds := rep.Streams[0], rep.Streams[1]
	if as.Name != "EZSSH_AUDIT" || !as.Exists || as.Messages != published || as.Bytes == 0 ||
		as.FirstTime == nil || as.LastTime == nil || as.LastTime.Before(*as.FirstTime) {
		t.Errorf("audit stream: %+v, want %d messages with times", as, published)
	}
	if ds.Name != "EZSSH_AUDIT_DLQ" || ds.DeadLetters == nil || *ds.DeadLetters != 1 || ds.Messages < 1 {
		t.Errorf("dead-letter stream: %+v, want 1 dead letter", ds)
	}

	// The table tells the same.
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"status", "--nats-url", e.url}, &out, &errb); err != nil {
		t.Fatalf("status: %v\n%s", err, errb.String())
	}
	table := out.String()
	row := func(first string) []string {
		for _, line := range strings.Split(table, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == first {
				return f
			}
		}
		t.Fatalf("no row %q in the table:\n%s", first, table)
		return nil
	}
	if f := row("sub-x"); f[1] != "huntress-sub-x" || f[len(f)-1] != "1" ||
		!(slices.Contains(f, "open") || slices.Contains(f, "half-open")) || !strings.Contains(strings.Join(f, " "), "(in ") {
		t.Errorf("sub-x row %q: want consumer, open breaker, a pause and DLQ 1\n%s", f, table)
	}
	if f := row("ok"); f[len(f)-1] != "0" || !slices.Contains(f, "closed") || !slices.Contains(f, "ago") {
		t.Errorf("ok row %q: want closed, a delivery some time ago, DLQ 0\n%s", f, table)
	}
	if f := row("EZSSH_AUDIT"); f[1] != fmt.Sprint(published) {
		t.Errorf("audit stream row %q, want %d messages", f, published)
	}
	if f := row("EZSSH_AUDIT_DLQ"); !strings.Contains(strings.Join(f, " "), "(1 dead letter)") {
		t.Errorf("dead-letter stream row %q, want 1 dead letter", f)
	}
	if f := row(instance); !slices.Contains(f, "2") {
		t.Errorf("instance row %q, want 2 routes", f)
	}
	if f := row("replay-7f3a"); f[1] != "replay-7f3a" {
		t.Errorf("replay row %q", f)
	}
	for _, h := range []string{"STREAM", "ROUTE", "REPLAY", "INSTANCE"} {
		row(h)
	}

	// A stopped instance deletes its heartbeat at once.
	stopHB()
	rep = runStatusJSON(t, e.url)
	if len(rep.Instances) != 0 {
		t.Errorf("after stop, instances %+v, want none", rep.Instances)
	}
	if x := findRoute(rep.Routes, "sub-x"); x == nil || x.Breaker != "paused" {
		t.Errorf("with no heartbeat, a paused route shows breaker paused: %+v", x)
	}
}

// TestStatusEmptyServer: no streams, no bucket, no forwarder: status still
// answers, with warnings, and exits 0.
func TestStatusEmptyServer(t *testing.T) {
	e := startDLQEnv(t)
	ctx := context.Background()
	for _, s := range []string{"EZSSH_AUDIT", "EZSSH_AUDIT_DLQ"} {
		if err := e.js.DeleteStream(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	rep := runStatusJSON(t, e.url)
	if len(rep.Routes) != 0 || len(rep.Instances) != 0 || len(rep.Streams) != 2 || rep.Streams[0].Exists || rep.Streams[1].Exists {
		t.Errorf("empty server: %+v", rep)
	}
	if len(rep.Warnings) < 3 {
		t.Errorf("warnings %q, want one each for the bucket and both streams", rep.Warnings)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"status", "--nats-url", e.url}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"(does not exist)", "none alive", "warning:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestKindOf(t *testing.T) {
	for _, tc := range []struct{ consumer, route, kind string }{
		{"huntress", "global", kindGlobal},
		{"huntress-sub-1234", "sub-1234", kindSubscription},
		{"huntress_eu", "eu", kindStatic},
		{"replay-abc", "replay-abc", kindReplay},
		{"someone-else", "someone-else", kindOther},
	} {
		t.Run(tc.consumer, func(t *testing.T) {
			r := consumerRoute(&jetstream.ConsumerInfo{Name: tc.consumer}, "huntress", time.Now())
			if r.Route != tc.route || r.Kind != tc.kind {
				t.Errorf("consumer %s: route %q kind %q, want %q %q", tc.consumer, r.Route, r.Kind, tc.route, tc.kind)
			}
		})
	}
}
