package huntress

import (
	"errors"

	"github.com/ezssh/siem-forwarder/internal/jsonscan"
)

// The collector splits request bodies with a small scanner instead of
// encoding/json: on a two-core machine the collector shares the CPU with the
// forwarder it measures, and decoding every envelope cost it more than the
// forwarder spent producing them.

var errMalformed = errors.New("malformed JSON")

// parseEnvelopes splits body into its envelopes' "event" values, sharing
// body's bytes. On failure it returns the HEC code and the index of the
// offending envelope.
func parseEnvelopes(body []byte) (events [][]byte, bad, code int) {
	i := skipSpace(body, 0)
	for n := 0; i < len(body); n++ {
		ev, end, err := envelopeEvent(body, i)
		if err != nil {
			return nil, n, codeInvalidDataFormat
		}
		switch {
		case ev == nil || string(ev) == "null":
			return nil, n, codeEventRequired
		case string(ev) == `""`:
			return nil, n, codeEventBlank
		}
		events = append(events, ev)
		i = skipSpace(body, end)
	}
	if len(events) == 0 {
		return nil, 0, codeNoData
	}
	return events, 0, codeSuccess
}

// envelopeEvent reads the object at b[i:] and returns its "event" member's
// raw value (nil when absent) and the index after the object.
func envelopeEvent(b []byte, i int) (event []byte, end int, err error) {
	if i >= len(b) || b[i] != '{' {
		return nil, 0, errMalformed
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil, i + 1, nil
	}
	for {
		keyStart := i
		i, err = skipString(b, i)
		if err != nil {
			return nil, 0, err
		}
		key := b[keyStart:i]
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ':' {
			return nil, 0, errMalformed
		}
		i = skipSpace(b, i+1)
		valStart := i
		i, err = skipValue(b, i, 0)
		if err != nil {
			return nil, 0, err
		}
		if string(key) == `"event"` {
			event = b[valStart:i]
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, 0, errMalformed
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return event, i + 1, nil
		default:
			return nil, 0, errMalformed
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i].
func skipString(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, errMalformed
	}
	for i++; i < len(b); i++ {
		for i+8 <= len(b) {
			m := jsonscan.Special(b[i:], false)
			if m != 0 {
				i += jsonscan.First(m)
				break
			}
			i += 8
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			i++
		case c < 0x20:
			return 0, errMalformed
		}
	}
	return 0, errMalformed
}

const maxDepth = 1000

// skipValue returns the index after the JSON value starting at b[i]. It checks
// the structure (brackets, strings, separators), not every literal's grammar.
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) || depth > maxDepth {
		return 0, errMalformed
	}
	var err error
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		closer := byte('}')
		if b[i] == '[' {
			closer = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		for {
			if closer == '}' {
				if i, err = skipString(b, i); err != nil {
					return 0, err
				}
				i = skipSpace(b, i)
				if i >= len(b) || b[i] != ':' {
					return 0, errMalformed
				}
				i = skipSpace(b, i+1)
			}
			if i, err = skipValue(b, i, depth+1); err != nil {
				return 0, err
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, errMalformed
			}
			if b[i] == closer {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, errMalformed
			}
			i = skipSpace(b, i+1)
		}
	default:
		start := i
		for i < len(b) && isLiteralByte(b[i]) {
			i++
		}
		if i == start || !validLiteral(b[start:i]) {
			return 0, errMalformed
		}
		return i, nil
	}
}

func isLiteralByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'E'
}

func validLiteral(l []byte) bool {
	switch string(l) {
	case "true", "false", "null":
		return true
	}
	return validNumber(l)
}

// validNumber follows JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(l []byte) bool {
	i := 0
	if i < len(l) && l[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(l) && l[i] >= '0' && l[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(l) && l[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(l) && l[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(l) && (l[i] == 'e' || l[i] == 'E') {
		i++
		if i < len(l) && (l[i] == '+' || l[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(l)
}
