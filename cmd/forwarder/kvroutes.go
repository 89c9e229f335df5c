package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

// subscriptionRoutes applies the subscription routes of the KV bucket
// EZSSH_SIEM to the forwarder as they change: a new enabled entry starts a
// route (its consumer starting at the entry's updated_at), a changed URL or
// token applies to the next request, a disabled entry stops the route and
// keeps its consumer (its events wait in the stream), and a deleted entry
// removes the route and its consumer. A bad entry affects only its own route.
type subscriptionRoutes struct {
	fw       *pipeline.Forwarder
	table    *routeTable
	base     huntress.Config // host, source, timeouts; URL and token come from the entry
	key      []byte          // FORWARDER_SECRET_KEY_FILE, nil without one
	prefix   string          // consumer name prefix (FORWARDER_CONSUMER)
	log      *slog.Logger
	synced   atomic.Bool // the initial values are applied
	onChange func(sub string)
}

// run watches the bucket until ctx is done, restarting the watch if it ends.
func (s *subscriptionRoutes) run(ctx context.Context, kv jetstream.KeyValue) {
	for ctx.Err() == nil {
		err := routes.Watch(ctx, kv, func(c routes.Change) { s.apply(ctx, c) })
		if err == nil || ctx.Err() != nil {
			return
		}
		s.log.Warn("route watch ended; restarting", "err", err)
		if !sleepCtx(ctx, time.Second) {
			return
		}
	}
}

func (s *subscriptionRoutes) apply(ctx context.Context, c routes.Change) {
	if c.InitialDone {
		s.synced.Store(true)
		s.log.Info("subscription routes loaded")
		return
	}
	sub := c.Subscription
	log := s.log.With("subscription", sub)
	if s.onChange != nil {
		defer s.onChange(sub)
	}
	if c.Err != nil {
		// Keep whatever ran before: a broken edit must not stop delivery.
		log.Error("route entry is not usable; keeping the route as it was", "err", c.Err)
		return
	}
	if s.table.has(sub) && !s.owned(sub) {
		log.Error("a subscription route has the name of a static route; ignoring it")
		return
	}
	switch {
	case c.Deleted:
		if err := s.fw.RemoveRoute(ctx, sub, true); err != nil {
			log.Error("cannot remove route", "err", err)
		}
		s.forget(sub)
		log.Info("route deleted")
		return
	case !c.Entry.Enabled:
		if err := s.fw.RemoveRoute(ctx, sub, false); err != nil {
			log.Error("cannot stop route", "err", err)
		}
		s.forget(sub)
		log.Info("route disabled; its events wait in the stream")
		return
	}
	cfg, err := c.Entry.HECConfig(sub, s.key, s.base)
	if err != nil {
		log.Error("route cannot start", "err", err)
		return
	}
	client, err := huntress.New(cfg)
	if err != nil {
		log.Error("route cannot start", "err", err)
		return
	}
	dest := routes.Destination(cfg.URL)
	err = s.fw.SetRoute(pipeline.Route{
		Name:          sub,
		Consumer:      routes.ConsumerName(s.prefix, sub),
		FilterSubject: routes.Filter(sub),
		Destination:   dest,
		StartTime:     c.StartTime(),
		Sink:          wrapSink(client),
	})
	if err != nil {
		log.Error("route cannot start", "err", err)
		return
	}
	if old := s.table.set(sub, routeInfo{destination: dest, admins: c.Entry.AdminEmails, client: client, kv: true}); old != nil {
		old.CloseIdleConnections()
	}
	log.Info("route set", "destination", dest)
}

func (s *subscriptionRoutes) owned(sub string) bool {
	s.table.mu.RLock()
	defer s.table.mu.RUnlock()
	return s.table.routes[sub].kv
}

func (s *subscriptionRoutes) forget(sub string) {
	if old := s.table.remove(sub); old != nil {
		old.CloseIdleConnections()
	}
}

// sleepCtx waits d or until ctx is done; it reports whether ctx is live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
