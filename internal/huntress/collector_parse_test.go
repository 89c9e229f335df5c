package huntress

import (
	"encoding/json"
	"testing"
)

func TestParseEnvelopes(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		events []string
		bad    int
		code   int
	}{
		{"one", `{"time":1.5,"event":{"a":1}}`, []string{`{"a":1}`}, 0, codeSuccess},
		{"several with space", " {\"event\":\"x\"}\n{\"host\":\"h\",\"event\":[1,{\"b\":\"}\"}],\"x\":null} ", []string{`"x"`, `[1,{"b":"}"}]`}, 0, codeSuccess},
		{"escapes", `{"event":{"s":"a\"b\\"}}`, []string{`{"s":"a\"b\\"}`}, 0, codeSuccess},
		{"numbers and literals", `{"event":{"n":-1.5e+3,"t":true,"f":false,"z":null}}`, []string{`{"n":-1.5e+3,"t":true,"f":false,"z":null}`}, 0, codeSuccess},
		{"empty", ``, nil, 0, codeNoData},
		{"spaces only", " \n ", nil, 0, codeNoData},
		{"not json", `not json`, nil, 0, codeInvalidDataFormat},
		{"second malformed", `{"event":1}{"event":`, nil, 1, codeInvalidDataFormat},
		{"unclosed string", `{"event":"abc}`, nil, 0, codeInvalidDataFormat},
		{"bad literal", `{"event":nul}`, nil, 0, codeInvalidDataFormat},
		{"bad exponent", `{"event":1e}`, nil, 0, codeInvalidDataFormat},
		{"leading zero", `{"event":01}`, nil, 0, codeInvalidDataFormat},
		{"bare dot", `{"event":1.}`, nil, 0, codeInvalidDataFormat},
		{"missing colon", `{"event" 1}`, nil, 0, codeInvalidDataFormat},
		{"trailing comma", `{"event":[1,]}`, nil, 0, codeInvalidDataFormat},
		{"array at top", `[{"event":1}]`, nil, 0, codeInvalidDataFormat},
		{"no event", `{"event":1}{"time":2}`, nil, 1, codeEventRequired},
		{"null event", `{"event":null}`, nil, 0, codeEventRequired},
		{"blank event", `{"event":""}`, nil, 0, codeEventBlank},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, bad, code := parseEnvelopes([]byte(tt.body))
			if code != tt.code || (code != codeSuccess && bad != tt.bad) {
				t.Fatalf("code %d at %d, want %d at %d", code, bad, tt.code, tt.bad)
			}
			if len(events) != len(tt.events) {
				t.Fatalf("%d events, want %d", len(events), len(tt.events))
			}
			for i := range events {
				if string(events[i]) != tt.events[i] {
					t.Errorf("event %d = %s, want %s", i, events[i], tt.events[i])
				}
			}
		})
	}
}

// FuzzParseEnvelopes checks the scanner never accepts what encoding/json
// rejects as a stream of objects, and returns the same event bytes when both
// accept.
func FuzzParseEnvelopes(f *testing.F) {
	for _, s := range []string{`{"event":1e}`, `{"event":-0.5E-3}`, `{"event":{"a":[1,2]}}`, `{"event":"x"}{"event":3}`, `{"a":1}`, `{"event":`, `x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, _, code := parseEnvelopes(body)
		if code != codeSuccess {
			return
		}
		for _, ev := range events {
			if !json.Valid(ev) {
				t.Fatalf("accepted an invalid event %q in %q", ev, body)
			}
		}
	})
}
