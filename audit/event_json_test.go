package audit_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/ezssh/siem-forwarder/audit"
)

func TestUnknownFieldsRoundTrip(t *testing.T) {
	extras := map[string]string{
		"SourceIp": `"203.0.113.7"`,
		"Nested":   `{ "b": [1, 2.50, {"c": null}],  "a": "\u00e9\n" }`,
		"Number":   `1.0000000000000000001e+400`,
		"Flag":     `true`,
		"Empty":    `[ ]`,
	}
	in := `{"EventType":"EZSSH_SSH","RequestDate":"2025-03-14T09:26:53.589Z","EventId":"e1","SubscriptionId":"acme"`
	for k, v := range extras {
		in += `,"` + k + `":` + v
	}
	in += "}"

	var e audit.Event
	if err := json.Unmarshal([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	if e.EventType != "EZSSH_SSH" || e.EventId != "e1" || e.SubscriptionId != "acme" {
		t.Fatalf("known fields not decoded: %+v", e)
	}
	for k, v := range extras {
		if got := string(e.Extra[k]); got != v {
			t.Errorf("decoded Extra[%s] = %s, want %s", k, got, v)
		}
	}
	out, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var again audit.Event
	if err := json.Unmarshal(out, &again); err != nil {
		t.Fatalf("re-decode %s: %v", out, err)
	}
	for k, v := range extras {
		if got := string(again.Extra[k]); got != v {
			t.Errorf("Extra[%s] = %s, want %s byte for byte", k, got, v)
		}
		if !bytes.Contains(out, []byte(`"`+k+`":`+v)) {
			t.Errorf("encoded body lacks %s:%s byte for byte: %s", k, v, out)
		}
	}
	if _, err := audit.Inspect(out); err != nil {
		t.Errorf("re-encoded event does not pass Inspect: %v", err)
	}
}

func TestMarshalEscapes(t *testing.T) {
	e := audit.Event{RequestorFriendlyName: "a\"b\\c\n<&>\x01\u2028\xff"}
	out, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back audit.Event
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if want := "a\"b\\c\n<&>\x01\u2028\uFFFD"; back.RequestorFriendlyName != want {
		t.Errorf("round trip = %q, want %q", back.RequestorFriendlyName, want)
	}
	if !bytes.Contains(out, []byte("<&>")) {
		t.Errorf("HTML characters escaped needlessly: %s", out)
	}
}

func TestMarshalRejectsBadExtra(t *testing.T) {
	for name, extra := range map[string]map[string]json.RawMessage{
		"shadows known field": {"EventId": json.RawMessage(`"x"`)},
		"not JSON":            {"X": json.RawMessage(`{"a":`)},
		"empty":               {"X": json.RawMessage(``)},
	} {
		t.Run(name, func(t *testing.T) {
			if out, err := (audit.Event{Extra: extra}).MarshalJSON(); err == nil {
				t.Errorf("Marshal succeeded: %s", out)
			}
		})
	}
}

func TestUnmarshalKnownFieldMustBeString(t *testing.T) {
	for _, in := range []string{
		`{"EventId":1}`,
		`{"Certificate":null}`,
		`{"SubscriptionId":["a"]}`,
	} {
		var e audit.Event
		if err := json.Unmarshal([]byte(in), &e); err == nil {
			t.Errorf("Unmarshal(%s) succeeded: %+v", in, e)
		}
	}
	var e audit.Event
	if err := json.Unmarshal([]byte(`{"eventid":"x"}`), &e); err != nil || e.EventId != "" || string(e.Extra["eventid"]) != `"x"` {
		t.Errorf("names must match exactly: %+v, %v", e, err)
	}
}
