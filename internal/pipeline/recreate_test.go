package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// A route's durable consumer deleted and created again at an earlier start
// while the forwarder runs (what forwarder routes rewind does): the running
// route adopts the new consumer rather than recreating its own, delivers
// again exactly the events from the new start, and goes on with new ones.
func TestRunningRouteAdoptsItsConsumerRecreatedEarlier(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	h := startHEC(t, huntress.CollectorOptions{})
	cfg := fastConfig()
	cfg.PendingInterval = 20 * time.Millisecond // poll the consumer all along
	startForwarder(t, js, cfg, pipeline.Route{Name: "global", Sink: h.client(t)})

	before := publishN(t, js, 200, 3, "before")
	after := publishN(t, js, 200, 3, "after")
	eventually(t, 20*time.Second, "everything delivered once", func() bool { return h.unique() == len(before)+len(after) })

	// The new start: when the stream stored the first "after" event.
	stream, err := js.Stream(ctx, audit.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.GetMsg(ctx, uint64(len(before))+1)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := audit.Inspect(first.Data); err != nil || f.EventId != "after-000000" {
		t.Fatalf("message %d is %s (%v), want the first of after", first.Sequence, first.Data, err)
	}
	c, err := stream.Consumer(ctx, "global")
	if err != nil {
		t.Fatal(err)
	}
	rewound := c.CachedInfo().Config
	rewound.DeliverPolicy, rewound.OptStartTime = jetstream.DeliverByStartTimePolicy, &first.Time
	if err := stream.DeleteConsumer(ctx, "global"); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CreateConsumer(ctx, rewound); err != nil {
		t.Fatalf("create the rewound consumer (did the forwarder put its own back first?): %v", err)
	}

	eventually(t, 20*time.Second, "the events from the new start delivered again", func() bool {
		for id := range after {
			if h.count(id) < 2 {
				return false
			}
		}
		return true
	})
	later := publishN(t, js, 50, 3, "later")
	eventually(t, 20*time.Second, "new events delivered", func() bool {
		for id := range later {
			if h.count(id) == 0 {
				return false
			}
		}
		return true
	})
	for id := range before {
		if n := h.count(id); n != 1 {
			t.Errorf("event %s from before the new start delivered %d times, want 1", id, n)
		}
	}
	for id := range after {
		if n := h.count(id); n != 2 {
			t.Errorf("event %s delivered %d times, want 2", id, n)
		}
	}
	for id := range later {
		if n := h.count(id); n != 1 {
			t.Errorf("event %s published after the rewind delivered %d times, want 1", id, n)
		}
	}
	info := consumerInfo(t, js, "global")
	if info.Config.DeliverPolicy != jetstream.DeliverByStartTimePolicy || !info.Config.OptStartTime.Equal(first.Time) {
		t.Errorf("consumer starts %v at %v, want by start time at %v", info.Config.DeliverPolicy, info.Config.OptStartTime, first.Time)
	}
}

// A route's consumer deleted while the forwarder runs, with nobody creating it
// again: the route puts it back, from the route's own start, and goes on.
func TestRunningRouteRecreatesItsDeletedConsumer(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	h := startHEC(t, huntress.CollectorOptions{})
	old := publishN(t, js, 50, 1, "old")
	start := time.Now()
	rt := subRoute(t, "sub-00", h)
	rt.StartTime = start
	startForwarder(t, js, fastConfig(), rt)
	first := publishN(t, js, 50, 1, "first")
	eventually(t, 20*time.Second, "first delivered", func() bool { return h.unique() == len(first) })

	if err := js.DeleteConsumer(ctx, audit.StreamName, rt.Consumer); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "consumer back", func() bool {
		_, err := js.Consumer(ctx, audit.StreamName, rt.Consumer)
		return err == nil
	})
	second := publishN(t, js, 50, 1, "second")
	eventually(t, 20*time.Second, "second delivered", func() bool {
		for id := range second {
			if h.count(id) == 0 {
				return false
			}
		}
		return true
	})
	for id := range old {
		if h.count(id) != 0 {
			t.Fatalf("event %s from before the route's start delivered", id)
		}
	}
	if info := consumerInfo(t, js, rt.Consumer); !info.Config.OptStartTime.Equal(start) {
		t.Errorf("recreated consumer starts at %v, want the route's start %v", info.Config.OptStartTime, start)
	}
}
