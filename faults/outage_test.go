package faults

import (
	"testing"
	"time"
)

// TestKillDuringOutage SIGKILLs the forwarder while the HEC is down (503),
// the route is paused and the forwarder holds the events it could not
// deliver. A new forwarder must deliver every one of them once the HEC is
// back. Unlike the fleet case, whose kills land on requests that a local HEC
// answers within milliseconds, this case is sure to kill a forwarder holding
// undelivered events, so a forwarder that acknowledged anything before the
// HEC accepted it loses events here every time.
func TestKillDuringOutage(t *testing.T) {
	const events = 1_000
	node := newNATSNode(t, "n1", true)
	node.start(t)
	cl := connect(t, node.url())
	cl.ensureStream(t, 1)
	col := startCollector(t)
	col.setMode(t, "unavailable")
	flags := []string{"--retry-max", "1s", "--pause-min", "1s", "--pause-max", "2s", "--ack-wait", "10s"}
	first := startForwarder(t, "forwarder-1", node.url(), col.url, flags...)

	f := startFeed(t, cl, events, perSecond(1_000), time.Minute)
	f.wait(t)
	var held int
	eventually(t, time.Minute, "the route to be paused with events in hand", func() bool {
		first.mustRun(t)
		info := cl.consumer(t, consumerName)
		if info == nil {
			return false
		}
		held = info.NumAckPending
		return info.Paused && held > 0
	})
	t.Logf("SIGKILL %s: route paused, %d events delivered to it and not acknowledged", first.name, held)
	first.kill(t)
	if s := col.stats(t); s.Events != 0 {
		t.Fatalf("the unavailable HEC accepted %d events", s.Events)
	}

	second := startForwarder(t, "forwarder-2", node.url(), col.url, flags...)
	col.setMode(t, "ok")
	healed := time.Now()
	o := settle(t, "kill-during-outage", cl, consumerName, col, f.ids, 2*time.Minute, func() []*proc { return []*proc{second} })
	report(t, o)
	t.Logf("every event arrived %v after the HEC came back", time.Since(healed).Round(time.Millisecond))
	if n := cl.deadLetters(t); n != 0 {
		t.Errorf("%d events were dead-lettered; none should be", n)
	}
}
