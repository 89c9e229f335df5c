package notifyfeed

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/natsconn"
	"github.com/ezssh/siem-forwarder/internal/notify"
)

// DefaultBucket is the KV bucket of the notifier's shared state.
const DefaultBucket = "EZSSH_NOTIFY"

// StoreOptions configure OpenStore. The zero value means the defaults.
type StoreOptions struct {
	// Bucket is the KV bucket. Default "EZSSH_NOTIFY".
	Bucket string
	// Replicas of the bucket's stream. Default 1 (3 in a cluster).
	Replicas int
}

// Store is a notify.Store in a JetStream KV bucket: revisions are the KV's,
// Create and Update are its compare-and-set. It is safe for concurrent use.
type Store struct {
	kv jetstream.KeyValue
}

var _ notify.Store = (*Store)(nil)

// OpenStore creates the bucket, or updates it to opts, and returns a Store on
// it. The bucket keeps one revision per key: the state is small and only the
// latest matters.
func OpenStore(ctx context.Context, js jetstream.JetStream, opts StoreOptions) (*Store, error) {
	if opts.Bucket == "" {
		opts.Bucket = DefaultBucket
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	kv, err := natsconn.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      opts.Bucket,
		Description: "EZSSH SIEM forwarder: admin email throttle state shared by the fleet",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("notifyfeed: KV bucket %s: %w", opts.Bucket, err)
	}
	return &Store{kv: kv}, nil
}

// Get implements notify.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, notify.ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	return e.Value(), e.Revision(), nil
}

// Create implements notify.Store.
func (s *Store) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := s.kv.Create(ctx, key, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, notify.ErrExists
	}
	return rev, err
}

// Update implements notify.Store.
func (s *Store) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	rev, err := s.kv.Update(ctx, key, value, revision)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, notify.ErrConflict
	}
	return rev, err
}

// Keys implements notify.Store.
func (s *Store) Keys(ctx context.Context) ([]string, error) {
	l, err := s.kv.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer l.Stop()
	var keys []string
	for {
		select {
		case k, ok := <-l.Keys():
			if !ok {
				return keys, nil
			}
			keys = append(keys, k)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
