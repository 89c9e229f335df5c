package notify

import "context"

// Message is one plain-text email. The Mailer adds From, Date and the MIME
// headers.
type Message struct {
	// ID is unique to this email and the same on every attempt to send it;
	// the Mailer builds the Message-ID from it, so a mail client can tell a
	// repeated delivery from a new email.
	ID      string
	To      []string
	Subject string
	Body    string
}

// Mailer sends an email. Implementations must be safe for concurrent use.
// An error wrapping ErrPermanent means retrying cannot help.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}
