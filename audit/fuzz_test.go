package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/ezssh/siem-forwarder/audit"
)

// fuzzSeeds are the sample bodies of the table tests that are small enough
// to mutate, and a few shapes they lack.
func fuzzSeeds() [][]byte {
	var out [][]byte
	for _, tc := range bodyCases() {
		if len(tc.body) < 4096 {
			out = append(out, []byte(tc.body))
		}
	}
	for _, s := range []string{
		with("SubscriptionId", `"\u00e9t\u00e9-\u4e2d"`),
		with("SubscriptionId", `"a\u2028b"`),
		with("SubscriptionId", `"`+strings.Repeat("é", 128)+`"`),
		with("EventType", `"EZSSH___"`),
		with("RequestDate", `"2024-02-29T23:59:59.999999999-23:59"`),
		with("RequestDate", `"2025-02-29T00:00:00Z"`),
		with("Extra", `" \u0000 \ud800 "`),
		with("EventId", `null`),
		`{"EventId":"a","EventId":1,"EventType":"EZSSH_SSH","SubscriptionId":"s","RequestDate":"2025-01-02T03:04:05Z"}`,
		`{"Event\u0054ype":"EZSSH_SSH","EventId":"a","SubscriptionId":"s","RequestDate":"2025-01-02T03:04:05Z"}`,
	} {
		out = append(out, []byte(s))
	}
	return out
}

// FuzzInspect checks what Inspect promises about any body: it never panics;
// it fails only with a *ValidationError; a body it accepts is valid UTF-8
// JSON whose subject is a valid four-token NATS subject; and it agrees with
// decoding the body into an Event and calling Validate, and with the
// published JSON Schema, on every body within the limits the schema cannot
// state (UTF-8, 1 MiB).
func FuzzInspect(f *testing.F) {
	for _, b := range fuzzSeeds() {
		f.Add(b)
	}
	sch := compileSchema(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fields, err := audit.Inspect(body)
		if err != nil {
			var ve *audit.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, audit.ErrInvalid) {
				t.Fatalf("Inspect error %v (%T) is not a *ValidationError", err, err)
			}
		} else {
			if !json.Valid(body) || !utf8.Valid(body) {
				t.Fatalf("Inspect accepted a body that is not UTF-8 JSON: %q", body)
			}
			checkSubject(t, fields.Subject())
			if fields.EventId == "" {
				t.Errorf("Inspect accepted an empty EventId: %q", body)
			}
		}
		if len(body) > audit.MaxEventSize || !utf8.Valid(body) {
			return
		}

		var e audit.Event
		decErr := json.Unmarshal(body, &e)
		valErr := decErr
		if decErr == nil {
			valErr = e.Validate()
		}
		if (err == nil) != (valErr == nil) {
			t.Fatalf("Inspect: %v; decode and Validate: %v\nbody %q", err, valErr, body)
		}
		if err == nil {
			at, terr := e.RequestTime()
			if e.EventId != fields.EventId || e.EventType != fields.EventType || e.SubscriptionId != fields.SubscriptionId ||
				terr != nil || !at.Equal(fields.RequestDate) || e.Subject() != fields.Subject() {
				t.Errorf("Inspect %+v and decode %+v disagree", fields, e)
			}
		}

		var schemaErr error
		if doc, derr := jsonschema.UnmarshalJSON(bytes.NewReader(body)); derr != nil {
			schemaErr = derr
		} else {
			schemaErr = sch.Validate(doc)
		}
		if (err == nil) != (schemaErr == nil) {
			t.Fatalf("Inspect: %v; JSON Schema: %v\nbody %q", err, schemaErr, body)
		}
	})
}

// checkSubject fails unless s is ezssh.audit.<token>.<token> with tokens a
// NATS subject allows and no wildcard.
func checkSubject(t *testing.T, s string) {
	t.Helper()
	tokens := strings.Split(s, ".")
	if len(tokens) != 4 || tokens[0] != "ezssh" || tokens[1] != "audit" {
		t.Fatalf("subject %q is not ezssh.audit.<subscription>.<kind>", s)
	}
	for _, tok := range tokens[2:] {
		if !audit.ValidSubjectToken(tok) || tok == "*" || tok == ">" {
			t.Fatalf("subject %q has an invalid token %q", s, tok)
		}
	}
	if !utf8.ValidString(s) || strings.ContainsAny(s, " \t\r\n*>") {
		t.Fatalf("subject %q is not a valid NATS subject", s)
	}
}

// FuzzEventRoundTrip checks that any body that decodes into an Event
// re-encodes, keeping its unknown fields byte for byte: decoding what
// MarshalJSON wrote gives the same Event, encoding is deterministic, and a
// body Inspect accepted is still accepted, with the same fields, after the
// round trip.
func FuzzEventRoundTrip(f *testing.F) {
	for _, b := range fuzzSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var e audit.Event
		if err := e.UnmarshalJSON(body); err != nil {
			return
		}
		out, err := e.MarshalJSON()
		if err != nil {
			if utf8.Valid(body) {
				t.Fatalf("a decoded event does not re-encode: %v\nbody %q", err, body)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("MarshalJSON wrote invalid JSON %q from %q", out, body)
		}
		var again audit.Event
		if err := again.UnmarshalJSON(out); err != nil {
			t.Fatalf("re-decode %q: %v", out, err)
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("round trip changed the event:\n was %#v\n now %#v\nbody %q\n out %q", e, again, body, out)
		}
		if out2, err := again.MarshalJSON(); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not stable: %q then %q (%v)", out, out2, err)
		}
		if f1, err := audit.Inspect(body); err == nil && len(out) <= audit.MaxEventSize {
			f2, err := audit.Inspect(out)
			if err != nil || f1.EventId != f2.EventId || f1.Subject() != f2.Subject() || !f1.RequestDate.Equal(f2.RequestDate) {
				t.Fatalf("Inspect(body) = %+v, Inspect(round trip) = %+v, %v", f1, f2, err)
			}
		}
	})
}
