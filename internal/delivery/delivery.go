// Package delivery is the vocabulary shared by the pipeline and its destinations:
// the event a destination delivers and the classes of failure the pipeline acts on.
//
// It exists so that internal/pipeline can declare the Sink it needs without
// knowing which SIEM is behind it, and so that a destination package (huntress
// today, another SIEM tomorrow) can report what a failure means without knowing
// of NATS. It has no dependencies beyond the standard library.
package delivery

import (
	"errors"
	"time"
)

// Event is one event handed to a destination: its raw JSON body, forwarded byte
// for byte, and the time the destination should index it at.
type Event struct {
	// Time is when the event happened (the event's RequestDate).
	Time time.Time
	// Body is the event's JSON object exactly as it was published. A destination
	// must not modify it.
	Body []byte
}

// Class says what the pipeline should do about a failed delivery.
type Class int

const (
	// Retry: a transient failure of the destination (network error, timeout,
	// 408, 429, 5xx). Retry with backoff; never dead-letter.
	Retry Class = iota + 1
	// Misconfigured: the destination refuses us until an administrator fixes
	// the settings (wrong token, wrong URL, TLS failure). The events are fine:
	// hold them and alert; never dead-letter.
	Misconfigured
	// Rejected: the destination refused the events themselves. Bisect the
	// batch; dead-letter only the events that are refused on their own.
	Rejected
	// TooLarge: the request was too large. Split the batch and retry the halves.
	TooLarge
)

// String returns the class name used in logs, metrics and dead-letter headers.
func (c Class) String() string {
	switch c {
	case Retry:
		return "retry"
	case Misconfigured:
		return "misconfigured"
	case Rejected:
		return "rejected"
	case TooLarge:
		return "too_large"
	}
	return "unknown"
}

// Classified is implemented by destination errors that know their class.
type Classified interface {
	error
	// DeliveryClass reports what the pipeline should do about the failure.
	DeliveryClass() Class
}

// RetryAfterer is implemented by destination errors that carry the delay the
// destination asked for (an HTTP Retry-After).
type RetryAfterer interface {
	RetryAfter() time.Duration
}

// EventIndexer is implemented by destination errors that name the event the
// destination refused (HEC invalid-event-number). The index is a hint only.
type EventIndexer interface {
	// EventIndex returns the 0-based index of the refused event in the request,
	// and false when the destination did not say.
	EventIndex() (int, bool)
}

// ClassOf returns the class of err: the class a Classified error in its chain
// reports, or Retry for any other error (a failure nobody classified is
// assumed transient, which holds events rather than dropping them).
// ClassOf(nil) is 0.
func ClassOf(err error) Class {
	if err == nil {
		return 0
	}
	var c Classified
	if errors.As(err, &c) {
		return c.DeliveryClass()
	}
	return Retry
}

// RetryAfterOf returns the delay a destination asked for, or 0.
func RetryAfterOf(err error) time.Duration {
	var r RetryAfterer
	if errors.As(err, &r) {
		return r.RetryAfter()
	}
	return 0
}

// EventIndexOf returns the refused event's index hint, if err carries one.
func EventIndexOf(err error) (int, bool) {
	var x EventIndexer
	if errors.As(err, &x) {
		return x.EventIndex()
	}
	return 0, false
}

// Replier is implemented by destination errors that carry the destination's
// reply: its HTTP status and, when the reply had one, its own code.
type Replier interface {
	Reply() (status, code int, hasCode bool)
}

// ReplyOf returns the destination's reply status and code carried by err, if
// any.
func ReplyOf(err error) (status, code int, hasCode bool) {
	var r Replier
	if errors.As(err, &r) {
		return r.Reply()
	}
	return 0, 0, false
}
