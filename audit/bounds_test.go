package audit_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/ezssh/siem-forwarder/audit"
)

// A body of exactly MaxEventSize bytes is accepted; one byte more is not.
func TestInspectSizeLimit(t *testing.T) {
	pad := func(size int) []byte {
		b := with("Padding", `""`)
		return []byte(strings.Replace(b, `"Padding":""`, `"Padding":"`+strings.Repeat("x", size-len(b))+`"`, 1))
	}
	if b := pad(audit.MaxEventSize); len(b) != audit.MaxEventSize {
		t.Fatalf("built %d bytes", len(b))
	} else if _, err := audit.Inspect(b); err != nil {
		t.Errorf("Inspect(%d bytes) = %v", len(b), err)
	}
	for _, size := range []int{audit.MaxEventSize + 1, 8 * audit.MaxEventSize} {
		if _, err := audit.Inspect(pad(size)); !errors.Is(err, audit.ErrTooLarge) || !errors.Is(err, audit.ErrInvalid) {
			t.Errorf("Inspect(%d bytes) = %v, want ErrTooLarge", size, err)
		}
	}
}

// The trace headers a publisher sends are read only up to a bound: an
// oversize traceparent is ignored and an oversize tracestate dropped.
func TestSpanContextOfBoundsHeaders(t *testing.T) {
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
		parent  = "00-" + traceID + "-" + spanID + "-01"
	)
	for _, tc := range []struct {
		name        string
		header      nats.Header
		valid       bool
		stateMember string // a member the trace state keeps, "" for none
	}{
		{"w3c", nats.Header{"traceparent": {parent}, "tracestate": {"ezssh=abc,other=1"}}, true, "ezssh"},
		{"other case", nats.Header{"Traceparent": {parent}}, true, ""},
		{"future version with fields", nats.Header{"traceparent": {"01-" + traceID + "-" + spanID + "-01-extra"}}, true, ""},
		{"oversize traceparent", nats.Header{"traceparent": {"01-" + traceID + "-" + spanID + "-01-" + strings.Repeat("x", 1<<20)}}, false, ""},
		{"oversize tracestate", nats.Header{"traceparent": {parent}, "tracestate": {strings.Repeat(",", 1<<20) + "ezssh=abc"}}, true, ""},
		{"tracestate at the bound", nats.Header{"traceparent": {parent}, "tracestate": {strings.Repeat(",", 1024-len("ezssh=abc")) + "ezssh=abc"}}, true, "ezssh"},
		{"none", nats.Header{"Nats-Msg-Id": {"x"}}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := audit.SpanContextOf(tc.header)
			if sc.IsValid() != tc.valid {
				t.Fatalf("valid = %v, want %v", sc.IsValid(), tc.valid)
			}
			if tc.valid && (sc.TraceID().String() != traceID || sc.SpanID().String() != spanID) {
				t.Errorf("span context %v", sc)
			}
			state := sc.TraceState()
			if tc.stateMember == "" && state.Len() != 0 || tc.stateMember != "" && state.Get(tc.stateMember) == "" {
				t.Errorf("trace state %q, want member %q", state.String(), tc.stateMember)
			}
		})
	}
}
