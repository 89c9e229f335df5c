package faults

import (
	"syscall"
	"testing"
	"time"
)

// TestClusterNodeLoss runs the forwarder against a three-node JetStream
// cluster with the audit stream at three replicas, and kills (SIGKILL) the
// node that leads the forwarder's consumer in the middle of the run. The two
// nodes left keep a quorum: nothing may be lost, and the events published
// after the kill must arrive too.
func TestClusterNodeLoss(t *testing.T) {
	const events = 4_000
	nodes := startCluster(t, 3)
	cl := connect(t, urls(nodes...))
	// The forwarder creates the stream too, with --stream-replicas; the
	// test creates it first so that the feed can start at once.
	cl.ensureStream(t, 3)
	col := startCollector(t)
	fwd := startForwarder(t, "forwarder", urls(nodes...), col.url, "--stream-replicas", "3", "--ack-wait", "10s")
	f := startFeed(t, cl, events, perSecond(200), 3*time.Minute) // about 20 s

	var leader *natsNode
	eventually(t, time.Minute, "a third of the events to arrive and the consumer to have a leader", func() bool {
		fwd.mustRun(t)
		col.refresh(t)
		if col.distinct(f.ids) < events/3 {
			return false
		}
		info := cl.consumer(t, consumerName)
		if info == nil || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			return false // an R3 consumer lists its two followers
		}
		for _, n := range nodes {
			if n.name == info.Cluster.Leader {
				leader = n
			}
		}
		return leader != nil
	})
	if f.finished() {
		t.Fatal("the feed ended before the kill: it would not be in the middle of the run")
	}
	t.Logf("SIGKILL %s, the consumer's leader: %d events acknowledged by the stream, %d accepted by the HEC", leader.name, f.acked.Load(), col.distinct(f.ids))
	leader.stop(t, syscall.SIGKILL)
	killed := time.Now()

	d := f.waitArrival(t, col, killed, fwd)
	t.Logf("the first event published after the kill arrived %v after it", d.Round(time.Millisecond))
	f.wait(t)
	after := f.publishedSince(killed)
	alive := func() []*proc { return []*proc{fwd} }
	o := settle(t, "cluster-node-loss", cl, consumerName, col, f.ids, 2*time.Minute, alive)
	report(t, o)
	// Events first published after the kill went through the two nodes
	// left only: they prove the path works without the lost node, not just
	// that the backlog drained.
	if len(after) == 0 {
		t.Error("no event was published after the kill")
	} else if got := col.distinct(after); got != len(after) {
		t.Errorf("%d of the %d events published after the kill arrived", got, len(after))
	} else {
		t.Logf("all %d events published after the kill arrived", len(after))
	}
	if info := cl.consumer(t, consumerName); info != nil && info.Cluster != nil && info.Cluster.Leader == leader.name {
		t.Errorf("the consumer's leader is still the killed %s", leader.name)
	}
	if n := cl.deadLetters(t); n != 0 {
		t.Errorf("%d events were dead-lettered; none should be", n)
	}
}
