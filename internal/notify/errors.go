package notify

import "errors"

// Sentinel errors. Test with errors.Is.
var (
	// ErrNotFound: Store.Get found no value for the key.
	ErrNotFound = errors.New("notify: key not found")
	// ErrExists: Store.Create found the key already there.
	ErrExists = errors.New("notify: key already exists")
	// ErrConflict: Store.Update's expected revision is not the latest.
	ErrConflict = errors.New("notify: revision conflict")
	// ErrInvalidAlert: Handle was given an alert it cannot act on.
	ErrInvalidAlert = errors.New("notify: invalid alert")
	// ErrPermanent wraps a mail failure that retrying cannot fix (the
	// server refused the sender, a recipient or our credentials).
	ErrPermanent = errors.New("notify: mail refused")
	// ErrInsecure: the mail would be sent, or the password given, in clear
	// text to a host that is not loopback.
	ErrInsecure = errors.New("notify: refusing unencrypted SMTP")
)
