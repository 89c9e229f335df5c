package audit

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	// StreamName is the JetStream stream that holds every audit event.
	StreamName = "EZSSH_AUDIT"
	// SubjectPrefix is the first two tokens of every audit subject.
	SubjectPrefix = "ezssh.audit"
	// SubjectAll matches every audit subject; it is the stream's subject.
	SubjectAll = SubjectPrefix + ".>"

	// eventTypePrefix starts every EventType.
	eventTypePrefix = "EZSSH_"
	// maxTokenLen bounds a SubscriptionId, in characters (code points).
	maxTokenLen = 128
)

// Subject returns the subject an event of the subscription and kind is
// published on: ezssh.audit.<subscriptionID>.<kind>. It does not check its
// arguments; see ValidSubjectToken.
func Subject(subscriptionID, kind string) string {
	return SubjectPrefix + "." + subscriptionID + "." + kind
}

// KindOf returns the subject kind of an event type: the type without its
// EZSSH_ prefix, lower-cased (EZSSH_SSH → "ssh", EZSSH_FOO_BAR → "foo_bar").
func KindOf(eventType string) string {
	return strings.ToLower(strings.TrimPrefix(eventType, eventTypePrefix))
}

// SubscriptionFilter returns the filter subject matching every event of one
// subscription: ezssh.audit.<sub>.>.
func SubscriptionFilter(sub string) string {
	return SubjectPrefix + "." + sub + ".>"
}

// Subject returns the subject e is published on.
func (e *Event) Subject() string {
	return Subject(e.SubscriptionId, KindOf(e.EventType))
}

// ValidSubjectToken reports whether s can be one token of a NATS subject: valid
// UTF-8, 1 to 128 characters, and none of '.', '*', '>', white space (Unicode
// category Z) or control characters (category Cc).
func ValidSubjectToken(s string) bool {
	if s == "" || len(s) > 4*maxTokenLen {
		return false
	}
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' {
				return false
			}
			i++
			n++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if unicode.In(r, unicode.Z, unicode.Cc) {
			return false
		}
		i += size
		n++
	}
	return n <= maxTokenLen
}
