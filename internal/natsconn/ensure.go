package natsconn

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureKeyValue opens the KV bucket cfg.Bucket as it is when its settings
// already are cfg's; otherwise it creates the bucket, or updates it to cfg.
//
// jetstream's CreateOrUpdateKeyValue always sends an update, which a
// least-privilege user (docs/nats-security.md) may not: such a user can read
// the bucket's stream info and create a missing bucket, but not change one.
// Every forwarder of a fleet calls this at start, so a bucket that is already
// right is left alone. It returns the server's error (an update this user may
// not make times out) wrapped with %w.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	switch {
	case err == nil:
		if st, err := kv.Status(ctx); err == nil && sameBucket(st.Config(), cfg) {
			return kv, nil
		}
		return js.UpdateKeyValue(ctx, cfg)
	case errors.Is(err, jetstream.ErrBucketNotFound):
		kv, err := js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another instance created it first, with other settings.
			return js.UpdateKeyValue(ctx, cfg)
		}
		return kv, err
	}
	return nil, err
}

// sameBucket compares the settings this repository's buckets set, with the
// defaults the server fills in for the zero values.
func sameBucket(have, want jetstream.KeyValueConfig) bool {
	orMinus := func(v int64) int64 {
		if v == 0 {
			return -1
		}
		return v
	}
	history := max(want.History, 1)
	replicas := max(want.Replicas, 1)
	return have.Description == want.Description && have.History == history && have.TTL == want.TTL &&
		int64(have.MaxValueSize) == orMinus(int64(want.MaxValueSize)) && have.MaxBytes == orMinus(want.MaxBytes) &&
		have.Storage == want.Storage && have.Replicas == replicas && have.Compression == want.Compression
}
