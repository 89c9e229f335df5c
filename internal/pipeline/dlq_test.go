package pipeline_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

// dlqMessages waits until the dead-letter stream holds n messages and
// returns them.
func dlqMessages(t *testing.T, js jetstream.JetStream, n int) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	var s jetstream.Stream
	eventually(t, 20*time.Second, "dead letters", func() bool {
		var err error
		s, err = js.Stream(ctx, "EZSSH_AUDIT_DLQ")
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs >= uint64(n)
	})
	info, _ := s.Info(ctx)
	if info.State.Msgs != uint64(n) {
		t.Errorf("dead-letter stream holds %d messages, want %d", info.State.Msgs, n)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}
