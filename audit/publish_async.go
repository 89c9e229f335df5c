package audit

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// AsyncError reports the asynchronous publishes that failed since the last
// Flush. Errors holds the first few failures in full (PublisherOptions
// MaxErrors), each naming its EventId; Failed counts them all.
type AsyncError struct {
	Failed int
	Errors []error
}

func (e *AsyncError) Error() string {
	if len(e.Errors) == 0 {
		return fmt.Sprintf("audit: %d async publishes failed", e.Failed)
	}
	return fmt.Sprintf("audit: %d async publishes failed; first: %v", e.Failed, e.Errors[0])
}

// Unwrap returns the kept errors, for errors.Is and errors.As.
func (e *AsyncError) Unwrap() []error { return e.Errors }

// asyncWindow tracks the outstanding PubAck futures in publish order. Acks
// come back roughly in order, so waiting on the oldest frees the window with
// no goroutine per message. lock is a one-slot channel rather than a mutex so
// that waiting for it respects the caller's context.
type asyncWindow struct {
	lock      chan struct{}
	max       int
	maxErrors int
	pending   []jetstream.PubAckFuture // pending[head:] are outstanding
	head      int
	failed    int
	errs      []error
}

func (w *asyncWindow) init(maxInFlight, maxErrors int) {
	w.lock = make(chan struct{}, 1)
	w.max = maxInFlight
	w.maxErrors = maxErrors
}

func (w *asyncWindow) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case w.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *asyncWindow) release() { <-w.lock }

// PublishAsync completes, validates and encodes e as Publish does, then
// publishes it without waiting for its PubAck. At most MaxInFlight publishes
// are outstanding: when the window is full PublishAsync waits for the oldest
// ack, or for ctx. An invalid event or a publish that could not be sent is
// returned at once; a publish the stream later refuses (or whose ack never
// comes before a timeout or disconnect) is reported by the next Flush.
func (p *Publisher) PublishAsync(ctx context.Context, e *Event) error {
	body, err := p.encode(e)
	if err != nil {
		return err
	}
	return p.publishAsync(ctx, e.Subject(), e.EventId, body)
}

// PublishRawAsync is PublishAsync for an already encoded body, which must
// pass Inspect. The Publisher keeps body until its ack arrives: do not modify
// it before Flush.
func (p *Publisher) PublishRawAsync(ctx context.Context, body []byte) error {
	f, err := Inspect(body)
	if err != nil {
		return err
	}
	return p.publishAsync(ctx, f.Subject(), f.EventId, body)
}

func (p *Publisher) publishAsync(ctx context.Context, subject, eventID string, body []byte) error {
	w := &p.async
	if err := w.acquire(ctx); err != nil {
		return err
	}
	defer w.release()
	w.reap()
	for len(w.pending)-w.head >= w.max {
		if err := w.waitOldest(ctx); err != nil {
			return err
		}
	}
	sctx, span := startPublishSpan(ctx, subject, eventID)
	f, err := p.js.PublishMsgAsync(newMsg(sctx, subject, eventID, body))
	span.End()
	if err != nil {
		return fmt.Errorf("audit: publish event %s to %s: %w", eventID, subject, err)
	}
	w.compact()
	w.pending = append(w.pending, f)
	return nil
}

// Flush waits for the ack of every PublishAsync made before it, then returns
// an *AsyncError for those that failed since the previous Flush (and forgets
// them), or nil. If ctx ends first it returns ctx's error; the publishes not
// yet acknowledged stay outstanding for the next Flush.
func (p *Publisher) Flush(ctx context.Context) error {
	w := &p.async
	if err := w.acquire(ctx); err != nil {
		return err
	}
	defer w.release()
	for w.head < len(w.pending) {
		if err := w.waitOldest(ctx); err != nil {
			return err
		}
	}
	w.pending, w.head = w.pending[:0], 0
	return w.takeErrors()
}

// waitOldest waits for the oldest outstanding future and records its result.
// The lock must be held.
func (w *asyncWindow) waitOldest(ctx context.Context) error {
	f := w.pending[w.head]
	select {
	case <-f.Ok():
	case err := <-f.Err():
		w.record(f, err)
	case <-ctx.Done():
		return ctx.Err()
	}
	w.pending[w.head] = nil
	w.head++
	return nil
}

// reap drops the futures at the head that are already settled, without
// blocking. The lock must be held.
func (w *asyncWindow) reap() {
	for w.head < len(w.pending) {
		f := w.pending[w.head]
		select {
		case <-f.Ok():
		case err := <-f.Err():
			w.record(f, err)
		default:
			return
		}
		w.pending[w.head] = nil
		w.head++
	}
}

// compact moves the outstanding futures to the front once the settled ones
// make up a window's worth, so the slice stays within two windows.
func (w *asyncWindow) compact() {
	if w.head < w.max && w.head < len(w.pending) {
		return
	}
	n := copy(w.pending, w.pending[w.head:])
	clear(w.pending[n:])
	w.pending, w.head = w.pending[:n], 0
}

func (w *asyncWindow) record(f jetstream.PubAckFuture, err error) {
	m := f.Msg()
	w.failed++
	if len(w.errs) < w.maxErrors {
		w.errs = append(w.errs, fmt.Errorf("audit: publish event %s to %s: %w", m.Header.Get(jetstream.MsgIDHeader), m.Subject, err))
	}
}

func (w *asyncWindow) takeErrors() error {
	if w.failed == 0 {
		return nil
	}
	err := &AsyncError{Failed: w.failed, Errors: w.errs}
	w.failed, w.errs = 0, nil
	return err
}
