package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

// streamMessages returns the messages of the dead-letter stream whose subject
// starts with prefix: dead letters (ezssh.dlq.) or route events (ezssh.route.).
func streamMessages(t *testing.T, js jetstream.JetStream, prefix string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, "EZSSH_AUDIT_DLQ")
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return nil
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		if strings.HasPrefix(m.Subject, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// dlqMessages waits until the dead-letter stream holds n dead letters and
// returns them.
func dlqMessages(t *testing.T, js jetstream.JetStream, n int) []*jetstream.RawStreamMsg {
	t.Helper()
	eventually(t, 20*time.Second, "dead letters", func() bool {
		return len(streamMessages(t, js, "ezssh.dlq.")) >= n
	})
	out := streamMessages(t, js, "ezssh.dlq.")
	if len(out) != n {
		t.Errorf("dead-letter stream holds %d dead letters, want %d", len(out), n)
	}
	return out
}

// routeEvents returns the route state changes stored so far.
func routeEvents(t *testing.T, js jetstream.JetStream) []pipeline.RouteEvent {
	t.Helper()
	var out []pipeline.RouteEvent
	for _, m := range streamMessages(t, js, pipeline.RouteEventSubjectPrefix+".") {
		var ev pipeline.RouteEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("route event %s: %v", m.Data, err)
		}
		out = append(out, ev)
	}
	return out
}

func hasState(evs []pipeline.RouteEvent, state string) bool {
	for _, ev := range evs {
		if ev.State == state {
			return true
		}
	}
	return false
}
