package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/delivery"
	"github.com/ezssh/siem-forwarder/internal/generate"
	"github.com/ezssh/siem-forwarder/internal/huntress"
)

// floorStage starts a no-fsync stage holding n generated events, and a
// counting collector.
func floorStage(t *testing.T, ctx context.Context, n int) (*stage, *collector) {
	t.Helper()
	st, err := newStage(ctx, t.TempDir(), "f-test", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.close)
	g := generate.New(generate.Options{Subscriptions: 3, Seed: 7})
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i], _ = g.NextBody()
	}
	if _, err := st.publish(ctx, bodies); err != nil {
		t.Fatal(err)
	}
	col, err := startCountingCollector(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { col.Close() })
	return st, col
}

// TestFloorDrain drains a backlog of two full batches and a remainder
// through the floor's pipeline: the collector gets every event once, and
// the consumer is left with nothing pending or unacknowledged.
func TestFloorDrain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 2*floorBatch + 234
	st, col := floorStage(t, ctx, n)

	took, _, err := floorDrain(ctx, st, col, n, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if took <= 0 {
		t.Errorf("took %v, want > 0", took)
	}
	if got, dups := col.distinct(); got != n || dups != 0 {
		t.Errorf("collector got %d distinct events and %d repeats, want %d and none", got, dups, n)
	}
	if err := col.check(); err != nil {
		t.Error(err)
	}
	// floorDrain waited for this already; a second look must agree.
	if err := st.waitDrained(ctx, floorConsumer, time.Second); err != nil {
		t.Error(err)
	}
}

// TestFloorDrainFails checks that a HEC error fails the floor at once, with
// the error, and acks nothing it did not deliver.
func TestFloorDrainFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 3 * floorBatch
	st, col := floorStage(t, ctx, n)
	col.setFault(fault503)

	_, _, err := floorDrain(ctx, st, col, n, 30*time.Second)
	if err == nil {
		t.Fatal("the floor drained into a HEC answering 503")
	}
	var hecErr *huntress.Error
	if !errors.As(err, &hecErr) || hecErr.Class != delivery.Retry || !strings.Contains(err.Error(), "send a batch") {
		t.Errorf("err = %v, want the Send error of a 503", err)
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Errorf("the floor failed by its timeout, not by the 503: %v", err)
	}
	if got, _ := col.distinct(); got != 0 {
		t.Errorf("collector got %d events while failing every request", got)
	}
	c, err := st.js.Consumer(ctx, audit.StreamName, floorConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Consumer != 0 {
		t.Errorf("consumer ack floor %d, want nothing acknowledged", info.AckFloor.Consumer)
	}
}
