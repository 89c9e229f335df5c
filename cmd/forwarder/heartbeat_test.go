package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// TestHeartbeatBounded: with 1,000 routes, idle closed ones are left out, open
// breakers come first, and a value over the limit drops the least recent
// deliveries and counts them.
func TestHeartbeatBounded(t *testing.T) {
	now := time.Now()
	var stats []pipeline.RouteStats
	for i := range 1000 {
		s := pipeline.RouteStats{Route: fmt.Sprintf("sub-%04d", i), Breaker: "closed"}
		switch {
		case i%10 == 0: // busy
			s.Received, s.Delivered = 10, 10
			s.LastDelivery = now.Add(-time.Duration(i) * time.Second)
		case i == 999:
			s.Breaker, s.PausedUntil = "open", now.Add(time.Minute)
		}
		stats = append(stats, s)
	}
	rec := &heartbeat{Instance: "h-1", StartedAt: now, UpdatedAt: now}

	b, err := encodeHeartbeat(rec, stats, heartbeatMaxValue)
	if err != nil {
		t.Fatal(err)
	}
	var got heartbeat
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.RoutesTotal != 1000 || got.BreakersOpen != 1 || len(got.Routes) != 101 || got.RoutesOmitted != 0 {
		t.Fatalf("total %d open %d listed %d omitted %d; want 1000, 1, 101 (100 busy + 1 open), 0",
			got.RoutesTotal, got.BreakersOpen, len(got.Routes), got.RoutesOmitted)
	}
	if r := got.Routes[0]; r.Route != "sub-0999" || r.Breaker != "open" || r.PausedUntil == nil {
		t.Errorf("first route %+v, want the open breaker", r)
	}
	if len(b) > 16<<10 {
		t.Errorf("heartbeat of 100 busy routes is %d bytes; keep it small", len(b))
	}

	const limit = 2000
	b, err = encodeHeartbeat(rec, stats, limit)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > limit {
		t.Fatalf("value of %d bytes, over the limit %d", len(b), limit)
	}
	got = heartbeat{}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.RoutesOmitted == 0 || len(got.Routes)+got.RoutesOmitted != 101 {
		t.Errorf("listed %d omitted %d, want some omitted, 101 in all", len(got.Routes), got.RoutesOmitted)
	}
	if got.Routes[0].Route != "sub-0999" || got.Routes[1].Route != "sub-0000" {
		t.Errorf("kept %s, %s first; want the open breaker, then the latest delivery", got.Routes[0].Route, got.Routes[1].Route)
	}
}

func TestInstanceID(t *testing.T) {
	a, b := newInstanceID(), newInstanceID()
	if !validInstanceID(a) || a == b {
		t.Errorf("instance ids %q, %q: want two different valid keys", a, b)
	}
	for _, tc := range []struct {
		host, want string
	}{
		{"web-1.example.com", "web-1-example-com"},
		{"", "forwarder"},
		{strings.Repeat("x", 100), strings.Repeat("x", 48)},
	} {
		if got := kvSafe(tc.host, 48); got != tc.want {
			t.Errorf("kvSafe(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
	if validInstanceID("a.b") || validInstanceID("") || validInstanceID("a b") {
		t.Error("invalid ids accepted")
	}
}

// TestHeartbeatFailureNotFatal: a heartbeat that cannot be written is logged
// and retried; stop still returns, and deletes nothing it never wrote.
func TestHeartbeatFailureNotFatal(t *testing.T) {
	e := startDLQEnv(t)
	nc, err := nats.Connect(e.url)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := pipeline.New(js, pipeline.Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close() // every write fails from now on
	var logs lockedBuffer
	stop, err := startHeartbeatEvery(context.Background(), js, fw, "h-2", 1, 20*time.Millisecond,
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	dlqEventually(t, 5*time.Second, "two failed heartbeats logged", func() bool {
		return strings.Count(logs.String(), "heartbeat not written") >= 2
	})
	stop()
	stop() // idempotent
	if s := logs.String(); !strings.Contains(s, "instance=h-2") || !strings.Contains(s, "component=heartbeat") {
		t.Errorf("log lacks the instance or component:\n%s", s)
	}
	if _, err := startHeartbeat(context.Background(), js, fw, "not valid", 1, nil); err == nil {
		t.Error("an instance id with a space was accepted")
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
