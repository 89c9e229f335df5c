package audit_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/ezssh/siem-forwarder/audit"
)

func compileSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(audit.Schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	const url = "https://github.com/ezssh/siem-forwarder/audit/event.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// TestSchemaAgreesWithInspect checks that the published JSON Schema and the
// Go rules accept and reject the same bodies.
func TestSchemaAgreesWithInspect(t *testing.T) {
	sch := compileSchema(t)
	n := 0
	for _, tc := range bodyCases() {
		if tc.goOnly {
			continue
		}
		n++
		t.Run(tc.name, func(t *testing.T) {
			_, inspectErr := audit.Inspect([]byte(tc.body))
			var schemaErr error
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(tc.body)))
			if err != nil {
				schemaErr = err
			} else {
				schemaErr = sch.Validate(doc)
			}
			if (inspectErr == nil) != (schemaErr == nil) {
				t.Errorf("Inspect: %v; schema: %v", inspectErr, schemaErr)
			}
			if (inspectErr == nil) != tc.valid {
				t.Errorf("Inspect: %v, want valid=%v", inspectErr, tc.valid)
			}
		})
	}
	if n < 15 {
		t.Fatalf("only %d sample bodies", n)
	}
}

// TestSchemaDocumentsEveryField keeps the schema in step with Event.
func TestSchemaDocumentsEveryField(t *testing.T) {
	var s struct {
		Required             []string
		AdditionalProperties bool
		Properties           map[string]struct{ Description string }
	}
	if err := json.Unmarshal(audit.Schema, &s); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"EventType", "RequestDate", "ActionPerformed", "UserPublicKey", "Certificate",
		"RequestorFriendlyName", "EventId", "SubscriptionId", "Criticality"} {
		if s.Properties[name].Description == "" {
			t.Errorf("%s is not described", name)
		}
	}
	if len(s.Properties) != 9 {
		t.Errorf("schema has %d properties, Event has 9", len(s.Properties))
	}
	if !s.AdditionalProperties {
		t.Error("additionalProperties must be allowed")
	}
	if want := []string{"EventId", "EventType", "SubscriptionId", "RequestDate"}; !equal(s.Required, want) {
		t.Errorf("required = %v, want %v", s.Required, want)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
