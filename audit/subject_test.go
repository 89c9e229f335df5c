package audit_test

import (
	"strings"
	"testing"

	"github.com/ezssh/siem-forwarder/audit"
)

func TestKindOf(t *testing.T) {
	for in, want := range map[string]string{
		"EZSSH_SSH":     "ssh",
		"EZSSH_GIT":     "git",
		"EZSSH_FOO_BAR": "foo_bar",
	} {
		if got := audit.KindOf(in); got != want {
			t.Errorf("KindOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSubjects(t *testing.T) {
	if got := audit.Subject("sub-1", "ssh"); got != "ezssh.audit.sub-1.ssh" {
		t.Errorf("Subject = %q", got)
	}
	e := &audit.Event{SubscriptionId: "acme", EventType: "EZSSH_GIT"}
	if got := e.Subject(); got != "ezssh.audit.acme.git" {
		t.Errorf("Event.Subject = %q", got)
	}
	if got := audit.SubscriptionFilter("acme"); got != "ezssh.audit.acme.>" {
		t.Errorf("SubscriptionFilter = %q", got)
	}
	if audit.SubjectAll != "ezssh.audit.>" || audit.StreamName != "EZSSH_AUDIT" {
		t.Error("constants changed")
	}
}

func TestValidSubjectToken(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"sub-0001", true},
		{"ACME_corp-42", true},
		{"kunde-münchen", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("é", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{"a.b", false},
		{"a*", false},
		{">", false},
		{"a b", false},
		{"a\tb", false},
		{"a\u00a0b", false}, // no-break space
		{"a\u3000b", false}, // ideographic space
		{"a\x7fb", false},
		{"a\u0085b", false}, // NEL, a C1 control
		{"a\xffb", false},   // not UTF-8
	}
	for _, tt := range tests {
		if got := audit.ValidSubjectToken(tt.in); got != tt.want {
			t.Errorf("ValidSubjectToken(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
