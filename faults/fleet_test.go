package faults

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestFleetSurvivesSIGKILL runs three forwarders on one durable consumer
// while 50,000 events flow, in waves, and SIGKILLs one of them in every wave,
// restarting it at once.
func TestFleetSurvivesSIGKILL(t *testing.T) {
	const (
		events = 50_000
		// Each wave is published as fast as the feed goes, so that the fleet
		// has a backlog to work through with its send slots busy, whatever
		// the speed of the machine; a kill waits for that backlog, so it
		// lands on batches in flight: the work a forwarder must not lose.
		wave      = 5_000
		waveEvery = 3 * time.Second // ten waves: about 30 s
		fleet     = 3
		minKills  = 5
		// Settings given to every forwarder; the duplicate bound below is
		// computed from them.
		batchEvents = 100
		inFlight    = 4
		// Config.Prefetch's default for this batch size; the flag's larger
		// default would let the forwarders absorb a wave before a backlog
		// shows in the stream.
		prefetch = 2 * batchEvents
		// A killed forwarder's messages come back after the ack wait; the
		// default minute would only make the test slower. It is still far
		// above the keep-alive period (a third of it) that protects the
		// messages a live forwarder holds.
		ackWait = 10 * time.Second
		// Events waiting in the stream, beyond what the forwarders hold,
		// when a kill lands. While any wait, every forwarder's prefetch is
		// full and so are its send slots.
		backlog = fleet * batchEvents
	)
	// The server is not killed here, and fsync on every write would hold the
	// feed to about a thousand events a second.
	node := newNATSNode(t, "n1", false)
	node.start(t)
	cl := connect(t, node.url())
	cl.ensureStream(t, 1)
	col := startCollector(t)

	fwds := make([]*proc, fleet)
	start := func(i, generation int) {
		fwds[i] = startForwarder(t, fmt.Sprintf("forwarder-%d.%d", i, generation), node.url(), col.url,
			"--batch-events", strconv.Itoa(batchEvents), "--in-flight", strconv.Itoa(inFlight),
			"--prefetch", strconv.Itoa(prefetch), "--ack-wait", ackWait.String())
	}
	for i := range fwds {
		start(i, 0)
	}
	f := startFeed(t, cl, events, pace{wave: wave, every: waveEvery}, 3*time.Minute)

	// Once per wave, as soon as the fleet has a backlog, kill one forwarder
	// (round robin) and start it again.
	kills := 0
	tick := time.NewTicker(waveEvery)
	defer tick.Stop()
	for !f.finished() {
		var waiting uint64
		busy := poll(waveEvery*4/5, 10*time.Millisecond, func() bool {
			for _, p := range fwds {
				p.mustRun(t)
			}
			if info := cl.consumer(t, consumerName); info != nil {
				waiting = info.NumPending
			}
			return waiting >= backlog
		})
		if busy {
			victim := kills % fleet
			t.Logf("kill %d: SIGKILL %s with %d events waiting in the stream (%d of %d published)",
				kills+1, fwds[victim].name, waiting, f.acked.Load(), events)
			fwds[victim].kill(t)
			kills++
			start(victim, kills)
		} else {
			t.Logf("no kill in this wave: no backlog formed (%d of %d published)", f.acked.Load(), events)
		}
		<-tick.C
	}
	f.wait(t)
	if kills < minKills {
		t.Errorf("only %d kills landed on a fleet at work; the case needs %d", kills, minKills)
	}

	o := settle(t, "fleet-sigkill", cl, consumerName, col, f.ids, 3*time.Minute, func() []*proc { return fwds })
	report(t, o)
	// Duplicates come only from work a killed forwarder had done without its
	// acks reaching the server; the messages it had only prefetched come
	// back too, but had never been sent. Per kill, at most:
	//   - the requests the HEC may have accepted: inFlight batches of
	//     batchEvents events (internal/pipeline MaxInFlight and
	//     MaxBatchEvents; a batch still being filled has not been sent),
	//     plus the quarantine's one event sent alone;
	//   - the acks of settled batches still in the NATS client's write
	//     buffer, which it flushes when its flusher runs or at
	//     nats.DefaultWriteBufSize (32 KiB): at most that many bytes over 64,
	//     less than any ack takes on the wire ("PUB $JS.ACK.EZSSH_AUDIT.
	//     huntress.<n>.<seq>.<seq>.<19-digit time>.<pending> 4" and "+ACK").
	// Acks written to the socket that the server had not read when the kill
	// reset the connection are lost too; no setting bounds them, but on
	// loopback the server reads continuously, so they are few next to the
	// terms above.
	perKill := inFlight*batchEvents + 1 + nats.DefaultWriteBufSize/64
	bound := kills * perKill
	t.Logf("%d kills; duplicate bound %d = %d kills × (%d in flight × %d + 1 + %d unflushed acks)",
		kills, bound, kills, inFlight, batchEvents, nats.DefaultWriteBufSize/64)
	if o.duplicates > bound {
		t.Errorf("%d duplicates, above the in-flight bound %d", o.duplicates, bound)
	}
	if n := cl.deadLetters(t); n != 0 {
		t.Errorf("%d events were dead-lettered; none should be", n)
	}
}
