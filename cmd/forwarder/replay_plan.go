package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
)

// A replay's window is fixed when it starts and stored, with its total, in
// the metadata of its durable consumer replay-<ID>; the consumer's place in
// the stream is the replay's progress. Everything below is counted by the
// server (consumer NumPending), never by walking the stream.

const (
	// replayIDLen is the length of a replay ID, in hexadecimal digits.
	replayIDLen = 12
	// replayConsumerPrefix starts the name of every replay consumer.
	replayConsumerPrefix = "replay-"
	// replayAckWait is the replay consumer's ack wait (the pipeline keeps the
	// messages in hand alive every third of it).
	replayAckWait = 60 * time.Second
)

// Keys of a replay consumer's metadata.
const (
	metaID       = "ezssh_replay_id"
	metaTarget   = "ezssh_replay_target"
	metaFilter   = "ezssh_replay_filter"
	metaSince    = "ezssh_replay_since"
	metaUntil    = "ezssh_replay_until"
	metaSinceArg = "ezssh_replay_since_arg"
	metaUntilArg = "ezssh_replay_until_arg"
	metaEndSeq   = "ezssh_replay_end_seq"
	metaTotal    = "ezssh_replay_total"
	metaRate     = "ezssh_replay_rate"
	metaCreated  = "ezssh_replay_created"
)

// replayPlan is what a replay sends and where.
type replayPlan struct {
	ID                 string
	Target             replayTarget
	SinceArg, UntilArg string    // as given; they make the ID
	Since, Until       time.Time // the window, [Since, Until) in stream time
	EndSeq             uint64    // last stream sequence stored before Until
	Total              uint64    // matching events in the window
	HasTotal           bool      // Total was counted (false only after a crash at the start)
	Rate               float64   // events a second; 0 is unlimited
	Created            time.Time
}

// replayID is a short hash of what makes a replay: the same arguments give
// the same ID, so running an interrupted replay again resumes it. Absolute
// times count by the instant they name, ages ("6h") as written: the window of
// a replay is fixed when it first starts.
func replayID(stream string, t replayTarget, sinceArg, untilArg string) string {
	h := sha256.New()
	for _, s := range []string{stream, t.filter, t.String(), normReplayArg(sinceArg), normReplayArg(untilArg)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:replayIDLen]
}

func normReplayArg(s string) string {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return replayTime(t)
	}
	return strings.TrimSpace(s)
}

func validReplayID(id string) bool {
	if len(id) != replayIDLen {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func replayConsumer(id string) string { return replayConsumerPrefix + id }

func (p *replayPlan) description() string {
	return fmt.Sprintf("EZSSH replay %s: %s stored in [%s, %s) to %s (forwarder replay --resume %s)",
		p.ID, p.Target.filter, replayTime(p.Since), replayTime(p.Until), p.Target, p.ID)
}

func (p *replayPlan) metadata() map[string]string {
	m := map[string]string{
		metaID:       p.ID,
		metaTarget:   p.Target.String(),
		metaFilter:   p.Target.filter,
		metaSince:    replayTime(p.Since),
		metaUntil:    replayTime(p.Until),
		metaSinceArg: p.SinceArg,
		metaUntilArg: p.UntilArg,
		metaEndSeq:   strconv.FormatUint(p.EndSeq, 10),
		metaCreated:  replayTime(p.Created),
	}
	if p.HasTotal {
		m[metaTotal] = strconv.FormatUint(p.Total, 10)
	}
	if p.Rate > 0 {
		m[metaRate] = strconv.FormatFloat(p.Rate, 'g', -1, 64)
	}
	return m
}

// planFromMetadata reads back what metadata wrote.
func planFromMetadata(m map[string]string) (replayPlan, error) {
	var (
		p    replayPlan
		errs []error
	)
	need := func(k string) string {
		v, ok := m[k]
		if !ok {
			errs = append(errs, fmt.Errorf("no %s", k))
		}
		return v
	}
	parseTime := func(k string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, need(k))
		if err != nil && m[k] != "" {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
		}
		return t
	}
	p.ID = need(metaID)
	filter := need(metaFilter)
	t, err := parseReplayTarget(need(metaTarget), filter)
	if err != nil {
		errs = append(errs, err)
	}
	p.Target = t
	p.Since, p.Until = parseTime(metaSince), parseTime(metaUntil)
	p.SinceArg, p.UntilArg = m[metaSinceArg], m[metaUntilArg]
	if p.EndSeq, err = strconv.ParseUint(need(metaEndSeq), 10, 64); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", metaEndSeq, err))
	}
	if v, ok := m[metaTotal]; ok {
		if p.Total, err = strconv.ParseUint(v, 10, 64); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", metaTotal, err))
		}
		p.HasTotal = true
	}
	if v, ok := m[metaRate]; ok {
		p.Rate, _ = strconv.ParseFloat(v, 64)
	}
	p.Created, _ = time.Parse(time.RFC3339Nano, m[metaCreated])
	return p, errors.Join(errs...)
}

// replayer runs one replay.
type replayer struct {
	f      *replayFlags
	js     jetstream.JetStream
	stream jetstream.Stream
	key    []byte
	log    *slog.Logger
	stdout io.Writer
	stderr io.Writer

	p       replayPlan
	cons    jetstream.Consumer // the replay consumer; nil until created or found
	resumed bool               // the consumer existed: this run continues it
}

// plan sets up a replay of the flags' window to t: the interrupted replay of
// the same arguments if there is one, else a new plan (no consumer yet).
func (r *replayer) plan(ctx context.Context, t replayTarget) error {
	p := replayPlan{Target: t, SinceArg: r.f.sinceArg, UntilArg: r.f.untilArg, Since: r.f.since, Until: r.f.until, Rate: r.f.rate}
	p.ID = replayID(r.f.stream, t, p.SinceArg, p.UntilArg)
	c, err := r.stream.Consumer(ctx, replayConsumer(p.ID))
	switch {
	case err == nil:
		return r.adopt(c)
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return fmt.Errorf("replay consumer %s: %w", replayConsumer(p.ID), err)
	}
	if p.EndSeq, err = r.endSeq(ctx, t.filter, p.Until); err != nil {
		return err
	}
	r.p = p
	return nil
}

// load finds the interrupted replay id (--resume).
func (r *replayer) load(ctx context.Context, id string) error {
	c, err := r.stream.Consumer(ctx, replayConsumer(id))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return &cliflag.UsageError{Msg: fmt.Sprintf("no replay %s on stream %s: it finished (its consumer is deleted when it does), or the ID is wrong", id, r.f.stream)}
	}
	if err != nil {
		return fmt.Errorf("replay consumer %s: %w", replayConsumer(id), err)
	}
	return r.adopt(c)
}

// adopt continues the replay whose consumer is c.
func (r *replayer) adopt(c jetstream.Consumer) error {
	info := c.CachedInfo()
	p, err := planFromMetadata(info.Config.Metadata)
	if err != nil {
		return fmt.Errorf("consumer %s does not describe a replay (%v): delete it (nats consumer rm %s %s) and start the replay again",
			info.Name, err, r.f.stream, info.Name)
	}
	if r.f.rateArg != "" {
		p.Rate = r.f.rate
	}
	r.p, r.cons, r.resumed = p, c, true
	return nil
}

// endSeq is the last stream sequence stored before until: just before the
// first event of filter stored at or after until, or the stream's last
// sequence when there is none.
func (r *replayer) endSeq(ctx context.Context, filter string, until time.Time) (uint64, error) {
	// The last sequence is read first, so that an event stored meanwhile
	// (after until) is found by the consumer and not counted in.
	info, err := r.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit stream %s: %w", r.f.stream, err)
	}
	last := info.State.LastSeq
	c, err := r.tempConsumer(ctx, filter, jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &until})
	if err != nil {
		return 0, err
	}
	defer r.dropTemp(c)
	if c.CachedInfo().NumPending == 0 {
		return last, nil
	}
	m, err := c.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		return 0, fmt.Errorf("audit stream %s: the first event after --until: %w", r.f.stream, err)
	}
	md, err := m.Metadata()
	if err != nil {
		return 0, err
	}
	return md.Sequence.Stream - 1, nil
}

// after counts the events of the replay's filter stored after its window.
func (r *replayer) after(ctx context.Context) (uint64, error) {
	c, err := r.tempConsumer(ctx, r.p.Target.filter, jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: r.p.EndSeq + 1})
	if err != nil {
		return 0, err
	}
	defer r.dropTemp(c)
	return c.CachedInfo().NumPending, nil
}

// tempConsumer creates an ephemeral consumer of filter that nobody pulls:
// its NumPending counts the events from its start on.
func (r *replayer) tempConsumer(ctx context.Context, filter string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cfg.FilterSubject = filter
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.HeadersOnly = true
	cfg.MemoryStorage = true
	cfg.InactiveThreshold = 30 * time.Second
	cfg.Description = "EZSSH replay: counting"
	c, err := r.stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("audit stream %s: counting consumer: %w", r.f.stream, err)
	}
	return c, nil
}

func (r *replayer) dropTemp(c jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.stream.DeleteConsumer(ctx, c.CachedInfo().Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		r.log.Debug("could not delete a counting consumer; it goes away on its own", "err", err)
	}
}

// held is what the replay consumer has not settled: events not yet
// delivered plus events delivered and not acknowledged (in hand, or NAKed).
func (r *replayer) held(ctx context.Context) (uint64, error) {
	info, err := r.cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("replay consumer %s: %w", replayConsumer(r.p.ID), err)
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// remaining counts the events of the window the replay consumer has not
// settled: held minus the events after the window. Events stored while it
// counts can only make it larger than the truth, never smaller, so zero
// means done. With exact (nothing is acknowledging meanwhile), it counts
// again until no event arrived in between.
func (r *replayer) remaining(ctx context.Context, exact bool) (uint64, error) {
	for i := 0; ; i++ {
		var before uint64
		if exact {
			h, err := r.held(ctx)
			if err != nil {
				return 0, err
			}
			before = h
		}
		a, err := r.after(ctx)
		if err != nil {
			return 0, err
		}
		h, err := r.held(ctx)
		if err != nil {
			return 0, err
		}
		rem := h - min(a, h)
		if !exact || before == h || i == 4 {
			return rem, nil
		}
	}
}

// consumerConfig is the replay consumer: a durable pull consumer of the
// filter from the start of the window, whose description and metadata record
// the replay.
func (r *replayer) consumerConfig() jetstream.ConsumerConfig {
	since := r.p.Since
	return jetstream.ConsumerConfig{
		Durable:       replayConsumer(r.p.ID),
		Description:   r.p.description(),
		Metadata:      r.p.metadata(),
		FilterSubject: r.p.Target.filter,
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &since,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       replayAckWait,
		MaxAckPending: r.maxAckPending(),
		MaxDeliver:    -1,
	}
}

// maxAckPending leaves room for the prefetch and the batches in flight.
func (r *replayer) maxAckPending() int {
	return max(20_000, 2*r.f.batchEvents+r.f.batchEvents*r.f.inFlight)
}

// create creates the replay consumer and counts the window.
func (r *replayer) create(ctx context.Context) error {
	r.p.Created = time.Now()
	c, err := r.stream.CreateConsumer(ctx, r.consumerConfig())
	if err != nil {
		return fmt.Errorf("replay consumer %s: %w", replayConsumer(r.p.ID), err)
	}
	r.cons = c
	total, err := r.remaining(ctx, true)
	if err != nil {
		return err
	}
	r.p.Total, r.p.HasTotal = total, true
	return r.saveMetadata(ctx)
}

// saveMetadata writes the plan into the consumer's description and metadata,
// keeping the rest of its configuration (the pipeline sets it up too, and
// does not keep them).
func (r *replayer) saveMetadata(ctx context.Context) error {
	info, err := r.cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("replay consumer %s: %w", replayConsumer(r.p.ID), err)
	}
	cfg := info.Config
	cfg.Description, cfg.Metadata = r.p.description(), r.p.metadata()
	if _, err := r.js.UpdateConsumer(ctx, r.f.stream, cfg); err != nil {
		return fmt.Errorf("replay consumer %s: record the replay: %w", replayConsumer(r.p.ID), err)
	}
	return nil
}

// deleteConsumer removes the replay consumer of a finished replay.
func (r *replayer) deleteConsumer() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := r.stream.DeleteConsumer(ctx, replayConsumer(r.p.ID))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("replay finished, but its consumer %s could not be deleted: %w (delete it with: nats consumer rm %s %s)",
			replayConsumer(r.p.ID), err, r.f.stream, replayConsumer(r.p.ID))
	}
	return nil
}
