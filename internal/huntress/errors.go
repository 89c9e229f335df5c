package huntress

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// Sentinels matched by errors.Is against an *Error of the same class, so
// callers can write errors.Is(err, huntress.ErrRejected).
var (
	ErrRetry         = errors.New("huntress: transient HEC failure")
	ErrMisconfigured = errors.New("huntress: HEC destination misconfigured")
	ErrRejected      = errors.New("huntress: HEC rejected the events")
	ErrTooLarge      = errors.New("huntress: HEC request too large")
)

var (
	_ delivery.Classified   = (*Error)(nil)
	_ delivery.RetryAfterer = (*Error)(nil)
	_ delivery.EventIndexer = (*Error)(nil)
)

// maxExcerpt bounds Error.Excerpt.
const maxExcerpt = 256

// Error is a failed HEC request: a reply other than 2xx, or a network or TLS
// failure (Status 0, Err set). Every text in it has the token scrubbed out.
type Error struct {
	// Class says what the pipeline should do.
	Class delivery.Class
	// Status is the HTTP status, 0 when no reply arrived.
	Status int
	// Code is the HEC "code" of a JSON reply; valid when HasCode.
	Code    int
	HasCode bool
	// InvalidEvent is the HEC "invalid-event-number" (0-based index of the
	// refused event in the request), or -1 when the reply named none or named
	// one outside the request.
	InvalidEvent int
	// RetryAfterDur is the delay the HEC asked for (Retry-After), capped at
	// 10 minutes; 0 when it asked for none.
	RetryAfterDur time.Duration
	// Text is the HEC "text" of a JSON reply, scrubbed.
	Text string
	// Excerpt is at most 256 bytes of the reply body, scrubbed.
	Excerpt string
	// Err is the network or TLS failure, when no reply arrived. Its own
	// text is not scrubbed: print the *Error, which is.
	Err error

	// scrub is applied to Err's text in Error().
	scrub *scrubber
}

// Error describes the failure in one line, never with the token.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("huntress: ")
	if e.Status == 0 {
		b.WriteString("HEC request failed")
		if e.Err != nil {
			b.WriteString(": ")
			b.WriteString(e.scrub.scrub(e.Err.Error()))
			if advice := tlsAdvice(e.Err); advice != "" {
				b.WriteString(": ")
				b.WriteString(advice)
			}
		}
	} else {
		b.WriteString("HEC replied ")
		b.WriteString(strconv.Itoa(e.Status))
		if e.HasCode {
			b.WriteString(" code ")
			b.WriteString(strconv.Itoa(e.Code))
		}
		switch {
		case e.Text != "":
			b.WriteString(": ")
			b.WriteString(strconv.Quote(e.Text))
		case e.Excerpt != "":
			b.WriteString(": ")
			b.WriteString(strconv.Quote(e.Excerpt))
		}
		if e.InvalidEvent >= 0 {
			b.WriteString(" (invalid event ")
			b.WriteString(strconv.Itoa(e.InvalidEvent))
			b.WriteString(")")
		}
	}
	if e.RetryAfterDur > 0 {
		b.WriteString(" (retry after ")
		b.WriteString(e.RetryAfterDur.String())
		b.WriteString(")")
	}
	b.WriteString(" [")
	b.WriteString(e.Class.String())
	b.WriteString("]")
	return b.String()
}

// DeliveryClass implements delivery.Classified.
func (e *Error) DeliveryClass() delivery.Class { return e.Class }

// Reply implements delivery.Replier: the HTTP status (0 when no reply came)
// and the HEC code, if the reply carried one.
func (e *Error) Reply() (status, code int, hasCode bool) { return e.Status, e.Code, e.HasCode }

// RetryAfter implements delivery.RetryAfterer.
func (e *Error) RetryAfter() time.Duration { return e.RetryAfterDur }

// EventIndex implements delivery.EventIndexer.
func (e *Error) EventIndex() (int, bool) { return e.InvalidEvent, e.InvalidEvent >= 0 }

// Unwrap returns the network cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the class sentinels ErrRetry, ErrMisconfigured, ErrRejected and
// ErrTooLarge.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrRetry:
		return e.Class == delivery.Retry
	case ErrMisconfigured:
		return e.Class == delivery.Misconfigured
	case ErrRejected:
		return e.Class == delivery.Rejected
	case ErrTooLarge:
		return e.Class == delivery.TooLarge
	}
	return false
}

const redacted = "[REDACTED]"

// scrubber removes a token, in the forms a server might echo it, from text.
// A nil *scrubber leaves text unchanged.
type scrubber struct {
	forms []string // longest first
}

func newScrubber(token string) *scrubber {
	if token == "" {
		return nil
	}
	cands := []string{
		token,
		base64.StdEncoding.EncodeToString([]byte(token)),
		base64.RawStdEncoding.EncodeToString([]byte(token)),
		base64.URLEncoding.EncodeToString([]byte(token)),
		base64.RawURLEncoding.EncodeToString([]byte(token)),
		url.QueryEscape(token),
	}
	s := &scrubber{}
	for _, f := range cands {
		dup := false
		for _, g := range s.forms {
			dup = dup || f == g
		}
		if !dup {
			s.forms = append(s.forms, f)
		}
	}
	// Longest first so a padded form is replaced whole before its raw prefix.
	for i := 1; i < len(s.forms); i++ {
		for j := i; j > 0 && len(s.forms[j]) > len(s.forms[j-1]); j-- {
			s.forms[j], s.forms[j-1] = s.forms[j-1], s.forms[j]
		}
	}
	return s
}

func (s *scrubber) scrub(text string) string {
	if s == nil {
		return text
	}
	for _, f := range s.forms {
		text = strings.ReplaceAll(text, f, redacted)
	}
	return text
}

// excerpt returns at most maxExcerpt bytes of body, scrubbed. When body was
// cut (by the read limit or here), a tail that could be the start of a token
// is dropped too, so no part of a token survives the cut.
func (s *scrubber) excerpt(body []byte, truncated bool) string {
	text := strings.ToValidUTF8(s.scrub(string(body)), "\uFFFD")
	if len(text) > maxExcerpt {
		n := maxExcerpt
		for n > 0 && !utf8.RuneStart(text[n]) {
			n--
		}
		text = text[:n]
		truncated = true
	}
	if truncated && s != nil {
		text = s.trimTokenPrefix(text)
	}
	return text
}

// trimTokenPrefix removes the longest suffix of text that is a prefix of a
// token form.
func (s *scrubber) trimTokenPrefix(text string) string {
	cut := 0
	for _, f := range s.forms {
		for n := min(len(f)-1, len(text)); n > cut; n-- {
			if strings.HasSuffix(text, f[:n]) {
				cut = n
				break
			}
		}
	}
	return text[:len(text)-cut]
}
