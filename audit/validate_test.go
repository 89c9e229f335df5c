package audit_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
)

// TestInspectAndValidateAgree runs every sample body through Inspect and, when
// it decodes, through Event.Validate; both must blame the same field.
func TestInspectAndValidateAgree(t *testing.T) {
	for _, tc := range bodyCases() {
		t.Run(tc.name, func(t *testing.T) {
			f, err := audit.Inspect([]byte(tc.body))
			checkVerdict(t, "Inspect", tc, err)
			if tc.valid && (f.EventId == "" || f.EventType == "" || f.SubscriptionId == "" || f.RequestDate.IsZero()) {
				t.Errorf("Inspect fields incomplete: %+v", f)
			}
			if tc.sentinel != nil {
				return // a body-level failure: nothing for Validate to see
			}
			var e audit.Event
			if json.Unmarshal([]byte(tc.body), &e) != nil {
				if tc.valid {
					t.Fatal("a valid body does not decode")
				}
				return
			}
			checkVerdict(t, "Validate", tc, e.Validate())
			if tc.valid && (e.EventId != f.EventId || e.EventType != f.EventType || e.SubscriptionId != f.SubscriptionId) {
				t.Errorf("Inspect %+v and decode %+v disagree", f, e)
			}
		})
	}
}

func checkVerdict(t *testing.T, who string, tc bodyCase, err error) {
	t.Helper()
	if tc.valid {
		if err != nil {
			t.Errorf("%s: %v, want valid", who, err)
		}
		return
	}
	var ve *audit.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("%s: %v, want a *ValidationError", who, err)
	}
	if !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("%s: %v does not match ErrInvalid", who, err)
	}
	if ve.Field != tc.field {
		t.Errorf("%s: field %q (%v), want %q", who, ve.Field, err, tc.field)
	}
	if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
		t.Errorf("%s: %v, want %v", who, err, tc.sentinel)
	}
	if tc.field != "" && !strings.HasPrefix(err.Error(), "audit: "+tc.field+": ") {
		t.Errorf("%s: message %q does not name the field", who, err)
	}
	if ve.Reason == "" {
		t.Errorf("%s: empty Reason", who)
	}
}

func TestValidationErrorMessage(t *testing.T) {
	_, err := audit.Inspect([]byte(with("SubscriptionId", "")))
	if got := err.Error(); got != "audit: SubscriptionId: missing" {
		t.Errorf("Error() = %q", got)
	}
}

func TestInspectFields(t *testing.T) {
	f, err := audit.Inspect([]byte(with("SubscriptionId", `"sub-\u0041"`)))
	if err != nil {
		t.Fatal(err)
	}
	want := audit.Fields{
		EventId:        "01939f5e-7c1a-7b3e-9f0a-2d4c6e8a1b3c",
		EventType:      "EZSSH_SSH",
		SubscriptionId: "sub-A",
		RequestDate:    time.Date(2025, 3, 14, 9, 26, 53, 589e6, time.UTC),
	}
	if f != want {
		t.Errorf("Inspect = %+v, want %+v", f, want)
	}
	if got := f.Subject(); got != "ezssh.audit.sub-A.ssh" {
		t.Errorf("Subject = %q", got)
	}
}

func TestInspectDeepNesting(t *testing.T) {
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	_, err := audit.Inspect([]byte(with("Extra", deep)))
	if !errors.Is(err, audit.ErrNotJSON) {
		t.Errorf("Inspect = %v, want ErrNotJSON", err)
	}
	ok := strings.Repeat("[", 500) + strings.Repeat("]", 500)
	if _, err := audit.Inspect([]byte(with("Extra", ok))); err != nil {
		t.Errorf("Inspect(500 levels) = %v", err)
	}
}

// FuzzInspectSyntax checks the scanner against encoding/json: a body is
// syntactically acceptable to Inspect exactly when json.Valid accepts it.
func FuzzInspectSyntax(f *testing.F) {
	for _, tc := range bodyCases() {
		if len(tc.body) < 4096 {
			f.Add([]byte(tc.body))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := audit.Inspect(body)
		syntaxBad := errors.Is(err, audit.ErrNotJSON) || errors.Is(err, audit.ErrNotUTF8)
		if want := json.Valid(body) && utf8Valid(body); want == syntaxBad {
			t.Errorf("Inspect(%q) = %v, json.Valid && utf8.Valid = %v", body, err, want)
		}
	})
}
