package notify

import (
	"context"
	"sort"
	"sync"
)

// Store holds the throttle state the instances of a fleet share. Every
// change is a compare-and-set, so two instances handling the same alert
// cannot both decide to send its email. Implementations must be safe for
// concurrent use; internal/notifyfeed has one backed by a NATS KV bucket.
type Store interface {
	// Get returns the value of key and its revision, or ErrNotFound.
	Get(ctx context.Context, key string) (value []byte, revision uint64, err error)
	// Create stores a new key; ErrExists when it is already there.
	Create(ctx context.Context, key string, value []byte) (revision uint64, err error)
	// Update replaces key's value only if its revision is still revision;
	// ErrConflict otherwise.
	Update(ctx context.Context, key string, value []byte, revision uint64) (newRevision uint64, err error)
	// Keys lists every key.
	Keys(ctx context.Context) ([]string, error)
}

// MemStore is an in-memory Store for tests and for a single process. The
// zero value is ready to use; it is safe for concurrent use.
type MemStore struct {
	mu  sync.Mutex
	rev uint64
	m   map[string]memEntry
}

type memEntry struct {
	value []byte
	rev   uint64
}

// Get implements Store.
func (s *MemStore) Get(_ context.Context, key string) ([]byte, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		return nil, 0, ErrNotFound
	}
	return append([]byte(nil), e.value...), e.rev, nil
}

// Create implements Store.
func (s *MemStore) Create(_ context.Context, key string, value []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		return 0, ErrExists
	}
	return s.put(key, value), nil
}

// Update implements Store.
func (s *MemStore) Update(_ context.Context, key string, value []byte, revision uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok || e.rev != revision {
		return 0, ErrConflict
	}
	return s.put(key, value), nil
}

// Keys implements Store.
func (s *MemStore) Keys(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

func (s *MemStore) put(key string, value []byte) uint64 {
	if s.m == nil {
		s.m = map[string]memEntry{}
	}
	s.rev++
	s.m[key] = memEntry{value: append([]byte(nil), value...), rev: s.rev}
	return s.rev
}
