package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/delivery"
	"github.com/ezssh/siem-forwarder/internal/natsconn"
)

// Crash loops. A message that kills whoever holds it comes back again and
// again, and so does every message that was in hand with it, so the delivery
// count alone cannot tell the culprit from its bystanders. A message that came
// back more than suspectAfter times is a suspect: it goes to the route's
// quarantine, which sends suspects alone, one at a time, and records each
// solo attempt in a fleet-shared KV bucket before it starts. A crash during a
// solo attempt therefore charges exactly one message. A suspect whose solo
// attempts reached MaxCrashes without the process surviving to settle it is
// dead-lettered as undeliverable; bystanders are delivered on their solo turn.

// suspectAfter is how often a message may come back before it is a suspect.
// Once is normal: a restart or a NAK at shutdown.
const suspectAfter = 2

// EnsureSuspectBucket creates or updates the KV bucket of solo attempts.
func EnsureSuspectBucket(ctx context.Context, js jetstream.JetStream, name string, replicas int) (jetstream.KeyValue, error) {
	kv, err := natsconn.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "EZSSH forwarder: solo delivery attempts of messages suspected of crashing the forwarder",
		History:     1,
		TTL:         7 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline: suspect bucket %s: %w", name, err)
	}
	return kv, nil
}

type suspect struct {
	msg       jetstream.Msg
	ev        delivery.Event
	seq       uint64
	delivered uint64
}

// quarantineLoop delivers the route's suspects alone, one at a time, until
// r.quarantine is closed and empty. At the hard deadline the rest is NAKed.
func (r *runner) quarantineLoop(ctx, hard context.Context) {
	var (
		mu    sync.Mutex
		queue []suspect
	)
	// Suspects wait their turn in hand: keep them from being redelivered.
	keepCtx, stopKeep := context.WithCancel(hard)
	defer stopKeep()
	go func() {
		t := time.NewTicker(r.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-keepCtx.Done():
				return
			case <-t.C:
				mu.Lock()
				for _, s := range queue {
					_ = s.msg.InProgress()
				}
				mu.Unlock()
			}
		}
	}()
	in := r.quarantine
	for in != nil || len(queue) > 0 {
		if len(queue) == 0 {
			s, ok := <-in
			if !ok {
				return
			}
			mu.Lock()
			queue = append(queue, s)
			mu.Unlock()
			continue
		}
		// Take whatever else is waiting, then work on the head.
		for more := true; more && in != nil; {
			select {
			case s, ok := <-in:
				if !ok {
					in = nil
					break
				}
				mu.Lock()
				queue = append(queue, s)
				mu.Unlock()
			default:
				more = false
			}
		}
		if hard.Err() != nil {
			mu.Lock()
			for _, s := range queue {
				r.settleNak([]jetstream.Msg{s.msg})
			}
			queue = nil
			mu.Unlock()
			continue
		}
		head := queue[0]
		r.deliverSuspect(ctx, hard, head)
		mu.Lock()
		queue = queue[1:]
		mu.Unlock()
	}
}

// deliverSuspect sends one suspect alone, or dead-letters it when it already
// crashed the forwarder MaxCrashes times while alone.
func (r *runner) deliverSuspect(ctx, hard context.Context, s suspect) {
	key := r.route.Consumer + "." + strconv.FormatUint(s.seq, 10)
	crashes := 0
	if r.suspects != nil {
		if e, err := r.suspects.Get(hard, key); err == nil {
			crashes, _ = strconv.Atoi(string(e.Value()))
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			r.log.Warn("cannot read suspect attempts", "err", err)
		}
	}
	if crashes >= r.cfg.MaxCrashes {
		r.deadLetter(hard, s.msg, reasonUndeliverable,
			fmt.Errorf("crashed or hung the forwarder %d times when sent alone (delivered %d times)", crashes, s.delivered))
		r.release([]jetstream.Msg{s.msg})
		r.forgetSuspect(key)
		return
	}
	if r.suspects != nil {
		if _, err := r.suspects.Put(hard, key, strconv.AppendInt(nil, int64(crashes+1), 10)); err != nil {
			// Without the record a crash goes uncounted here; MaxDeliveries
			// still bounds the loop.
			r.log.Warn("cannot record suspect attempt", "err", err)
		}
	}
	r.stats.inFlight.Add(1)
	r.deliver(ctx, hard, []jetstream.Msg{s.msg}, []delivery.Event{s.ev})
	r.stats.inFlight.Add(-1)
	// The process survived the attempt: it was not this message's fault.
	r.forgetSuspect(key)
}

func (r *runner) forgetSuspect(key string) {
	if r.suspects == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.suspects.Purge(ctx, key)
}
