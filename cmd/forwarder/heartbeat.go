package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/natsconn"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// A running forwarder's breakers, pauses and delivery times live in its
// memory. So that "forwarder status", run anywhere, can show them, every
// forwarder writes a heartbeat: a small JSON record of itself and its routes,
// in the KV bucket instancesBucket under its instance id, rewritten every
// heartbeatInterval. The bucket's TTL drops the record of an instance that
// died without deleting it.
const (
	instancesBucket   = "EZSSH_FORWARDER_INSTANCES"
	heartbeatInterval = 10 * time.Second
	heartbeatTTL      = 30 * time.Second // three missed heartbeats
	// heartbeatMaxValue bounds a heartbeat (the bucket's max value size):
	// about 1,000 busy routes fit; beyond, the least interesting are left
	// out and counted.
	heartbeatMaxValue = 256 << 10
)

// heartbeat is the value of an instance's key in instancesBucket.
type heartbeat struct {
	Instance  string    `json:"instance"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   string    `json:"version,omitempty"`
	// RoutesTotal counts the routes this instance runs; Routes lists only
	// those with activity since it started or a breaker not closed.
	RoutesTotal int `json:"routes_total"`
	// BreakersOpen counts the routes whose breaker is open or half-open.
	BreakersOpen int `json:"breakers_open"`
	// RoutesOmitted counts listable routes left out to bound the value.
	RoutesOmitted int              `json:"routes_omitted,omitempty"`
	Routes        []heartbeatRoute `json:"routes"`
}

// heartbeatRoute is one route as an instance sees it.
type heartbeatRoute struct {
	Route        string     `json:"route"`
	Breaker      string     `json:"breaker"` // closed, open or half-open
	PausedUntil  *time.Time `json:"paused_until,omitempty"`
	LastDelivery *time.Time `json:"last_delivery,omitempty"`
	Delivered    int64      `json:"delivered,omitempty"`
	DeadLettered int64      `json:"dead_lettered,omitempty"`
	InFlight     int64      `json:"in_flight,omitempty"`
}

// newInstanceID is this process's instance id: the host name and a random
// suffix, made a valid KV key.
func newInstanceID() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	return kvSafe(host, 48) + "-" + hex.EncodeToString(b[:])
}

// kvSafe keeps the characters of s that a KV key and a subject token accept,
// replacing the others with '-', and cuts it to n bytes.
func kvSafe(s string, n int) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= n {
			break
		}
	}
	if b.Len() == 0 {
		return "forwarder"
	}
	return b.String()
}

// validInstanceID reports whether id can be a key of instancesBucket.
func validInstanceID(id string) bool {
	return id != "" && len(id) <= 128 && kvSafe(id, 128) == id
}

// buildVersion is the module version the binary was built from, "" when
// unknown.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "(devel)" {
		return ""
	}
	return bi.Main.Version
}

// startHeartbeat writes fw's heartbeat under instance (a new id when empty)
// now and every heartbeatInterval until ctx is done or stop is called. The
// bucket is created or updated with replicas. Failures to write are logged,
// never fatal: the forwarder delivers without heartbeats, and the next one
// tries again. stop waits for the writer and deletes the key; it is
// idempotent. The only error is an instance id that is not a valid key.
func startHeartbeat(ctx context.Context, js jetstream.JetStream, fw *pipeline.Forwarder, instance string, replicas int, log *slog.Logger) (stop func(), err error) {
	return startHeartbeatEvery(ctx, js, fw, instance, replicas, heartbeatInterval, log)
}

// startHeartbeatEvery is startHeartbeat with its interval; tests shorten it.
func startHeartbeatEvery(ctx context.Context, js jetstream.JetStream, fw *pipeline.Forwarder, instance string, replicas int, every time.Duration, log *slog.Logger) (stop func(), err error) {
	if instance == "" {
		instance = newInstanceID()
	}
	if !validInstanceID(instance) {
		return nil, fmt.Errorf("heartbeat: instance id %q must be letters, digits, '-' or '_' (at most 128)", instance)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	h := &heartbeater{
		js:       js,
		fw:       fw,
		replicas: max(replicas, 1),
		log:      log.With("component", "heartbeat", "instance", instance),
		rec: heartbeat{
			Instance:  instance,
			Host:      host,
			PID:       os.Getpid(),
			StartedAt: time.Now().UTC(),
			Version:   buildVersion(),
		},
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.loop(ctx, every)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			h.remove()
		})
	}, nil
}

// heartbeater writes one instance's heartbeats. Only its loop goroutine uses
// it until the loop ends; then remove.
type heartbeater struct {
	js       jetstream.JetStream
	fw       *pipeline.Forwarder
	replicas int
	log      *slog.Logger
	rec      heartbeat
	kv       jetstream.KeyValue // nil until the bucket was set up
	failing  bool               // the last write failed; log the next success
}

func (h *heartbeater) loop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		h.beat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// beat writes one heartbeat, setting up the bucket first if needed.
func (h *heartbeater) beat(ctx context.Context) {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := h.write(wctx)
	switch {
	case err != nil && ctx.Err() != nil:
	case err != nil:
		// Warn on every failure (at most one per interval): status shows
		// this instance stale or missing meanwhile.
		h.log.Warn("heartbeat not written; forwarder status will not show this instance", "bucket", instancesBucket, "err", err)
		h.failing = true
	case h.failing:
		h.log.Info("heartbeat written again", "bucket", instancesBucket)
		h.failing = false
	}
}

func (h *heartbeater) write(ctx context.Context) error {
	if h.kv == nil {
		kv, err := natsconn.EnsureKeyValue(ctx, h.js, jetstream.KeyValueConfig{
			Bucket:       instancesBucket,
			Description:  "Running EZSSH forwarders and their routes' breakers, for forwarder status; each key expires unless refreshed",
			History:      1,
			TTL:          heartbeatTTL,
			MaxValueSize: heartbeatMaxValue,
			Replicas:     h.replicas,
		})
		if err != nil {
			return fmt.Errorf("bucket %s: %w", instancesBucket, err)
		}
		h.kv = kv
	}
	h.rec.UpdatedAt = time.Now().UTC()
	val, err := encodeHeartbeat(&h.rec, h.fw.Stats(), heartbeatMaxValue)
	if err != nil {
		return err
	}
	_, err = h.kv.Put(ctx, h.rec.Instance, val)
	return err
}

// remove deletes the instance's key, so status stops listing it at once.
func (h *heartbeater) remove() {
	if h.kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h.kv.Delete(ctx, h.rec.Instance); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		h.log.Warn("heartbeat not deleted; it expires by itself", "err", err, "ttl", heartbeatTTL)
	}
}

// encodeHeartbeat fills rec's routes from stats and encodes it in at most
// limit bytes. The routes listed are those with activity or a breaker not
// closed; when they do not fit, open breakers and the latest deliveries are
// kept and the rest counted in RoutesOmitted.
func encodeHeartbeat(rec *heartbeat, stats []pipeline.RouteStats, limit int) ([]byte, error) {
	rec.RoutesTotal, rec.BreakersOpen, rec.RoutesOmitted = len(stats), 0, 0
	routes := make([]heartbeatRoute, 0, len(stats))
	for _, s := range stats {
		open := s.Breaker != "" && s.Breaker != "closed"
		if open {
			rec.BreakersOpen++
		}
		active := s.Received > 0 || s.Delivered > 0 || s.DeadLettered > 0 || s.InFlight > 0 || !s.LastDelivery.IsZero()
		if !open && !active && s.PausedUntil.IsZero() {
			continue
		}
		r := heartbeatRoute{Route: s.Route, Breaker: s.Breaker, Delivered: s.Delivered, DeadLettered: s.DeadLettered, InFlight: s.InFlight}
		if !s.PausedUntil.IsZero() {
			t := s.PausedUntil.UTC()
			r.PausedUntil = &t
		}
		if !s.LastDelivery.IsZero() {
			t := s.LastDelivery.UTC()
			r.LastDelivery = &t
		}
		routes = append(routes, r)
	}
	slices.SortFunc(routes, func(a, b heartbeatRoute) int {
		ao, bo := a.Breaker != "closed", b.Breaker != "closed"
		switch {
		case ao != bo && ao:
			return -1
		case ao != bo:
			return 1
		}
		if c := timeDesc(a.LastDelivery, b.LastDelivery); c != 0 {
			return c
		}
		return cmp.Compare(a.Route, b.Route)
	})
	n := len(routes)
	for {
		rec.Routes, rec.RoutesOmitted = routes[:n], len(routes)-n
		b, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		if len(b) <= limit {
			return b, nil
		}
		if n == 0 {
			return nil, fmt.Errorf("heartbeat of %d bytes exceeds %d even without routes", len(b), limit)
		}
		// Shrink in proportion to the excess, and by at least one.
		n = min(n-1, n*limit/len(b))
	}
}

// timeDesc orders later times first, nil last.
func timeDesc(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return b.Compare(*a)
}
