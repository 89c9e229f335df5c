package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// field indexes of the known fields, in the order MarshalJSON writes them.
const (
	fEventType = iota
	fRequestDate
	fActionPerformed
	fUserPublicKey
	fCertificate
	fRequestorFriendlyName
	fEventId
	fSubscriptionId
	fCriticality
	nFields
)

var fieldNames = [nFields]string{
	"EventType", "RequestDate", "ActionPerformed", "UserPublicKey", "Certificate",
	"RequestorFriendlyName", "EventId", "SubscriptionId", "Criticality",
}

// fieldIndex returns the index of a known field name, or -1. The switch on
// string(b) does not allocate.
func fieldIndex(b []byte) int {
	switch string(b) {
	case "EventType":
		return fEventType
	case "RequestDate":
		return fRequestDate
	case "ActionPerformed":
		return fActionPerformed
	case "UserPublicKey":
		return fUserPublicKey
	case "Certificate":
		return fCertificate
	case "RequestorFriendlyName":
		return fRequestorFriendlyName
	case "EventId":
		return fEventId
	case "SubscriptionId":
		return fSubscriptionId
	case "Criticality":
		return fCriticality
	}
	return -1
}

func (e *Event) fields() [nFields]*string {
	return [nFields]*string{
		&e.EventType, &e.RequestDate, &e.ActionPerformed, &e.UserPublicKey, &e.Certificate,
		&e.RequestorFriendlyName, &e.EventId, &e.SubscriptionId, &e.Criticality,
	}
}

// MarshalJSON writes the known fields in a fixed order (Criticality only when
// set), then the Extra fields sorted by name with their values byte for byte.
// It fails if an Extra key is a known field name or an Extra value is not
// well-formed JSON. It does not validate the event; see Validate.
//
// Call it directly (the Publisher does) for the byte-identical form:
// json.Marshal re-compacts whatever a MarshalJSON method returns and escapes
// <, > and &, which changes the bytes (not the meaning) of Extra values.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 2048))
}

// AppendJSON appends the encoding MarshalJSON returns to b, so a hot path can
// reuse or size its buffer.
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	for i, p := range e.fields() {
		if i == fCriticality && *p == "" {
			continue
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, fieldNames[i])
		b = append(b, ':')
		b = appendString(b, *p)
	}
	if len(e.Extra) > 0 {
		keys := make([]string, 0, len(e.Extra))
		for k := range e.Extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if fieldIndex([]byte(k)) >= 0 {
				return nil, fmt.Errorf("audit: Extra[%q] shadows a known field", k)
			}
			v := e.Extra[k]
			if !validJSONValue(v) {
				return nil, fmt.Errorf("audit: Extra[%q] is not well-formed JSON", k)
			}
			b = append(b, ',')
			b = appendString(b, k)
			b = append(b, ':')
			b = append(b, v...)
		}
	}
	return append(b, '}'), nil
}

// UnmarshalJSON decodes a JSON object. Known fields are matched by exact
// (case-sensitive) name and must be JSON strings; every other field goes to
// Extra unchanged. It does not validate the event; see Validate.
func (e *Event) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("audit: decode event: %w", err)
	}
	if m == nil {
		return errors.New("audit: decode event: null is not an object")
	}
	*e = Event{}
	ptrs := e.fields()
	for k, v := range m {
		i := fieldIndex([]byte(k))
		if i < 0 {
			if e.Extra == nil {
				e.Extra = make(map[string]json.RawMessage)
			}
			e.Extra[k] = v
			continue
		}
		if len(v) == 0 || v[0] != '"' {
			return fieldError(k, "not a string")
		}
		if err := json.Unmarshal(v, ptrs[i]); err != nil {
			return fmt.Errorf("audit: decode %s: %w", k, err)
		}
	}
	return nil
}

// appendString appends s as a JSON string. Unlike encoding/json it does not
// escape <, > and &; invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			// Valid JSON, but not valid JavaScript: escape as encoding/json does.
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
