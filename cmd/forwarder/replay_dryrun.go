package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// replayTally counts the events of a window.
type replayTally struct {
	n           uint64
	byType      map[string]uint64
	subs        map[string]bool
	first, last time.Time // stored times
}

// dryRun counts the window's events per type and prints them with the time
// span, sending nothing and creating no durable consumer.
func (r *replayer) dryRun(ctx context.Context) error {
	dest := "(unknown)"
	if client, err := r.f.openSink(ctx, r.js, r.p.Target, r.key, r.stderr); err != nil {
		fmt.Fprintf(r.stderr, "note: the destination cannot be used: %v\n", err)
	} else {
		dest = destination(client.URL())
		client.CloseIdleConnections()
	}
	t, err := r.scan(ctx)
	if err != nil {
		return err
	}
	w := r.stdout
	fmt.Fprintf(w, "dry run: nothing is sent\n")
	fmt.Fprintf(w, "replay:   %s to %s (%s)\n", r.p.Target.filter, r.p.Target.describe(), dest)
	fmt.Fprintf(w, "window:   [%s, %s) stream time, up to sequence %d\n", replayTime(r.p.Since), replayTime(r.p.Until), r.p.EndSeq)
	fmt.Fprintf(w, "events:   %d", t.n)
	if t.n > 0 {
		fmt.Fprintf(w, " of %d subscriptions", len(t.subs))
	}
	fmt.Fprintln(w)
	types := make([]string, 0, len(t.byType))
	for k := range t.byType {
		types = append(types, k)
	}
	slices.Sort(types)
	width := 0
	for _, k := range types {
		width = max(width, len(k))
	}
	for _, k := range types {
		fmt.Fprintf(w, "  %-*s %d\n", width, k, t.byType[k])
	}
	if t.n > 0 {
		fmt.Fprintf(w, "first:    %s\nlast:     %s\n", replayTime(t.first), replayTime(t.last))
	}
	if r.resumed {
		left, err := r.remaining(ctx, true)
		if err == nil {
			fmt.Fprintf(w, "an interrupted replay %s of this window has %d events left: forwarder replay --resume %s\n", r.p.ID, left, r.p.ID)
		}
	} else if t.n > 0 {
		fmt.Fprintf(w, "replay ID: %s\n", r.p.ID)
	}
	return nil
}

// replayEventType is the event type of subject ezssh.audit.<sub>.<kind>.
func replayEventType(subject string) (sub, eventType string) {
	parts := strings.SplitN(subject, ".", 4)
	if len(parts) < 4 {
		return "", "(unknown)"
	}
	return parts[2], "EZSSH_" + strings.ToUpper(parts[3])
}

// scan reads the window's headers through an ordered consumer (no bodies)
// and tallies them by the kind in their subject.
func (r *replayer) scan(ctx context.Context) (*replayTally, error) {
	t := &replayTally{byType: map[string]uint64{}, subs: map[string]bool{}}
	if r.p.EndSeq == 0 {
		return t, nil
	}
	since := r.p.Since
	cons, err := r.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{r.p.Target.filter},
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &since,
		HeadersOnly:       true,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("audit stream %s: consumer: %w", r.f.stream, err)
	}
	// Delete it when done rather than leave it to time out; runs after
	// it.Stop below.
	defer r.dropTemp(cons)
	if ci := cons.CachedInfo(); ci != nil && ci.NumPending == 0 {
		return t, nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return nil, fmt.Errorf("audit stream %s: read: %w", r.f.stream, err)
	}
	defer it.Stop()
	for {
		m, err := walkNext(ctx, it, cons, "audit stream")
		if err != nil || m == nil {
			return t, err
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("audit stream %s: %w", r.f.stream, err)
		}
		if md.Sequence.Stream > r.p.EndSeq {
			return t, nil
		}
		sub, typ := replayEventType(m.Subject())
		if t.n == 0 {
			t.first = md.Timestamp
		}
		t.n++
		t.byType[typ]++
		t.subs[sub] = true
		t.last = md.Timestamp
		if md.NumPending == 0 || md.Sequence.Stream == r.p.EndSeq {
			return t, nil
		}
	}
}
