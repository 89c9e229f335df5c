package audit

import "time"

// Validate checks the event against the rules of the wire contract, the same
// rules Inspect applies to a body and the JSON Schema documents:
//
//   - EventId: present (any string; a UUID, v7 preferred, is recommended);
//   - EventType: matches ^EZSSH_[A-Z_]+$;
//   - SubscriptionId: a valid subject token (ValidSubjectToken);
//   - RequestDate: RFC 3339 (time.RFC3339Nano);
//   - Criticality: empty, High, Medium or Low.
//
// The first failure is returned as a *ValidationError naming the field. The
// size limit is checked by the Publisher once the event is encoded.
func (e *Event) Validate() error {
	_, err := checkFields(e.EventId, e.EventType, e.SubscriptionId, e.RequestDate, e.Criticality)
	return err
}

// checkFields applies the field rules in a fixed order, so Validate and
// Inspect report the same field first, and returns the parsed RequestDate.
func checkFields(eventID, eventType, subscriptionID, requestDate, criticality string) (time.Time, error) {
	if eventID == "" {
		return time.Time{}, fieldError("EventId", "missing")
	}
	if eventType == "" {
		return time.Time{}, fieldError("EventType", "missing")
	}
	if !validEventType(eventType) {
		return time.Time{}, fieldError("EventType", "does not match ^EZSSH_[A-Z_]+$")
	}
	if subscriptionID == "" {
		return time.Time{}, fieldError("SubscriptionId", "missing")
	}
	if !ValidSubjectToken(subscriptionID) {
		return time.Time{}, fieldError("SubscriptionId", "not a valid subject token (1-128 characters, no '.', '*', '>', space or control character)")
	}
	if requestDate == "" {
		return time.Time{}, fieldError("RequestDate", "missing")
	}
	t, err := time.Parse(time.RFC3339Nano, requestDate)
	if err != nil || !rfc3339Shape(requestDate) {
		return time.Time{}, fieldError("RequestDate", "not RFC 3339")
	}
	switch criticality {
	case "", CriticalityHigh, CriticalityMedium, CriticalityLow:
	default:
		return time.Time{}, fieldError("Criticality", "not High, Medium or Low")
	}
	return t, nil
}

// validEventType reports whether t matches ^EZSSH_[A-Z_]+$.
func validEventType(t string) bool {
	if len(t) <= len(eventTypePrefix) || t[:len(eventTypePrefix)] != eventTypePrefix {
		return false
	}
	for i := len(eventTypePrefix); i < len(t); i++ {
		if c := t[i]; (c < 'A' || c > 'Z') && c != '_' {
			return false
		}
	}
	return true
}

// rfc3339Shape reports whether s has the strict RFC 3339 shape the schema's
// pattern states, ^\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$:
// time.Parse alone also accepts a comma before the fraction and offsets such
// as +24:00. Ranges of the date are left to time.Parse.
func rfc3339Shape(s string) bool {
	const base = "0000-00-00T00:00:00"
	if len(s) < len(base)+1 {
		return false
	}
	for i := 0; i < len(base); i++ {
		if base[i] == '0' {
			if !isDigit(s[i]) {
				return false
			}
		} else if s[i] != base[i] {
			return false
		}
	}
	if !clock(s[11:13], s[14:16]) || s[17] > '5' {
		return false
	}
	rest := s[len(base):]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 {
			return false
		}
		rest = rest[n:]
	}
	if rest == "Z" {
		return true
	}
	return len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') &&
		isDigit(rest[1]) && isDigit(rest[2]) && rest[3] == ':' && isDigit(rest[4]) && isDigit(rest[5]) &&
		clock(rest[1:3], rest[4:6])
}

// clock reports whether two-digit hh and mm are 00-23 and 00-59.
func clock(hh, mm string) bool {
	return (hh[0] < '2' || (hh[0] == '2' && hh[1] <= '3')) && mm[0] <= '5'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
