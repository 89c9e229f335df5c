package main

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
)

// observer is an ordered consumer (no acks, no durable state) beside the
// forwarder in the latency phase. What it sees, delivery minus RequestDate,
// is JetStream's share of the end-to-end latency: the publish, its fsync and
// the push to a consumer. The rest is the forwarder's and the HEC's.
type observer struct {
	cc jetstream.ConsumeContext

	mu      sync.Mutex
	samples []sample
}

func startObserver(ctx context.Context, js jetstream.JetStream, sizeHint int) (*observer, error) {
	c, err := js.OrderedConsumer(ctx, audit.StreamName, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, err
	}
	o := &observer{samples: make([]sample, 0, sizeHint)}
	o.cc, err = c.Consume(func(m jetstream.Msg) {
		now := time.Now()
		f, err := audit.Inspect(m.Data())
		if err != nil {
			return
		}
		o.mu.Lock()
		o.samples = append(o.samples, sample{f.EventId, f.RequestDate, now.Sub(f.RequestDate)})
		o.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// stop ends the consumer and waits until its handler has returned.
func (o *observer) stop() {
	o.cc.Stop()
	<-o.cc.Closed()
}

// since returns the sorted latencies of the events requested at or after t.
func (o *observer) since(t time.Time) []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return sortedSince(o.samples, t)
}

// sortedSince returns the sorted latencies of samples requested at or after t.
func sortedSince(samples []sample, t time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		if !s.requested.Before(t) {
			out = append(out, s.latency)
		}
	}
	slices.Sort(out)
	return out
}
