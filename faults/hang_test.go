package faults

import (
	"strings"
	"testing"
	"time"
)

// TestHECHang makes the HEC accept requests and never answer. The forwarder's
// requests must time out, its breaker open and the route's consumer be paused
// on the server, holding the events in the stream; once the HEC answers
// again, every event must arrive.
func TestHECHang(t *testing.T) {
	const (
		before = 500   // delivered while the HEC is healthy
		during = 2_000 // published while it hangs
	)
	node := newNATSNode(t, "n1", true)
	node.start(t)
	cl := connect(t, node.url())
	cl.ensureStream(t, 1)
	col := startCollector(t)
	// The outage outlasts the ack wait several times over: everything the
	// forwarder pulled, batched or still waiting behind a full batch, must
	// be kept alive, or the server sends it again on resume while the
	// forwarder still holds it (duplicates without a crash).
	const ackWait = 3 * time.Second
	fwd := startForwarder(t, "forwarder", node.url(), col.url,
		"--hec-timeout", "1s", // the timeout that must fire
		"--retry-max", "1s", "--pause-min", "1s", "--pause-max", "2s", "--ack-wait", ackWait.String())
	alive := func() []*proc { return []*proc{fwd} }

	f1 := startFeed(t, cl, before, perSecond(1_000), time.Minute)
	f1.wait(t)
	eventually(t, time.Minute, "the first events to arrive", func() bool {
		fwd.mustRun(t)
		col.refresh(t)
		return col.distinct(f1.ids) == before
	})

	col.setMode(t, "hang")
	hangFrom := col.stats(t)
	hung := time.Now()
	f2 := startFeed(t, cl, during, perSecond(1_000), time.Minute)
	eventually(t, time.Minute, "the route's consumer to be paused on the server", func() bool {
		fwd.mustRun(t)
		info := cl.consumer(t, consumerName)
		return info != nil && info.Paused
	})
	t.Logf("consumer paused %v after the HEC began to hang", time.Since(hung).Round(time.Millisecond))
	f2.wait(t)
	// Hold the outage for four ack waits (a duration the case is about,
	// not a wait for a condition).
	time.Sleep(time.Until(hung.Add(4 * ackWait)))
	s := col.stats(t)
	if s.Requests <= hangFrom.Requests {
		t.Errorf("no request reached the hanging HEC (%d requests before, %d now)", hangFrom.Requests, s.Requests)
	}
	if s.Events != hangFrom.Events {
		t.Errorf("the hanging HEC accepted %d events", s.Events-hangFrom.Events)
	}

	col.setMode(t, "ok")
	healed := time.Now()
	ids := append(append([]string(nil), f1.ids...), f2.ids...)
	o := settle(t, "hec-hang", cl, consumerName, col, ids, 2*time.Minute, alive)
	report(t, o)
	t.Logf("every event arrived %v after the HEC answered again", time.Since(healed).Round(time.Millisecond))
	// Nothing crashed and the hanging HEC accepted nothing: each event
	// must have arrived once.
	if o.duplicates != 0 {
		t.Errorf("%d duplicates without a crash", o.duplicates)
	}
	if info := cl.consumer(t, consumerName); info == nil || info.Paused {
		t.Errorf("the consumer is still paused (or unknown) after delivery resumed: %+v", info)
	}
	if n := cl.deadLetters(t); n != 0 {
		t.Errorf("%d events were dead-lettered; none should be", n)
	}
	// The sends must have failed by the forwarder's own request timeout
	// (the HEC never answered), which net/http words this way.
	if out := fwd.output(); !strings.Contains(out, "Client.Timeout exceeded") {
		t.Error("the forwarder never reported an HEC request timeout")
	}
}
