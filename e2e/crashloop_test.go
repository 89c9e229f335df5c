package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// A message that kills whoever holds it (the testhooks build exits when it is
// about to send an event holding crashMarker) is dead-lettered as
// undeliverable after the allowed number of deliveries, while a supervisor
// keeps restarting the forwarder; every other event is delivered, including
// those that shared the poison message's first batches.
func TestCrashLoopEndsInDeadLetter(t *testing.T) {
	const crashMarker = "CRASH-ME-NOW"
	ns := startNATS(t)
	ids := ns.publish(t, 1000)
	poison := &audit.Event{
		EventType:             audit.EventTypeGit,
		SubscriptionId:        "e2e-sub-0",
		RequestorFriendlyName: crashMarker,
	}
	p := audit.NewPublisher(ns.js, audit.PublisherOptions{})
	if _, err := p.Publish(context.Background(), poison); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, ns.publish(t, 1000)...)

	h := startHEC(t, nil)
	env := withWindow(runEnv(t, ns.url(), h.url(), "crashloop"), 2*time.Second)
	env["FORWARDER_TEST_CRASH_ON"] = crashMarker

	crashes := 0
	proc := startBinary(t, forwarderHooksBin, "forwarder-0", env)
	eventually(t, 90*time.Second, "every good event delivered and the poison dead-lettered", func() bool {
		if proc.exited() {
			// The supervisor (systemd, Kubernetes) restarts it.
			crashes++
			proc = startBinary(t, forwarderHooksBin, fmt.Sprintf("forwarder-%d", crashes), env)
		}
		return h.distinct() >= len(ids) && dlqMessages(t, ns) >= 1
	})
	// Twice in a batch, then three times alone (the default MaxCrashes).
	if crashes != 5 {
		t.Errorf("the forwarder crashed %d times, want 5: twice before the poison is a suspect, then three solo attempts", crashes)
	}
	checkComplete(t, countAll(ids, h))

	ctx := context.Background()
	s, err := ns.js.Stream(ctx, "EZSSH_AUDIT_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	if n := dlqMessages(t, ns); n != 1 {
		t.Fatalf("%d dead letters, want only the poison", n)
	}
	info, _ := s.Info(ctx)
	m, err := s.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get(pipeline.HeaderReason); got != "undeliverable" {
		t.Errorf("dead letter reason %q, want undeliverable", got)
	}
	if f, err := audit.Inspect(m.Data); err != nil || f.EventId != poison.EventId {
		t.Errorf("dead letter is not the poison event: %s", m.Data)
	}
	t.Logf("crashes: %d; dead letter after %s deliveries", crashes, m.Header.Get(pipeline.HeaderAttempts))
}
