package audit

import (
	"encoding/base64"
	"testing"
)

// BenchmarkStr scans a string shaped like a certificate, the bulk of an event.
func BenchmarkStr(b *testing.B) {
	raw := make([]byte, 780)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	body := []byte(`"ssh-ed25519-cert-v01@openssh.com ` + base64.StdEncoding.EncodeToString(raw) + `"`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		s := scanner{b: body}
		if _, err := s.str(); err != nil {
			b.Fatal(err)
		}
	}
}
