package pipeline

import (
	"context"
	"sync"
	"time"
)

// heldSet is the route's batches that senders have: being sent, retried or
// held while the destination is down. The keeper resets their redelivery timers so that
// no other instance receives them while this one still works on them, however
// long the destination takes or stays down.
type heldSet struct {
	mu sync.Mutex
	m  map[*batch]struct{}
}

func (h *heldSet) add(b *batch) {
	h.mu.Lock()
	if h.m == nil {
		h.m = make(map[*batch]struct{})
	}
	h.m[b] = struct{}{}
	h.mu.Unlock()
}

func (h *heldSet) remove(b *batch) {
	h.mu.Lock()
	delete(h.m, b)
	h.mu.Unlock()
}

// keep sends InProgress for every message held longer than every, until ctx is
// done.
func (r *runner) keep(ctx context.Context) {
	every := r.cfg.AckWait / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.held.mu.Lock()
			for b := range r.held.m {
				b.keepAlive(now, every)
			}
			r.held.mu.Unlock()
		}
	}
}
