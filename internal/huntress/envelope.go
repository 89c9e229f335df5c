package huntress

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// envelope holds the parts of a HEC envelope that are the same for every
// event, JSON-escaped once:
//
//	{"time":<t>,"host":"…","source":"…","sourcetype":"…"[,"index":"…"],"event":<body>}
type envelope struct {
	middle []byte // from `,"host":` through `"event":`
}

const envelopePrefix = `{"time":`

func newEnvelope(host, source, sourceType, index string) envelope {
	var m []byte
	m = append(m, `,"host":`...)
	m = appendJSONString(m, host)
	m = append(m, `,"source":`...)
	m = appendJSONString(m, source)
	m = append(m, `,"sourcetype":`...)
	m = appendJSONString(m, sourceType)
	if index != "" {
		m = append(m, `,"index":`...)
		m = appendJSONString(m, index)
	}
	m = append(m, `,"event":`...)
	return envelope{middle: m}
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

// maxEpochLen is the longest time appendEpoch writes: "-62135596800.000".
const maxEpochLen = 16

// size is an upper bound of the bytes append adds for body.
func (e *envelope) size(body []byte) int {
	return len(envelopePrefix) + maxEpochLen + len(e.middle) + len(body) + 1
}

// append appends ev's envelope to dst: the event body is copied byte for byte,
// never decoded. A zero ev.Time means now.
func (e *envelope) append(dst []byte, ev delivery.Event) []byte {
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	dst = append(dst, envelopePrefix...)
	dst = appendEpoch(dst, t)
	dst = append(dst, e.middle...)
	dst = append(dst, ev.Body...)
	return append(dst, '}')
}

// appendEpoch appends t as Unix seconds with a millisecond fraction
// ("1732680000.123"), the form HEC documents for "time". Before 1970 the
// sign covers the fraction too: 1.5 s before the epoch is "-1.500".
func appendEpoch(dst []byte, t time.Time) []byte {
	ms := t.UnixMilli() // times are years 1–9999: no overflow on negation
	if ms < 0 {
		dst = append(dst, '-')
		ms = -ms
	}
	sec, frac := ms/1000, ms%1000
	dst = strconv.AppendInt(dst, sec, 10)
	return append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}
