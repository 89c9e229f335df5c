package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

const statusIntro = `forwarder status: where the events are. Per route (one durable consumer of
the audit stream): events pending, waiting for acknowledgement and redelivered,
in flight, breaker and pause, last successful delivery and dead letters; per
stream: messages, bytes, first and last time; the forwarder instances alive.

Breakers, in-flight counts and delivery times live in the forwarders' memory:
each running forwarder publishes them every 10s to the KV bucket
EZSSH_FORWARDER_INSTANCES, and status reads the freshest. A route no live
forwarder reports shows "paused" when its consumer is paused on the server,
"closed" when forwarders are alive, else "unknown".

Connects to NATS_URL (default nats://127.0.0.1:4222, the embedded server of a
forwarder running on this machine); never starts a server.`

// statusReport is the output of forwarder status; --json prints it as is.
type statusReport struct {
	Time    time.Time      `json:"time"`
	Streams []streamStatus `json:"streams"`
	// Routes are the forwarder's consumers of the audit stream, and routes
	// known only from their dead letters (consumer "").
	Routes []routeStatus `json:"routes"`
	// Replays are the replay consumers (named replay-…).
	Replays   []routeStatus    `json:"replays"`
	Instances []instanceStatus `json:"instances"`
	Warnings  []string         `json:"warnings,omitempty"`
}

type streamStatus struct {
	Name      string     `json:"name"`
	Exists    bool       `json:"exists"`
	Messages  uint64     `json:"messages"`
	Bytes     uint64     `json:"bytes"`
	FirstTime *time.Time `json:"first_time,omitempty"`
	LastTime  *time.Time `json:"last_time,omitempty"`
	Consumers int        `json:"consumers"`
	// DeadLetters, on the dead-letter stream only, counts the messages
	// under ezssh.dlq.>; the others are route state changes.
	DeadLetters *uint64 `json:"dead_letters,omitempty"`
}

// Route kinds, from the consumer's name.
const (
	kindGlobal       = "global"       // <consumer>
	kindStatic       = "static"       // <consumer>_<name>, from --routes-file
	kindSubscription = "subscription" // <consumer>-<SubscriptionId>, from EZSSH_SIEM
	kindReplay       = "replay"       // replay-…
	kindOther        = "other"        // another consumer of the stream
)

type routeStatus struct {
	Route string `json:"route"`
	Kind  string `json:"kind"`
	// Consumer is the durable consumer; "" for a route known only from its
	// dead letters.
	Consumer    string `json:"consumer,omitempty"`
	Pending     uint64 `json:"pending"`     // matching, not yet delivered
	AckPending  int    `json:"ack_pending"` // delivered, not yet acknowledged
	Redelivered int    `json:"redelivered"` // redelivered, not yet acknowledged
	InFlight    int64  `json:"in_flight"`   // being sent, summed over live instances
	// Breaker is closed, open or half-open from the freshest heartbeat that
	// lists the route; else paused (the consumer is paused), closed (forwarders
	// are alive and none reports trouble) or unknown.
	Breaker string `json:"breaker"`
	// BreakerFrom is the instance whose heartbeat gave Breaker, or
	// "consumer" when it was inferred.
	BreakerFrom string     `json:"breaker_from,omitempty"`
	Paused      bool       `json:"paused"`
	PausedUntil *time.Time `json:"paused_until,omitempty"`
	// LastDelivery is the latest event the destination accepted, over the
	// live instances (since each started).
	LastDelivery *time.Time `json:"last_delivery,omitempty"`
	// LastAck is the consumer's latest acknowledgement (delivered or
	// dead-lettered), as the server saw it.
	LastAck *time.Time `json:"last_ack,omitempty"`
	DLQ     uint64     `json:"dlq"`
}

type instanceStatus struct {
	Instance     string    `json:"instance"`
	Host         string    `json:"host"`
	PID          int       `json:"pid"`
	Version      string    `json:"version,omitempty"`
	StartedAt    time.Time `json:"started_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	RoutesTotal  int       `json:"routes_total"`
	BreakersOpen int       `json:"breakers_open"`
	// Stale is set when the heartbeat is older than its TTL (a clock
	// difference between hosts, or an instance that just died).
	Stale bool `json:"stale,omitempty"`
}

// statusFlags are the flags of forwarder status.
type statusFlags struct {
	conn      dlqConn // the NATS settings and --dlq-stream
	consumers routesConsumerFlags
	asJSON    bool
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f statusFlags
	s := cliflag.New("forwarder status", statusIntro, stdout)
	f.conn.bind(s)
	f.consumers.bind(s)
	s.Bool(&f.asJSON, "json", "", false, "print one JSON document instead of tables")
	if err := s.Parse(args); err != nil {
		if isHelp(err) {
			return nil
		}
		return err
	}
	if len(s.Args()) > 0 {
		return cliflag.Usagef("unexpected argument %q (see --help)", s.Args()[0])
	}
	if err := f.conn.validate(); err != nil {
		return err
	}
	if err := f.consumers.validate(); err != nil {
		return err
	}
	conn, err := f.conn.connect(ctx, stderr, "status")
	if err != nil {
		return err
	}
	defer conn.close()
	rep, err := gatherStatus(ctx, conn.js, f.consumers.stream, f.conn.stream, f.consumers.consumer, time.Now())
	if err != nil {
		return err
	}
	if f.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printStatus(stdout, rep)
}

// gatherStatus reads everything status shows. A missing stream or bucket is a
// warning in the report, not an error.
func gatherStatus(ctx context.Context, js jetstream.JetStream, stream, dlqStream, prefix string, now time.Time) (*statusReport, error) {
	rep := &statusReport{Time: now.UTC(), Routes: []routeStatus{}, Replays: []routeStatus{}}
	warn := func(format string, args ...any) { rep.Warnings = append(rep.Warnings, fmt.Sprintf(format, args...)) }

	instances, beats, err := readHeartbeats(ctx, js, now)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		warn("no forwarder has written a heartbeat on this server (bucket %s does not exist): breakers unknown", instancesBucket)
	case err != nil:
		return nil, err
	}
	rep.Instances = instances
	if len(instances) == 0 && err == nil {
		warn("no forwarder instance is alive (no heartbeat in the last %s)", heartbeatTTL)
	}

	// Dead letters by route: one stream info with a subject filter returns
	// the count of each subject ezssh.dlq.<route>.<sub>.<kind>.
	dlq := map[string]uint64{}
	ds, err := streamState(ctx, js, dlqStream, pipeline.DLQSubjectPrefix+".>")
	if err != nil {
		return nil, err
	}
	if ds.info != nil {
		var total uint64
		for subj, n := range ds.info.State.Subjects {
			rest, _ := strings.CutPrefix(subj, pipeline.DLQSubjectPrefix+".")
			route, _, _ := strings.Cut(rest, ".")
			dlq[route] += n
			total += n
		}
		ds.status.DeadLetters = &total
	} else {
		warn("dead-letter stream %s does not exist (the forwarder creates it at start)", dlqStream)
	}

	as, err := streamState(ctx, js, stream, "")
	if err != nil {
		return nil, err
	}
	rep.Streams = []streamStatus{as.status, ds.status}
	seen := map[string]bool{}
	if as.info == nil {
		warn("audit stream %s does not exist (is --stream or NATS_URL right?)", stream)
	} else {
		lister := as.stream.ListConsumers(ctx)
		for ci := range lister.Info() {
			r := consumerRoute(ci, prefix, now)
			seen[r.Route] = true
			r.DLQ = dlq[r.Route]
			applyHeartbeats(&r, beats, len(instances) > 0)
			if r.Kind == kindReplay {
				rep.Replays = append(rep.Replays, r)
			} else {
				rep.Routes = append(rep.Routes, r)
			}
		}
		if err := lister.Err(); err != nil {
			return nil, fmt.Errorf("consumers of %s: %w", stream, err)
		}
	}
	// Dead letters of a route whose consumer is gone still need someone.
	for route, n := range dlq {
		if seen[route] {
			continue
		}
		r := routeStatus{Route: route, Kind: kindOf(route, prefix), DLQ: n}
		applyHeartbeats(&r, beats, false)
		if r.Kind == kindReplay {
			rep.Replays = append(rep.Replays, r)
		} else {
			rep.Routes = append(rep.Routes, r)
		}
	}
	sortRoutes(rep.Routes)
	sortRoutes(rep.Replays)
	return rep, nil
}

// streamInfo is a stream's status and, when it exists, its handle and info.
type streamInfo struct {
	status streamStatus
	stream jetstream.Stream
	info   *jetstream.StreamInfo
}

// streamState looks up a stream; with subjects set, the info holds the count
// of each subject matching it.
func streamState(ctx context.Context, js jetstream.JetStream, name, subjects string) (streamInfo, error) {
	out := streamInfo{status: streamStatus{Name: name}}
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("stream %s: %w", name, err)
	}
	var opts []jetstream.StreamInfoOpt
	if subjects != "" {
		opts = append(opts, jetstream.WithSubjectFilter(subjects))
	}
	info, err := s.Info(ctx, opts...)
	if err != nil {
		return out, fmt.Errorf("stream %s: %w", name, err)
	}
	st := info.State
	out.stream, out.info = s, info
	out.status = streamStatus{Name: name, Exists: true, Messages: st.Msgs, Bytes: st.Bytes, Consumers: st.Consumers}
	if st.Msgs > 0 {
		out.status.FirstTime, out.status.LastTime = timePtr(st.FirstTime), timePtr(st.LastTime)
	}
	return out, nil
}

// kindOf tells a consumer's (or a route's) kind by its name; prefix is the
// forwarder's consumer name (FORWARDER_CONSUMER).
func kindOf(name, prefix string) string {
	switch {
	case name == prefix || name == "global":
		return kindGlobal
	case strings.HasPrefix(name, "replay"):
		return kindReplay
	case strings.HasPrefix(name, prefix+"-"):
		return kindSubscription
	case strings.HasPrefix(name, prefix+"_"):
		return kindStatic
	}
	return kindOther
}

// consumerRoute is the route of a consumer, from its info alone.
func consumerRoute(ci *jetstream.ConsumerInfo, prefix string, now time.Time) routeStatus {
	r := routeStatus{
		Route:       ci.Name,
		Kind:        kindOf(ci.Name, prefix),
		Consumer:    ci.Name,
		Pending:     ci.NumPending,
		AckPending:  ci.NumAckPending,
		Redelivered: ci.NumRedelivered,
		Paused:      ci.Paused,
	}
	switch r.Kind {
	case kindGlobal:
		r.Route = "global"
	case kindSubscription:
		r.Route = strings.TrimPrefix(ci.Name, prefix+"-")
	case kindStatic:
		r.Route = strings.TrimPrefix(ci.Name, prefix+"_")
	}
	if ci.Paused {
		switch {
		case ci.Config.PauseUntil != nil:
			r.PausedUntil = timePtr(*ci.Config.PauseUntil)
		case ci.PauseRemaining > 0:
			r.PausedUntil = timePtr(now.Add(ci.PauseRemaining))
		}
	}
	if ci.AckFloor.Last != nil && !ci.AckFloor.Last.IsZero() {
		r.LastAck = timePtr(*ci.AckFloor.Last)
	}
	return r
}

// applyHeartbeats sets the breaker, in-flight count and last delivery of r
// from the live instances' heartbeats (freshest first). alive says whether any
// instance is alive, so that a route none of them reports is closed.
func applyHeartbeats(r *routeStatus, beats []heartbeat, alive bool) {
	for _, hb := range beats {
		for _, hr := range hb.Routes {
			if hr.Route != r.Route {
				continue
			}
			if r.BreakerFrom == "" {
				r.Breaker, r.BreakerFrom = hr.Breaker, hb.Instance
			}
			r.InFlight += hr.InFlight
			if hr.LastDelivery != nil && (r.LastDelivery == nil || hr.LastDelivery.After(*r.LastDelivery)) {
				r.LastDelivery = timePtr(*hr.LastDelivery)
			}
		}
	}
	switch {
	case r.BreakerFrom != "":
	case r.Consumer == "":
		r.Breaker = "-"
	case r.Paused:
		r.Breaker, r.BreakerFrom = "paused", "consumer"
	case r.Kind == kindReplay || r.Kind == kindOther:
		r.Breaker = "-" // not run by the forwarder's routes, or not reported
	case alive:
		r.Breaker = "closed"
	default:
		r.Breaker = "unknown"
	}
}

// readHeartbeats returns the live instances, sorted by name, and their
// heartbeats, freshest first. ErrBucketNotFound when no forwarder ever wrote
// one.
func readHeartbeats(ctx context.Context, js jetstream.JetStream, now time.Time) ([]instanceStatus, []heartbeat, error) {
	instances := []instanceStatus{}
	kv, err := js.KeyValue(ctx, instancesBucket)
	if err != nil {
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return instances, nil, err
		}
		return nil, nil, fmt.Errorf("bucket %s: %w", instancesBucket, err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, nil, fmt.Errorf("bucket %s: %w", instancesBucket, err)
	}
	defer w.Stop()
	var beats []heartbeat
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case e = <-w.Updates():
		}
		if e == nil {
			break // the current values are all in
		}
		var hb heartbeat
		if err := json.Unmarshal(e.Value(), &hb); err != nil || hb.Instance == "" {
			hb = heartbeat{Instance: e.Key(), UpdatedAt: e.Created()}
		}
		beats = append(beats, hb)
		instances = append(instances, instanceStatus{
			Instance: hb.Instance, Host: hb.Host, PID: hb.PID, Version: hb.Version,
			StartedAt: hb.StartedAt, UpdatedAt: hb.UpdatedAt,
			RoutesTotal: hb.RoutesTotal, BreakersOpen: hb.BreakersOpen,
			Stale: now.Sub(hb.UpdatedAt) > heartbeatTTL,
		})
	}
	slices.SortFunc(instances, func(a, b instanceStatus) int { return cmp.Compare(a.Instance, b.Instance) })
	slices.SortFunc(beats, func(a, b heartbeat) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	return instances, beats, nil
}

// sortRoutes puts the global route first, then static, subscription and other
// routes, each by name.
func sortRoutes(rs []routeStatus) {
	rank := map[string]int{kindGlobal: 0, kindStatic: 1, kindSubscription: 2, kindReplay: 3, kindOther: 4}
	slices.SortFunc(rs, func(a, b routeStatus) int {
		if c := cmp.Compare(rank[a.Kind], rank[b.Kind]); c != 0 {
			return c
		}
		return cmp.Compare(a.Route, b.Route)
	})
}

func timePtr(t time.Time) *time.Time {
	t = t.UTC()
	return &t
}
