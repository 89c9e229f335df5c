package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// Dead-letter subjects and headers: the wire contract of EZSSH_AUDIT_DLQ.
const (
	// DLQSubjectPrefix starts every dead letter's subject:
	// ezssh.dlq.<route>.<SubscriptionId>.<kind>.
	DLQSubjectPrefix = "ezssh.dlq"

	HeaderReason       = "Ezssh-Dlq-Reason"        // invalid, rejected or undeliverable
	HeaderError        = "Ezssh-Dlq-Error"         // the last error, scrubbed of secrets
	HeaderStatus       = "Ezssh-Dlq-Status"        // the destination's HTTP status, if it replied
	HeaderCode         = "Ezssh-Dlq-Code"          // the destination's own code (HEC code), if it gave one
	HeaderSubject      = "Ezssh-Dlq-Subject"       // the original subject
	HeaderStreamSeq    = "Ezssh-Dlq-Stream-Seq"    // the original stream sequence
	HeaderRoute        = "Ezssh-Dlq-Route"         // the route that gave up on it
	HeaderAttempts     = "Ezssh-Dlq-Attempts"      // deliveries of the original message
	HeaderFirstFailure = "Ezssh-Dlq-First-Failure" // RFC 3339
	HeaderLastFailure  = "Ezssh-Dlq-Last-Failure"  // RFC 3339
)

// Dead-letter reasons.
const (
	reasonInvalid       = "invalid"
	reasonRejected      = "rejected"
	reasonUndeliverable = "undeliverable"
)

// maxErrorHeader bounds the error text kept in a dead letter's header.
const maxErrorHeader = 512

func errUndeliverable(deliveries uint64) error {
	return fmt.Errorf("delivered %d times without being settled: it crashed or hung the forwarder that held it", deliveries)
}

// EnsureDLQStream creates or updates the dead-letter stream. maxAge 0 means 30
// days.
func EnsureDLQStream(ctx context.Context, js jetstream.JetStream, name string, maxAge time.Duration, replicas int) (jetstream.Stream, error) {
	if maxAge <= 0 {
		maxAge = 30 * 24 * time.Hour
	}
	if replicas <= 0 {
		replicas = 1
	}
	want := jetstream.StreamConfig{
		Name:        name,
		Description: "EZSSH audit events that could not be delivered, with the reason in their headers; and route state changes for the notifier",
		Subjects:    []string{DLQSubjectPrefix + ".>", RouteEventSubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      maxAge,
		Replicas:    replicas,
		Duplicates:  2 * time.Minute,
		MaxMsgSize:  -1,
	}
	// Every instance of a fleet calls this at start: update only when
	// something changed, so starting instances do not churn the stream.
	s, err := js.Stream(ctx, name)
	switch {
	case err == nil && sameStream(s.CachedInfo().Config, want):
		return s, nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// Create, rather than update and then create: a least-privilege
		// forwarder may create the stream but not change it
		// (docs/nats-security.md).
		s, err = js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.CreateOrUpdateStream(ctx, want) // created meanwhile, with other settings
		}
	default:
		s, err = js.CreateOrUpdateStream(ctx, want)
	}
	if err != nil {
		return nil, fmt.Errorf("pipeline: dead-letter stream %s: %w", name, err)
	}
	return s, nil
}

// dlqSubject maps ezssh.audit.<sub>.<kind> to ezssh.dlq.<route>.<sub>.<kind>.
func dlqSubject(route, subject string) string {
	rest, ok := strings.CutPrefix(subject, audit.SubjectPrefix+".")
	if !ok || rest == "" {
		rest = "unknown.unknown"
	}
	return DLQSubjectPrefix + "." + route + "." + rest
}

// deadLetter stores m in the dead-letter stream, then terminates it. The
// original is settled only after the dead letter's PubAck; if the route stops
// first, it is NAKed instead. A second write of the same dead letter (after a
// crash) is dropped by the stream's duplicate window.
func (r *runner) deadLetter(ctx context.Context, m jetstream.Msg, reason string, cause error) {
	ctx, span := r.in.tracer.Start(ctx, "dead-letter", trace.WithAttributes(
		attribute.String("route", r.route.Name), attribute.String("ezssh.dlq.reason", reason)))
	defer span.End()
	now := time.Now().UTC()
	dl := nats.NewMsg(dlqSubject(r.route.Name, m.Subject()))
	dl.Data = m.Data()
	h := dl.Header
	h.Set(HeaderReason, reason)
	h.Set(HeaderError, truncate(cause.Error(), maxErrorHeader))
	if status, code, ok := delivery.ReplyOf(cause); status != 0 {
		h.Set(HeaderStatus, strconv.Itoa(status))
		if ok {
			h.Set(HeaderCode, strconv.Itoa(code))
		}
	}
	h.Set(HeaderSubject, m.Subject())
	h.Set(HeaderRoute, r.route.Name)
	h.Set(HeaderFirstFailure, now.Format(time.RFC3339Nano))
	h.Set(HeaderLastFailure, now.Format(time.RFC3339Nano))
	id := r.route.Name + "-" + m.Subject()
	if md, err := m.Metadata(); err == nil {
		h.Set(HeaderStreamSeq, strconv.FormatUint(md.Sequence.Stream, 10))
		h.Set(HeaderAttempts, strconv.FormatUint(md.NumDelivered, 10))
		if !md.Timestamp.IsZero() && reason == reasonUndeliverable {
			h.Set(HeaderFirstFailure, md.Timestamp.UTC().Format(time.RFC3339Nano))
		}
		id = r.route.Name + "-" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	h.Set(jetstream.MsgIDHeader, id)

	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(r.cfg.RetryInitial),
		backoff.WithMaxInterval(r.cfg.RetryMax),
		backoff.WithMaxElapsedTime(0),
	)
	err := backoff.RetryNotify(func() error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := r.js.PublishMsg(pctx, dl)
		return err
	}, backoff.WithContext(b, ctx), func(err error, wait time.Duration) {
		r.log.WarnContext(ctx, "dead-letter write failed; retrying", "err", err, "wait", wait)
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			r.log.Error("dead-letter write failed; message returned to the stream", "err", err)
		}
		_ = m.Nak()
		return
	}
	if err := m.TermWithReason("dead-lettered: " + reason); err != nil {
		// The message comes back; its dead letter is deduplicated.
		r.stats.ackErrors.Add(1)
	}
	r.stats.deadLettered.Add(1)
	r.in.deadLettered.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attribute.String("route", r.route.Name), attribute.String("reason", reason))))
	r.log.WarnContext(ctx, "event dead-lettered", "reason", reason, "subject", m.Subject(), "err", truncate(cause.Error(), maxErrorHeader))
}

// truncate cuts s to at most n bytes, at a character boundary so that a
// header stays valid UTF-8, and marks the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// sameStream reports whether have already has the settings of want that this
// package manages.
func sameStream(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.MaxAge == want.MaxAge &&
		have.Replicas == want.Replicas && have.Duplicates == want.Duplicates &&
		have.Storage == want.Storage && have.MaxMsgSize == want.MaxMsgSize &&
		have.Description == want.Description
}
