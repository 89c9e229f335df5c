package audit

import (
	"encoding/json"
	"strings"
	"time"
)

// Fields are the parts of a body the forwarder needs to route and index it.
type Fields struct {
	EventId        string
	EventType      string
	SubscriptionId string
	RequestDate    time.Time
}

// Subject returns the subject the event belongs on.
func (f *Fields) Subject() string {
	return Subject(f.SubscriptionId, KindOf(f.EventType))
}

// span locates a top-level string value of a known field in the body.
type span struct {
	start, end int // content, without the quotes
	present    bool
	notString  bool
	escaped    bool
}

// Inspect checks a raw body against the wire contract and extracts the fields
// the forwarder needs, for the hot path: one pass over the bytes, no map, no
// decoding into interface{}, at most one allocation when the body is valid.
//
// It checks, in order: size (ErrTooLarge), UTF-8 (ErrNotUTF8), JSON syntax
// anywhere in the body (ErrNotJSON), a top-level object (ErrNotObject), that
// every known field present is a string, then the field rules of Validate.
// Every error is a *ValidationError. Inspect is safe for concurrent use and
// does not retain body.
func Inspect(body []byte) (Fields, error) {
	if len(body) > MaxEventSize {
		return Fields{}, bodyError(ErrTooLarge, "larger than %d bytes (%d)", MaxEventSize, len(body))
	}
	var spans [nFields]span
	if err := scanTop(body, &spans); err != nil {
		return Fields{}, err
	}
	for i := range spans {
		if spans[i].notString {
			return Fields{}, fieldError(fieldNames[i], "not a string")
		}
	}
	if spans[fEventId].present && spans[fEventId].start == spans[fEventId].end {
		return Fields{}, fieldError("EventId", "empty")
	}
	v := values(body, &spans)
	t, err := checkFields(v[0], v[1], v[2], v[3], v[4])
	if err != nil {
		return Fields{}, err
	}
	return Fields{EventId: v[0], EventType: v[1], SubscriptionId: v[2], RequestDate: t}, nil
}

// values returns EventId, EventType, SubscriptionId, RequestDate and
// Criticality. The unescaped ones share one allocation.
func values(body []byte, spans *[nFields]span) [5]string {
	order := [5]int{fEventId, fEventType, fSubscriptionId, fRequestDate, fCriticality}
	n := 0
	for _, f := range order {
		if sp := spans[f]; !sp.escaped {
			n += sp.end - sp.start
		}
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, f := range order {
		if sp := spans[f]; !sp.escaped {
			sb.Write(body[sp.start:sp.end])
		}
	}
	all := sb.String()
	var out [5]string
	off := 0
	for k, f := range order {
		sp := spans[f]
		if sp.escaped {
			out[k] = unescape(body[sp.start-1 : sp.end+1])
			continue
		}
		out[k] = all[off : off+sp.end-sp.start]
		off += sp.end - sp.start
	}
	return out
}

// unescape decodes a quoted JSON string the scanner already validated.
func unescape(quoted []byte) string {
	var s string
	_ = json.Unmarshal(quoted, &s)
	return s
}

// scanTop scans the whole body and records the top-level known string fields.
// Later duplicates win, as with encoding/json.
func scanTop(body []byte, spans *[nFields]span) error {
	s := scanner{b: body}
	s.ws()
	if s.i >= len(body) {
		return bodyError(ErrNotJSON, "not JSON: empty body")
	}
	if body[s.i] != '{' {
		if err := s.value(); err != nil {
			return err
		}
		if err := s.end(); err != nil {
			return err
		}
		return bodyError(ErrNotObject, "not a JSON object")
	}
	s.depth = 1
	s.i++
	s.ws()
	if s.i < len(body) && body[s.i] == '}' {
		s.i++
		return s.end()
	}
	for {
		if s.i >= len(body) || body[s.i] != '"' {
			return s.syntaxErr("looking for a field name")
		}
		kstart := s.i
		kesc, err := s.str()
		if err != nil {
			return err
		}
		var f int
		if kesc {
			f = fieldIndex([]byte(unescape(body[kstart:s.i])))
		} else {
			f = fieldIndex(body[kstart+1 : s.i-1])
		}
		if err := s.colon(); err != nil {
			return err
		}
		if f >= 0 && s.i < len(body) && body[s.i] == '"' {
			vstart := s.i
			esc, err := s.str()
			if err != nil {
				return err
			}
			spans[f] = span{start: vstart + 1, end: s.i - 1, present: true, escaped: esc}
		} else {
			if f >= 0 {
				spans[f] = span{present: true, notString: true}
			}
			if err := s.value(); err != nil {
				return err
			}
		}
		more, err := s.next('}')
		if err != nil {
			return err
		}
		if !more {
			return s.end()
		}
	}
}
