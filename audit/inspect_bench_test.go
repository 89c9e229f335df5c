package audit_test

import (
	"encoding/base64"
	"math/rand/v2"
	"testing"

	"github.com/ezssh/siem-forwarder/audit"
)

// realisticBody returns a body of about 1.5 KB shaped like an EZSSH event:
// a key, a certificate of about 1 KB and a few unknown fields.
func realisticBody(tb testing.TB) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	random := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	e := audit.Event{
		EventType:             audit.EventTypeSSH,
		RequestDate:           "2025-03-14T09:26:53.589123Z",
		ActionPerformed:       "Certificate Issued",
		UserPublicKey:         "ssh-ed25519 " + random(51) + " alice.martin@build-07",
		Certificate:           "ssh-ed25519-cert-v01@openssh.com " + random(780),
		RequestorFriendlyName: "Alice Martin",
		EventId:               "01939f5e-7c1a-7b3e-9f0a-2d4c6e8a1b3c",
		SubscriptionId:        "sub-3f9a2c41",
		Criticality:           audit.CriticalityMedium,
	}
	body, err := e.MarshalJSON()
	if err != nil {
		tb.Fatal(err)
	}
	body = append(body[:len(body)-1], `,"SourceIp":"203.0.113.7","Client":{"os":"linux","version":"2.4.1","tags":["ci","prod"]}}`...)
	if _, err := audit.Inspect(body); err != nil {
		tb.Fatal(err)
	}
	return body
}

func BenchmarkInspect(b *testing.B) {
	body := realisticBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := audit.Inspect(body); err != nil {
			b.Fatal(err)
		}
	}
}

func TestInspectAllocations(t *testing.T) {
	body := realisticBody(t)
	if n := len(body); n < 1300 || n > 1800 {
		t.Fatalf("benchmark body is %d bytes, want about 1.5 KB", n)
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = audit.Inspect(body) }); allocs > 1 {
		t.Errorf("Inspect allocates %v times per call, want at most 1", allocs)
	}
}
