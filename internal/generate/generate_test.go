package generate_test

import (
	"strings"
	"testing"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/generate"
)

func TestEventsAreValidAndSized(t *testing.T) {
	g := generate.New(generate.Options{Seed: 42})
	subs := map[string]bool{}
	for _, s := range g.Subscriptions() {
		subs[s] = true
	}
	if len(subs) != 5 {
		t.Fatalf("subscriptions = %v, want 5 distinct", g.Subscriptions())
	}
	const n = 4000
	var types, actions = map[string]int{}, map[string]int{}
	total := 0
	ids := map[string]bool{}
	for i := range n {
		body, subject := g.NextBody()
		f, err := audit.Inspect(body)
		if err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, body)
		}
		if subject != f.Subject() {
			t.Fatalf("subject %q, body says %q", subject, f.Subject())
		}
		if !subs[f.SubscriptionId] {
			t.Fatalf("unknown subscription %q", f.SubscriptionId)
		}
		if ids[f.EventId] {
			t.Fatalf("EventId %s repeated", f.EventId)
		}
		ids[f.EventId] = true
		var e audit.Event
		if err := e.UnmarshalJSON(body); err != nil {
			t.Fatal(err)
		}
		types[e.EventType]++
		actions[e.ActionPerformed]++
		total += len(body)
		switch e.ActionPerformed {
		case generate.ActionIssued:
			if len(body) < 1300 || len(body) > 1800 {
				t.Errorf("issued event is %d bytes, want about 1.5 KB", len(body))
			}
			if !strings.HasPrefix(e.Certificate, "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t") {
				t.Errorf("certificate %.60q", e.Certificate)
			}
		case generate.ActionDenied:
			if e.Certificate != "" || e.Criticality != audit.CriticalityHigh {
				t.Errorf("denied event with certificate or criticality %q", e.Criticality)
			}
		}
		if !strings.HasPrefix(e.UserPublicKey, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI") {
			t.Errorf("public key %q", e.UserPublicKey)
		}
		if len(e.Extra["SourceIp"]) == 0 {
			t.Error("no SourceIp")
		}
	}
	if ssh := float64(types[audit.EventTypeSSH]) / n; ssh < 0.65 || ssh > 0.75 {
		t.Errorf("EZSSH_SSH share %.2f, want about 0.70", ssh)
	}
	if types[audit.EventTypeSSH]+types[audit.EventTypeGit] != n {
		t.Errorf("types %v", types)
	}
	if got := actions[audit.ActionTestConnection]; got != n/200 {
		t.Errorf("%d test events, want %d", got, n/200)
	}
	if denied := float64(actions[generate.ActionDenied]) / n; denied < 0.03 || denied > 0.07 {
		t.Errorf("denied share %.3f, want about 0.05", denied)
	}
	if avg := total / n; avg < 1300 || avg > 1700 {
		t.Errorf("average size %d, want about 1.5 KB", avg)
	}
}

func TestSeedIsReproducible(t *testing.T) {
	a, b := generate.New(generate.Options{Seed: 7}), generate.New(generate.Options{Seed: 7})
	c := generate.New(generate.Options{Seed: 8, Subscriptions: 3, TestEvery: -1})
	if strings.Join(a.Subscriptions(), ",") != strings.Join(b.Subscriptions(), ",") {
		t.Error("same seed, different subscriptions")
	}
	if len(c.Subscriptions()) != 3 || c.Subscriptions()[0] == a.Subscriptions()[0] {
		t.Errorf("seed 8 subscriptions %v", c.Subscriptions())
	}
	for range 50 {
		x, y := a.Next(), b.Next()
		if x.UserPublicKey != y.UserPublicKey || x.Certificate != y.Certificate || x.SubscriptionId != y.SubscriptionId || x.EventType != y.EventType {
			t.Fatal("same seed, different events")
		}
	}
	for range 1000 {
		if c.Next().IsTest() {
			t.Fatal("TestEvery -1 made a test event")
		}
	}
}

func BenchmarkNextBody(b *testing.B) {
	g := generate.New(generate.Options{})
	b.ReportAllocs()
	for b.Loop() {
		g.NextBody()
	}
}
