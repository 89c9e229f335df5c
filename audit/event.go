package audit

import (
	"encoding/json"
	"time"
)

// MaxEventSize is the largest body, in bytes, that Inspect accepts and the
// Publisher sends: 1 MiB.
const MaxEventSize = 1 << 20

// Criticality values.
const (
	CriticalityHigh   = "High"
	CriticalityMedium = "Medium"
	CriticalityLow    = "Low"
)

// Event types EZSSH publishes today; any EZSSH_[A-Z_]+ is accepted.
const (
	EventTypeSSH = "EZSSH_SSH"
	EventTypeGit = "EZSSH_GIT"
)

// ActionTestConnection is the ActionPerformed value that marks a test event.
const ActionTestConnection = "Test Connection"

// Event is one audit event. Its JSON form uses exactly the field names below;
// fields of the body that Event does not know are kept in Extra and written
// back byte for byte, so a service can decode, inspect and re-publish an event
// without losing what a newer publisher added.
//
// An Event is a plain value: it is not safe for concurrent mutation.
type Event struct {
	// EventType is EZSSH_SSH, EZSSH_GIT or another EZSSH_[A-Z_]+. Required.
	EventType string
	// RequestDate is when the request happened, RFC 3339 with sub-second
	// precision (time.RFC3339Nano), e.g. 2025-01-02T15:04:05.123Z. Required;
	// the Publisher fills it with the current UTC time when empty.
	RequestDate string
	// ActionPerformed is what EZSSH did, e.g. "Certificate Issued";
	// ActionTestConnection marks a test event.
	ActionPerformed string
	// UserPublicKey is the requesting user's public key, authorized_keys format.
	UserPublicKey string
	// Certificate is the issued certificate; empty when none was issued.
	Certificate string
	// RequestorFriendlyName is the display name of the requesting user.
	RequestorFriendlyName string
	// EventId identifies the event (a UUID, v7 preferred) and is the
	// publish-side deduplication key. Required; the Publisher fills it with a
	// UUIDv7 when empty.
	EventId string
	// SubscriptionId is the EZSSH subscription (customer) the event belongs
	// to; it becomes a subject token, see ValidSubjectToken. Required.
	SubscriptionId string
	// Criticality is High, Medium, Low or empty.
	Criticality string
	// Extra holds the body's other fields, each value exactly as it was
	// received. Keys must not be one of the names above.
	Extra map[string]json.RawMessage
}

// RequestTime parses RequestDate.
func (e *Event) RequestTime() (time.Time, error) {
	return time.Parse(time.RFC3339Nano, e.RequestDate)
}

// IsTest reports whether e is a Test Connection event.
func (e *Event) IsTest() bool { return e.ActionPerformed == ActionTestConnection }
