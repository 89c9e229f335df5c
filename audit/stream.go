package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamOptions configure EnsureStream. The zero value means the documented
// defaults.
type StreamOptions struct {
	// Name of the stream. Default StreamName (EZSSH_AUDIT).
	Name string
	// MaxAge is how long events are kept. Default 30 days. It bounds how long
	// a route's destination may be down before held events age out.
	MaxAge time.Duration
	// MaxBytes caps the stream's size; the oldest events go first. Default
	// (0 or negative) unlimited.
	MaxBytes int64
	// Replicas is the number of copies in a cluster. Default 1; use 3 in a
	// production cluster.
	Replicas int
	// MaxMsgSize is the largest message (body and headers) the stream stores.
	// Default 2 MiB + 64 KiB: twice MaxEventSize plus header room, so an
	// over-size event published by a non-Go client is still stored and reaches
	// the forwarder, which dead-letters it as invalid where the admins can
	// see it, instead of failing at publish time where nobody may look. The
	// server's max_payload must be at least as large.
	MaxMsgSize int32
	// Duplicates is the publish-side deduplication window on Nats-Msg-Id.
	// Default 2 minutes.
	Duplicates time.Duration
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Name == "" {
		o.Name = StreamName
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 30 * 24 * time.Hour
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = -1
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.MaxMsgSize <= 0 {
		o.MaxMsgSize = 2<<20 + 64<<10
	}
	if o.Duplicates <= 0 {
		o.Duplicates = 2 * time.Minute
	}
	return o
}

// Config returns the stream configuration EnsureStream applies.
func (o StreamOptions) Config() jetstream.StreamConfig {
	o = o.withDefaults()
	return jetstream.StreamConfig{
		Name:        o.Name,
		Description: "EZSSH audit events, forwarded to SIEMs",
		Subjects:    []string{SubjectAll},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      o.MaxAge,
		MaxBytes:    o.MaxBytes,
		MaxMsgs:     -1,
		MaxMsgSize:  o.MaxMsgSize,
		Replicas:    o.Replicas,
		Duplicates:  o.Duplicates,
	}
}

// EnsureStream creates the audit stream or updates it to opts; calling it
// again with the same options changes nothing. An update the server refuses
// (for example a different storage type on an existing stream) is returned.
func EnsureStream(ctx context.Context, js jetstream.JetStream, opts StreamOptions) (jetstream.Stream, error) {
	cfg := opts.Config()
	// Every forwarder and producer may call this at start: update only when
	// something changed, so they do not churn the stream.
	s, err := js.Stream(ctx, cfg.Name)
	if err == nil {
		have := s.CachedInfo().Config
		if slices.Equal(have.Subjects, cfg.Subjects) && have.MaxAge == cfg.MaxAge && have.MaxBytes == cfg.MaxBytes &&
			have.Replicas == cfg.Replicas && have.MaxMsgSize == cfg.MaxMsgSize && have.Duplicates == cfg.Duplicates &&
			have.Storage == cfg.Storage && have.Discard == cfg.Discard && have.Description == cfg.Description {
			return s, nil
		}
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Create, rather than update and then create: a least-privilege
		// user may create the stream but not change it
		// (docs/nats-security.md).
		s, err = js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.CreateOrUpdateStream(ctx, cfg) // created meanwhile, with other settings
		}
	} else {
		s, err = js.CreateOrUpdateStream(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: ensure stream %s: %w", cfg.Name, err)
	}
	return s, nil
}
