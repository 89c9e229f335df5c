package routes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/natsconn"
)

// EnsureBucket creates the key-value bucket Bucket, or updates its settings
// when it exists: file storage, 5 revisions of history per key, values up to
// 64 KiB, replicas replicas (at least 1). It is safe to call from every
// instance of the fleet at start.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	if replicas <= 0 {
		replicas = 1
	}
	kv, err := natsconn.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:       Bucket,
		Description:  "EZSSH SIEM routes: key = SubscriptionId, value = JSON route entry (docs/routes.md)",
		History:      5,
		Storage:      jetstream.FileStorage,
		Replicas:     replicas,
		MaxValueSize: maxValueSize,
	})
	if err != nil {
		return nil, fmt.Errorf("routes: ensure bucket %s: %w", Bucket, err)
	}
	return kv, nil
}

// Change is one event of Watch: a subscription's route was put, changed or
// deleted, or the initial values have all been delivered.
type Change struct {
	// Subscription is the key: the SubscriptionId. Empty only for the
	// InitialDone marker.
	Subscription string
	// Entry is the new value; nil when Deleted or when the value is not
	// JSON. It is set, with Err, when the value decoded but failed Validate.
	Entry *Entry
	// Deleted is true when the key was deleted or purged: remove the route.
	Deleted bool
	// Revision is the bucket revision of this change.
	Revision uint64
	// Created is when this revision was written.
	Created time.Time
	// Err, when set, says why this value cannot be used: a key that is not
	// a valid SubscriptionId (ValidSubscription), a value that is not a JSON
	// object, or an entry that fails Validate. It names the subscription and
	// wraps ErrInvalid; it never holds the token. It concerns this
	// subscription only.
	Err error
	// InitialDone marks the end of the values present when Watch started;
	// every later Change is a live update. Sent exactly once, with no other
	// field set.
	InitialDone bool
}

// StartTime is when a consumer newly created for this change should start:
// the entry's updated_at, or the time the revision was written when the entry
// has none.
func (c Change) StartTime() time.Time {
	if c.Entry != nil && !c.Entry.UpdatedAt.IsZero() {
		return c.Entry.UpdatedAt
	}
	return c.Created
}

// Watch calls fn with the latest value of every key of kv, then a Change with
// InitialDone, then every change as it happens, until ctx is done. fn is
// called from the goroutine that called Watch, one Change at a time; while it
// runs, updates wait (nothing is lost). Watch starts no goroutine of its own.
// It returns nil when ctx is done, and an error when the watch cannot start or
// ends on its own (the connection was closed).
func Watch(ctx context.Context, kv jetstream.KeyValue, fn func(Change)) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("routes: watch bucket %s: %w", kv.Bucket(), err)
	}
	defer stopWatcher(w)
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("routes: watch of bucket %s ended (connection closed?)", kv.Bucket())
			}
			if e == nil {
				fn(Change{InitialDone: true})
				continue
			}
			fn(change(e))
		}
	}
}

// stopWatcher stops w and drains its updates, so that the library's
// delivery goroutine, which may be blocked handing us an update, can finish.
func stopWatcher(w jetstream.KeyWatcher) {
	_ = w.Stop()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-timeout.C:
			return
		}
	}
}

// change turns a bucket entry into a Change.
func change(e jetstream.KeyValueEntry) Change {
	c := Change{Subscription: e.Key(), Revision: e.Revision(), Created: e.Created()}
	if op := e.Operation(); op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
		c.Deleted = true
		return c
	}
	if !ValidSubscription(c.Subscription) {
		c.Err = fmt.Errorf("key %q: %w: a SubscriptionId must be made of ASCII letters, digits, '-', '_' and '=' (at most 128)", c.Subscription, ErrInvalid)
		return c
	}
	c.Entry, c.Err = Decode(e.Value())
	if c.Err == nil {
		c.Err = c.Entry.Validate()
	}
	if c.Err != nil {
		c.Err = fmt.Errorf("subscription %s (revision %d): %w", c.Subscription, c.Revision, c.Err)
	}
	return c
}

// List returns the current value of every key of kv, as Watch's initial
// Changes would (deleted keys left out), ordered by key. A missing bucket is
// an error wrapping jetstream.ErrBucketNotFound from the caller's KeyValue
// lookup, not from List.
func List(ctx context.Context, kv jetstream.KeyValue) ([]Change, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("routes: list bucket %s: %w", kv.Bucket(), err)
	}
	defer stopWatcher(w)
	var out []Change
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("routes: list of bucket " + kv.Bucket() + " ended early (connection closed?)")
			}
			if e == nil {
				sortChanges(out)
				return out, nil
			}
			out = append(out, change(e))
		}
	}
}

func sortChanges(cs []Change) {
	slices.SortFunc(cs, func(a, b Change) int { return strings.Compare(a.Subscription, b.Subscription) })
}
