package faults

import (
	"syscall"
	"testing"
	"time"
)

// TestNATSRestart stops the nats-server process twice in the middle of the
// run, first cleanly (SIGTERM) and then as a crash (SIGKILL), and restarts it
// on the same store and port each time, while the feed keeps publishing
// (retrying through the outages) and the forwarder keeps delivering.
func TestNATSRestart(t *testing.T) {
	const events = 6_000
	node := newNATSNode(t, "n1", true)
	node.start(t)
	cl := connect(t, node.url())
	cl.ensureStream(t, 1)
	col := startCollector(t)
	fwd := startForwarder(t, "forwarder", node.url(), col.url, "--ack-wait", "10s")
	f := startFeed(t, cl, events, perSecond(300), 3*time.Minute) // about 20 s

	for i, stop := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGTERM", syscall.SIGTERM}, {"SIGKILL", syscall.SIGKILL}} {
		// Stop once a third, then two thirds, of the events arrived.
		at := events * (i + 1) / 3
		eventually(t, time.Minute, "events to arrive before the stop", func() bool {
			fwd.mustRun(t)
			col.refresh(t)
			return col.distinct(f.ids) >= at
		})
		t.Logf("%s to nats-server: %d events acknowledged by the stream, %d accepted by the HEC", stop.name, f.acked.Load(), col.distinct(f.ids))
		if f.finished() {
			t.Fatalf("the feed ended before the %s: the stop would not be in the middle of the run", stop.name)
		}
		node.stop(t, stop.sig)
		node.start(t)
		restarted := time.Now()
		d := f.waitArrival(t, col, restarted, fwd)
		t.Logf("nats-server restarted; the first event published after the restart arrived %v later", d.Round(time.Millisecond))
	}
	f.wait(t)
	o := settle(t, "nats-restart", cl, consumerName, col, f.ids, 2*time.Minute, func() []*proc { return []*proc{fwd} })
	report(t, o)
	if n := cl.deadLetters(t); n != 0 {
		t.Errorf("%d events were dead-lettered; none should be", n)
	}
}
