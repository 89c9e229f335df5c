package audit_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
)

func newEvent(sub string) *audit.Event {
	return &audit.Event{
		EventType:             audit.EventTypeSSH,
		ActionPerformed:       "Certificate Issued",
		UserPublicKey:         "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk alice@laptop",
		RequestorFriendlyName: "Alice Martin",
		SubscriptionId:        sub,
		Criticality:           audit.CriticalityMedium,
	}
}

func setupStream(t *testing.T) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	js := startJS(t)
	s, err := audit.EnsureStream(testContext(t), js, audit.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return js, s
}

func TestPublishFillsAndStores(t *testing.T) {
	js, stream := setupStream(t)
	ctx := testContext(t)
	now := time.Date(2025, 3, 14, 9, 26, 53, 589e6, time.FixedZone("CET", 3600))
	p := audit.NewPublisher(js, audit.PublisherOptions{Now: func() time.Time { return now }})

	e := newEvent("acme")
	ack, err := p.Publish(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if e.RequestDate != "2025-03-14T08:26:53.589Z" {
		t.Errorf("RequestDate = %q, want now in UTC", e.RequestDate)
	}
	if len(e.EventId) != 36 || e.EventId[14] != '7' {
		t.Errorf("EventId = %q, want a UUIDv7", e.EventId)
	}
	if ack.Stream != audit.StreamName || ack.Sequence != 1 || ack.Duplicate {
		t.Errorf("PubAck = %+v", ack)
	}
	msg, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "ezssh.audit.acme.ssh" {
		t.Errorf("subject = %q", msg.Subject)
	}
	if got := msg.Header.Get("Nats-Msg-Id"); got != e.EventId {
		t.Errorf("Nats-Msg-Id = %q, want %q", got, e.EventId)
	}
	f, err := audit.Inspect(msg.Data)
	if err != nil || f.EventId != e.EventId {
		t.Errorf("stored body: %+v, %v", f, err)
	}
}

func TestPublishDeduplicates(t *testing.T) {
	js, stream := setupStream(t)
	ctx := testContext(t)
	p := audit.NewPublisher(js, audit.PublisherOptions{})
	e := newEvent("acme")
	first, err := p.Publish(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	body, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.PublishRaw(ctx, body)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Duplicate || second.Sequence != first.Sequence {
		t.Errorf("second PubAck = %+v, want a duplicate of %d", second, first.Sequence)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages, want 1", info.State.Msgs)
	}
}

func TestPublishRejectsInvalid(t *testing.T) {
	js, _ := setupStream(t)
	ctx := testContext(t)
	p := audit.NewPublisher(js, audit.PublisherOptions{})

	_, err := p.Publish(ctx, newEvent("bad.sub"))
	var ve *audit.ValidationError
	if !errors.As(err, &ve) || ve.Field != "SubscriptionId" {
		t.Errorf("Publish = %v, want a SubscriptionId error", err)
	}
	if _, err := p.PublishRaw(ctx, []byte(`{"EventId":"x"}`)); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("PublishRaw = %v, want ErrInvalid", err)
	}
	big := newEvent("acme")
	big.Certificate = string(make([]byte, audit.MaxEventSize))
	if _, err := p.Publish(ctx, big); !errors.Is(err, audit.ErrTooLarge) {
		t.Errorf("Publish(big) = %v, want ErrTooLarge", err)
	}
	if err := p.PublishAsync(ctx, newEvent("")); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("PublishAsync = %v, want ErrInvalid", err)
	}
}

func TestPublishAsyncFlush(t *testing.T) {
	js, stream := setupStream(t)
	ctx := testContext(t)
	p := audit.NewPublisher(js, audit.PublisherOptions{MaxInFlight: 256})
	const n = 5000
	for i := range n {
		if err := p.PublishAsync(ctx, newEvent(fmt.Sprintf("sub-%d", i%7))); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if pending := js.PublishAsyncPending(); pending > 256 {
			t.Fatalf("%d publishes in flight, window is 256", pending)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Errorf("stream holds %d messages, want %d", info.State.Msgs, n)
	}
}

// TestPublishAsyncReportsFailures makes the stream refuse every event, so
// every ack fails: Flush must report each failure, not lose it.
func TestPublishAsyncReportsFailures(t *testing.T) {
	js, stream := setupStream(t)
	ctx := testContext(t)
	// Shrink the stream's max message size so the server refuses the events.
	cfg := audit.StreamOptions{MaxMsgSize: 64}.Config()
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	p := audit.NewPublisher(js, audit.PublisherOptions{MaxInFlight: 4, MaxErrors: 3})
	for range 10 {
		if err := p.PublishAsync(ctx, newEvent("acme")); err != nil {
			t.Fatal(err)
		}
	}
	err := p.Flush(ctx)
	var ae *audit.AsyncError
	if !errors.As(err, &ae) {
		t.Fatalf("Flush = %v, want an *AsyncError", err)
	}
	if ae.Failed != 10 || len(ae.Errors) != 3 {
		t.Errorf("Failed = %d with %d errors kept, want 10 and 3", ae.Failed, len(ae.Errors))
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		t.Errorf("Flush error %v does not carry the server's APIError", err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Errorf("second Flush = %v, want the errors forgotten", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("stream holds %d messages", info.State.Msgs)
	}
}

func TestPublishAsyncRespectsContext(t *testing.T) {
	js, _ := setupStream(t)
	p := audit.NewPublisher(js, audit.PublisherOptions{})
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	if err := p.PublishAsync(ctx, newEvent("acme")); !errors.Is(err, context.Canceled) {
		t.Errorf("PublishAsync = %v, want context.Canceled", err)
	}
	if err := p.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Flush = %v, want context.Canceled", err)
	}
}
