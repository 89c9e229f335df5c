package audit

import (
	"errors"
	"fmt"
)

// Sentinel errors. A *ValidationError wraps one of ErrTooLarge, ErrNotUTF8,
// ErrNotJSON or ErrNotObject when the whole body is unusable, and every
// *ValidationError matches ErrInvalid, so callers can tell a bad event from a
// failed publish with errors.Is.
var (
	// ErrInvalid matches every *ValidationError.
	ErrInvalid = errors.New("audit: invalid event")
	// ErrTooLarge: the body is larger than MaxEventSize.
	ErrTooLarge = errors.New("audit: event too large")
	// ErrNotUTF8: the body is not valid UTF-8.
	ErrNotUTF8 = errors.New("audit: event is not UTF-8")
	// ErrNotJSON: the body is not well-formed JSON.
	ErrNotJSON = errors.New("audit: event is not JSON")
	// ErrNotObject: the body is JSON but not an object.
	ErrNotObject = errors.New("audit: event is not a JSON object")
)

// ValidationError says why an event body is invalid. Field is the offending
// field ("" when the body as a whole is unusable) and Reason a short
// lower-case phrase such as "missing" or "not RFC 3339"; both are safe to put
// in a log, a header or an email (they never contain the field's value).
type ValidationError struct {
	Field  string
	Reason string
	// Err is the sentinel for body-level failures (ErrTooLarge, ErrNotUTF8,
	// ErrNotJSON, ErrNotObject), nil for field failures.
	Err error
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "audit: " + e.Reason
	}
	return "audit: " + e.Field + ": " + e.Reason
}

// Unwrap returns the body-level sentinel, if any.
func (e *ValidationError) Unwrap() error { return e.Err }

// Is makes every *ValidationError match ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func fieldError(field, reason string) error {
	return &ValidationError{Field: field, Reason: reason}
}

func bodyError(sentinel error, format string, args ...any) error {
	return &ValidationError{Reason: fmt.Sprintf(format, args...), Err: sentinel}
}
