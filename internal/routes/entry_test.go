package routes

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/huntress"
)

const testToken = "0b9f2c6e-1d2a-4c4f-9a77-53c1f0e8d2ab"

func validEntry() *Entry {
	return &Entry{
		Enabled:     true,
		Provider:    ProviderHuntress,
		HECURL:      "https://hec.huntress.io/services/collector",
		HECToken:    testToken,
		AuthScheme:  "Splunk",
		AdminEmails: []string{"admin@example.com", "Ada <ada@example.com>"},
		UpdatedAt:   time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
	}
}

func TestEntryKeepsUnknownFields(t *testing.T) {
	in := `{"enabled":false,"provider":"huntress","hec_url":"https://hec.huntress.io/services/collector",
	"hec_token":"` + testToken + `","auth_scheme":"Bearer","admin_emails":["a@example.com"],
	"updated_at":"2026-01-02T15:04:05Z","zeta":{"nested":[1,2,{"x":null}]},"Alpha":12.50,"portal_note":"<b>&</b>"}`
	e, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if e.Enabled || e.AuthScheme != "Bearer" || e.HECToken != testToken || !e.UpdatedAt.Equal(time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)) {
		t.Fatalf("decoded %+v", *e)
	}
	if got := e.Extra(); strings.Join(got, ",") != "Alpha,portal_note,zeta" {
		t.Fatalf("Extra = %v", got)
	}
	e.AdminEmails = append(e.AdminEmails, "b@example.com")
	out, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"enabled":false,"provider":"huntress","hec_url":"https://hec.huntress.io/services/collector","hec_token":"` + testToken +
		`","auth_scheme":"Bearer","admin_emails":["a@example.com","b@example.com"],"updated_at":"2026-01-02T15:04:05Z",` +
		`"Alpha":12.50,"portal_note":"<b>&</b>","zeta":{"nested":[1,2,{"x":null}]}}`
	if string(out) != want {
		t.Fatalf("encoded\n%s\nwant\n%s", out, want)
	}
	if std, err := json.Marshal(e); err != nil || !json.Valid(std) {
		t.Fatalf("json.Marshal = %s, %v", std, err)
	}
	again, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := again.ExtraValue("zeta"); string(v) != `{"nested":[1,2,{"x":null}]}` {
		t.Fatalf("zeta after a second round trip = %s", v)
	}
}

func TestEntryDefaultsAndTypeErrors(t *testing.T) {
	e, err := Decode([]byte(`{"hec_url":"https://h.example.com","hec_token":"t"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !e.Enabled {
		t.Fatal("a missing enabled is not true")
	}
	for in, field := range map[string]string{
		`{"enabled":"yes"}`:                     "enabled",
		`{"hec_url":1}`:                         "hec_url",
		`{"hec_token":{"` + testToken + `":1}}`: "hec_token",
		`{"admin_emails":"a@example.com"}`:      "admin_emails",
		`{"updated_at":"yesterday"}`:            "updated_at",
		`{"allow_insecure_http":1}`:             "allow_insecure_http",
	} {
		_, err := Decode([]byte(in))
		if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), field+":") {
			t.Errorf("Decode(%s) = %v; want an error on %s", in, err, field)
		}
		if err != nil && strings.Contains(err.Error(), testToken) {
			t.Errorf("Decode(%s): the error holds the token", in)
		}
	}
	for _, in := range []string{``, `null`, `[]`, `"x"`, `{"hec_token":"` + testToken + `"`} {
		_, err := Decode([]byte(in))
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Decode(%q) = %v; want ErrInvalid", in, err)
		}
		if err != nil && strings.Contains(err.Error(), testToken) {
			t.Errorf("Decode(%q): the error holds the token", in)
		}
	}
}

func TestEntryValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Entry)
		field string // "" when valid
	}{
		{"valid", func(*Entry) {}, ""},
		{"loopback http", func(e *Entry) { e.HECURL = "http://127.0.0.1:8088" }, ""},
		{"localhost http", func(e *Entry) { e.HECURL = "http://localhost:8088/services/collector" }, ""},
		{"remote http allowed", func(e *Entry) { e.HECURL = "http://hec.example.com"; e.AllowInsecureHTTP = true }, ""},
		{"empty provider", func(e *Entry) { e.Provider = "" }, ""},
		{"bearer lower case", func(e *Entry) { e.AuthScheme = "bearer" }, ""},
		{"no emails", func(e *Entry) { e.AdminEmails = nil }, ""},
		{"sealed token", func(e *Entry) { e.HECToken, _ = Seal(testKey(1), testToken) }, ""},
		{"remote http", func(e *Entry) { e.HECURL = "http://hec.example.com" }, "hec_url"},
		{"no url", func(e *Entry) { e.HECURL = "" }, "hec_url"},
		{"ftp", func(e *Entry) { e.HECURL = "ftp://hec.example.com" }, "hec_url"},
		{"not a url", func(e *Entry) { e.HECURL = "https://hec example.com/%zz" }, "hec_url"},
		{"no host", func(e *Entry) { e.HECURL = "https:///services/collector" }, "hec_url"},
		{"user info", func(e *Entry) { e.HECURL = "https://u:" + testToken + "@hec.example.com" }, "hec_url"},
		{"no token", func(e *Entry) { e.HECToken = "" }, "hec_token"},
		{"token newline", func(e *Entry) { e.HECToken = testToken + "\n" }, "hec_token"},
		{"bad sealed", func(e *Entry) { e.HECToken = SealedPrefix + "nope" }, "hec_token"},
		{"scheme", func(e *Entry) { e.AuthScheme = "Basic" }, "auth_scheme"},
		{"email", func(e *Entry) { e.AdminEmails = []string{"admin@example.com", "not an address"} }, "admin_emails"},
		{"email blank", func(e *Entry) { e.AdminEmails = []string{""} }, "admin_emails"},
		{"email twice", func(e *Entry) { e.AdminEmails = []string{"a@example.com", "A@example.com"} }, "admin_emails"},
		{"provider", func(e *Entry) { e.Provider = "splunk" }, "provider"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := validEntry()
			tc.edit(e)
			err := e.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Fatalf("Validate = %v; want an error on %s", err, tc.field)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("the error holds the token: %v", err)
			}
		})
	}
	e := validEntry()
	e.HECURL, e.HECToken, e.AuthScheme = "", "", "x"
	err := e.Validate()
	for _, f := range []string{"hec_url:", "hec_token:", "auth_scheme:"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("Validate of three bad fields = %v; want all three, %s missing", err, f)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("Validate's error spans lines: %q", err)
	}
}

func TestEntryHECConfig(t *testing.T) {
	key := testKey(9)
	e := validEntry()
	e.AuthScheme = "bearer"
	e.HECToken, _ = Seal(key, testToken)
	base := huntress.Config{Source: "src", AllowInsecureHTTP: true}
	cfg, err := e.HECConfig("sub-1", key, base)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Token != testToken || cfg.URL != e.HECURL || cfg.AuthScheme != huntress.SchemeBearer || cfg.Source != "src" || cfg.AllowInsecureHTTP {
		t.Fatalf("HECConfig = %v (source %q, insecure %t)", cfg, cfg.Source, cfg.AllowInsecureHTTP)
	}
	if _, err := e.HECConfig("sub-1", nil, base); !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), "subscription sub-1") {
		t.Fatalf("no key: %v", err)
	}
	if _, err := e.HECConfig("sub-1", testKey(8), base); !errors.Is(err, ErrUnseal) || !strings.Contains(err.Error(), "subscription sub-1") {
		t.Fatalf("wrong key: %v", err)
	}
	e.HECURL = ""
	if _, err := e.HECConfig("sub-1", key, base); !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "subscription sub-1: hec_url") {
		t.Fatalf("bad url: %v", err)
	}
}

func TestEntryStringHidesToken(t *testing.T) {
	e := validEntry()
	for _, s := range []string{e.String(), fmt.Sprint(e), fmt.Sprint(*e), fmt.Sprintf("%#v", *e), fmt.Sprintf("%v", e)} {
		if strings.Contains(s, testToken) || !strings.Contains(s, Mask(testToken)) {
			t.Fatalf("%q: want the token masked", s)
		}
	}
}

func TestValidSubscription(t *testing.T) {
	for s, want := range map[string]bool{
		"acme":                                 true,
		"7f0c2a1e-2b7d-4a3f-9a55-0e2c9f1b8d41": true,
		"a_b=c":                                true,
		"":                                     false,
		"a.b":                                  false,
		"a b":                                  false,
		"a/b":                                  false,
		"a*":                                   false,
		"é":                                    false,
		strings.Repeat("a", 129):               false,
	} {
		if got := ValidSubscription(s); got != want {
			t.Errorf("ValidSubscription(%q) = %t", s, got)
		}
	}
}
