package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
)

// Publisher publishes audit events to JetStream. It is safe for concurrent
// use.
type Publisher struct {
	js    jetstream.JetStream
	opts  PublisherOptions
	async asyncWindow
}

// NewPublisher returns a Publisher that publishes through js. The stream must
// exist (see EnsureStream); the Publisher never creates it.
func NewPublisher(js jetstream.JetStream, opts PublisherOptions) *Publisher {
	opts = opts.withDefaults()
	p := &Publisher{js: js, opts: opts}
	p.async.init(opts.MaxInFlight, opts.MaxErrors)
	return p
}

// Publish completes e (an empty EventId becomes a new UUIDv7, an empty
// RequestDate the current UTC time; e is modified), validates and encodes it,
// publishes it to e.Subject() with its EventId as Nats-Msg-Id and waits for
// the stream's PubAck. A repeated EventId within the duplicate window is
// stored once and acknowledged with PubAck.Duplicate set.
//
// It returns a *ValidationError (matching ErrInvalid) for an invalid event,
// or the publish error wrapped.
func (p *Publisher) Publish(ctx context.Context, e *Event) (*jetstream.PubAck, error) {
	body, err := p.encode(e)
	if err != nil {
		return nil, err
	}
	return p.publish(ctx, e.Subject(), e.EventId, body)
}

// PublishRaw publishes an already encoded body. The body must pass Inspect
// (it is not completed: EventId and RequestDate must be set); its subject
// and Nats-Msg-Id come from its fields. body is not modified or retained.
func (p *Publisher) PublishRaw(ctx context.Context, body []byte) (*jetstream.PubAck, error) {
	f, err := Inspect(body)
	if err != nil {
		return nil, err
	}
	return p.publish(ctx, f.Subject(), f.EventId, body)
}

func (p *Publisher) publish(ctx context.Context, subject, eventID string, body []byte) (*jetstream.PubAck, error) {
	ctx, span := startPublishSpan(ctx, subject, eventID)
	defer span.End()
	ack, err := p.js.PublishMsg(ctx, newMsg(ctx, subject, eventID, body))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("audit: publish event %s to %s: %w", eventID, subject, err)
	}
	return ack, nil
}

// encode completes, validates and encodes e.
func (p *Publisher) encode(e *Event) ([]byte, error) {
	if e.EventId == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("audit: new EventId: %w", err)
		}
		e.EventId = id.String()
	}
	if e.RequestDate == "" {
		e.RequestDate = p.opts.Now().UTC().Format(time.RFC3339Nano)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	body, err := e.AppendJSON(make([]byte, 0, 2048))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxEventSize {
		return nil, bodyError(ErrTooLarge, "larger than %d bytes (%d)", MaxEventSize, len(body))
	}
	return body, nil
}

// newMsg builds the message of one event. Every header is set here:
// Nats-Msg-Id, and traceparent/tracestate when ctx holds a span.
func newMsg(ctx context.Context, subject, eventID string, body []byte) *nats.Msg {
	m := &nats.Msg{Subject: subject, Data: body, Header: make(nats.Header, 3)}
	m.Header[jetstream.MsgIDHeader] = []string{eventID}
	traceContext.Inject(ctx, HeaderCarrier(m.Header))
	return m
}
