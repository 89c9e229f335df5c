// Package routes holds the configuration of the forwarder's routes: the
// per-subscription routes an EZSSH subscription turns on ("Send Audit Logs to
// SIEM"), stored in the JetStream key-value bucket EZSSH_SIEM and watched live,
// and the static routes of a --routes-file.
//
// It decodes and validates route entries (keeping fields it does not know),
// seals and opens HEC tokens with AES-256-GCM, masks tokens for display, and
// turns a route into the huntress.Config of its destination. It knows nothing
// of the pipeline: the forwarder turns a Change into a pipeline.Route.
//
// No error, String or Mask result of this package contains a token. Its
// functions are safe for concurrent use; an Entry or a StaticRoute is a plain
// value, not safe for concurrent modification.
package routes

import (
	"errors"

	"github.com/ezssh/siem-forwarder/audit"
)

// Bucket is the JetStream key-value bucket of the subscription routes. Its key
// is a SubscriptionId; its value an Entry in JSON.
const Bucket = "EZSSH_SIEM"

// ProviderHuntress is the only provider supported; an empty provider means it.
const ProviderHuntress = "huntress"

// Errors of this package. Each error it returns wraps one of them.
var (
	// ErrInvalid is wrapped by every validation error of an Entry, a
	// StaticRoute or a routes file.
	ErrInvalid = errors.New("routes: invalid route")
	// ErrNoKey is wrapped by the error for a sealed token when no secret
	// key (FORWARDER_SECRET_KEY_FILE) is configured.
	ErrNoKey = errors.New("routes: sealed token but no secret key configured")
	// ErrUnseal is wrapped by the error for a sealed token that does not
	// open with the key: the wrong key, or a value altered after sealing.
	ErrUnseal = errors.New("routes: sealed token does not open with this secret key")
	// ErrBadKey is wrapped by the error for a secret key file that does not
	// hold a 32-byte key.
	ErrBadKey = errors.New("routes: bad secret key")
)

// ValidSubscription reports whether sub can be the key of a route in the
// bucket: a valid subject token (audit.ValidSubjectToken) that is also a
// valid key-value key and consumer name, i.e. made only of ASCII letters,
// digits, '-', '_' and '='.
func ValidSubscription(sub string) bool {
	if !audit.ValidSubjectToken(sub) {
		return false
	}
	for i := 0; i < len(sub); i++ {
		c := sub[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '=':
		default:
			return false
		}
	}
	return true
}

// ConsumerName is the name of the durable consumer of the subscription's
// route: "<prefix>-<sub>", where prefix is the forwarder's consumer name
// (FORWARDER_CONSUMER, default "huntress").
func ConsumerName(prefix, sub string) string {
	return prefix + "-" + sub
}

// Filter is the filter subject of the subscription's route:
// ezssh.audit.<sub>.>.
func Filter(sub string) string {
	return audit.SubscriptionFilter(sub)
}
