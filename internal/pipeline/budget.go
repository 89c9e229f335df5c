package pipeline

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// budget bounds the bytes of event bodies held in hand by all routes
// together: batches being filled, sent or retried, and suspects waiting their
// turn. It is what keeps memory bounded whatever the number of routes or the
// backlog: a route that cannot get budget waits, and its events stay in the
// stream.
type budget struct {
	sem  *semaphore.Weighted
	size int64
}

func newBudget(size int64) *budget {
	return &budget{sem: semaphore.NewWeighted(size), size: size}
}

// cost is what a message of n bytes takes from the budget; one larger than
// the whole budget takes all of it, so it can still go alone.
func (b *budget) cost(n int) int64 {
	return min(int64(n), b.size)
}

func (b *budget) tryAcquire(n int) bool { return b.sem.TryAcquire(b.cost(n)) }

func (b *budget) acquire(ctx context.Context, n int) error {
	return b.sem.Acquire(ctx, b.cost(n))
}
