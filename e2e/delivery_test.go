package e2e

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The in-flight window the delivery tests pass explicitly (they are also the
// defaults), from which the duplicate bound is computed.
const (
	prefetch    = 1000
	batchEvents = 500
	inFlight    = 4
)

// withWindow sets the in-flight window and ackWait on env.
func withWindow(env map[string]string, ackWait time.Duration) map[string]string {
	env["FORWARDER_PREFETCH"] = strconv.Itoa(prefetch)
	env["FORWARDER_BATCH_EVENTS"] = strconv.Itoa(batchEvents)
	env["FORWARDER_IN_FLIGHT"] = strconv.Itoa(inFlight)
	env["FORWARDER_ACK_WAIT"] = ackWait.String()
	return env
}

// TestSurvivesSIGKILL kills a forwarder in the middle of a backlog, with its
// every send slot holding a request the HEC has read but not yet answered,
// and checks that a new forwarder delivers every event, with no more
// duplicates than the killed one could have had in hand.
func TestSurvivesSIGKILL(t *testing.T) {
	const n = 20_000
	// Duplicates come only from messages the killed process held unacked:
	// its prefetch buffer, the batches its senders had at the HEC and the
	// batch being filled.
	const maxDuplicates = prefetch + inFlight*batchEvents + batchEvents

	ns := startNATS(t)
	ids := ns.publish(t, n)

	// Once part of the backlog is delivered, the HEC holds every request: it
	// has read the events but does not answer until the gate opens after the
	// kill. Then it stores every other held request, as a HEC that had
	// accepted them just before the crash would (the killed process never
	// learns it: those events are the duplicates), and drops the rest, as
	// one that never got them would (the process must not have acknowledged
	// those events).
	var (
		held     atomic.Int32
		gate     = make(chan struct{})
		openGate = sync.OnceFunc(func() { close(gate) })
	)
	h := startHEC(t, func(h *hec, _ *http.Request, events [][]byte) (int, string, bool) {
		if len(events) == 0 || h.distinct() < n/10 {
			return 0, "", false
		}
		select {
		case <-gate:
			return 0, "", false
		default:
		}
		k := held.Add(1)
		<-gate
		if k%2 == 0 {
			return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
		}
		return 0, "", false
	})
	t.Cleanup(openGate) // before the HEC's Close, which waits for held requests
	logTallyOnFailure(t, ids, h)

	env := withWindow(runEnv(t, ns.url(), h.url(), "huntress"), 2*time.Second)
	first := startForwarder(t, "forwarder-1", env)
	eventually(t, 30*time.Second, "every send slot of forwarder-1 held at the HEC", func() bool {
		first.mustRun(t)
		return held.Load() >= inFlight
	})
	first.signal(t, syscall.SIGKILL)
	if code := first.wait(t, 10*time.Second); code != -1 {
		t.Fatalf("forwarder-1 exited with %d before SIGKILL", code)
	}
	before := countAll(ids, h)
	if before.distinct >= n {
		t.Fatalf("all %d events arrived before the kill: the test proves nothing", n)
	}
	openGate()

	second := startForwarder(t, "forwarder-2", withWindow(runEnv(t, ns.url(), h.url(), "huntress"), 2*time.Second))
	eventually(t, 45*time.Second, "every event at the HEC", func() bool {
		second.mustRun(t)
		return h.distinct() >= n
	})
	eventually(t, 15*time.Second, "the consumer to have acknowledged everything", func() bool {
		return ns.drained(t, "huntress")
	})

	tl := countAll(ids, h)
	checkComplete(t, tl)
	t.Logf("before SIGKILL %d of %d events arrived (%d requests held); in the end %d accepted, %d duplicates (bound %d)",
		before.distinct, n, held.Load(), tl.accepted, tl.duplicates, maxDuplicates)
	if tl.duplicates > maxDuplicates {
		t.Errorf("%d duplicates, more than the %d messages a process holds in flight", tl.duplicates, maxDuplicates)
	}
}

// TestTwoProcessesShareTheConsumer runs two forwarders on one durable
// consumer, each posting to its own HEC, and publishes while they run: both do
// a real share of the work, every event arrives, none twice.
func TestTwoProcessesShareTheConsumer(t *testing.T) {
	const n = 20_000
	ns := startNATS(t)
	h1, h2 := startHEC(t, nil), startHEC(t, nil)
	var ids []string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("collectors: %+v; forwarder-1 %d, forwarder-2 %d", countAll(ids, h1, h2), h1.distinct(), h2.distinct())
		}
	})
	// Nobody is killed, so the ack wait only matters if the forwarders failed
	// to keep the messages in hand alive; keep it short enough to notice.
	f1 := startForwarder(t, "forwarder-1", withWindow(runEnv(t, ns.url(), h1.url(), "fleet"), 10*time.Second))
	f2 := startForwarder(t, "forwarder-2", withWindow(runEnv(t, ns.url(), h2.url(), "fleet"), 10*time.Second))
	eventually(t, 30*time.Second, "both forwarders pulling from the consumer", func() bool {
		f1.mustRun(t)
		f2.mustRun(t)
		info := ns.consumer(t, "fleet")
		return info != nil && info.NumWaiting >= 2
	})

	ids = ns.publish(t, n)
	eventually(t, 45*time.Second, "every event at one HEC or the other", func() bool {
		f1.mustRun(t)
		f2.mustRun(t)
		return countAll(ids, h1, h2).missing == 0
	})
	eventually(t, 15*time.Second, "the consumer to have acknowledged everything", func() bool {
		return ns.drained(t, "fleet")
	})

	tl := countAll(ids, h1, h2)
	checkComplete(t, tl)
	one, two := h1.distinct(), h2.distinct()
	t.Logf("forwarder-1 delivered %d events, forwarder-2 %d; %d duplicates", one, two, tl.duplicates)
	if tl.duplicates != 0 {
		t.Errorf("%d duplicates with no process killed", tl.duplicates)
	}
	for i, got := range []int{one, two} {
		if got <= n/10 {
			t.Errorf("forwarder-%d delivered %d of %d events: not a real share", i+1, got, n)
		}
	}
}

// TestSIGTERMFinishesInTime stops a forwarder whose HEC never answers: it must
// exit 0 within the shutdown timeout, having acknowledged nothing, and a new
// forwarder must then deliver every event.
func TestSIGTERMFinishesInTime(t *testing.T) {
	const (
		n               = 1000
		shutdownTimeout = 2 * time.Second
		exitBound       = 8 * time.Second // shutdown timeout, flush and drain, with room for a slow machine
	)
	ns := startNATS(t)
	ids := ns.publish(t, n)

	var calls atomic.Int32
	hung := startHEC(t, func(_ *hec, r *http.Request, events [][]byte) (int, string, bool) {
		if len(events) == 0 {
			return 0, "", false
		}
		calls.Add(1)
		<-r.Context().Done()
		return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
	})

	// The default ack wait: whatever the forwarder holds at SIGTERM must come
	// back because it NAKed it, not because its ack wait ran out.
	env := withWindow(runEnv(t, ns.url(), hung.url(), "huntress"), time.Minute)
	env["FORWARDER_SHUTDOWN_TIMEOUT"] = shutdownTimeout.String()
	first := startForwarder(t, "forwarder-1", env)
	eventually(t, 30*time.Second, "a request in flight at the HEC", func() bool {
		first.mustRun(t)
		return calls.Load() > 0
	})

	sent := time.Now()
	first.signal(t, syscall.SIGTERM)
	code := first.wait(t, 30*time.Second)
	took := first.exitedAt.Sub(sent)
	t.Logf("forwarder-1 exited %d in %v after SIGTERM (%d requests reached the HEC)", code, took.Round(time.Millisecond), calls.Load())
	if code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if took > exitBound {
		t.Errorf("took %v to exit after SIGTERM with a %v shutdown timeout, want under %v", took, shutdownTimeout, exitBound)
	}

	info := ns.consumer(t, "huntress")
	if info == nil {
		t.Fatal("consumer huntress is gone")
	}
	if info.AckFloor.Stream != 0 || info.NumAckPending+int(info.NumPending) != n {
		t.Errorf("consumer after SIGTERM: ack floor %d, %d ack pending + %d pending; want 0 and %d: something the HEC never accepted was acknowledged",
			info.AckFloor.Stream, info.NumAckPending, info.NumPending, n)
	}
	if got := dlqMessages(t, ns); got != 0 {
		t.Errorf("%d dead letters: an unanswered request must return its events to the stream", got)
	}
	if got := hung.distinct(); got != 0 {
		t.Errorf("the hung HEC recorded %d events", got)
	}

	healthy := startHEC(t, nil)
	logTallyOnFailure(t, ids, healthy)
	second := startForwarder(t, "forwarder-2", withWindow(runEnv(t, ns.url(), healthy.url(), "huntress"), time.Minute))
	eventually(t, 30*time.Second, "every event at the healthy HEC", func() bool {
		second.mustRun(t)
		return healthy.distinct() >= n
	})
	checkComplete(t, countAll(ids, healthy))
}

// dlqMessages is the number of messages in the dead-letter stream, 0 when it
// does not exist.
func dlqMessages(t *testing.T, ns *natsServer) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	s, err := ns.js.Stream(ctx, "EZSSH_AUDIT_DLQ")
	if err == jetstream.ErrStreamNotFound {
		return 0
	}
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	return info.State.Msgs
}
