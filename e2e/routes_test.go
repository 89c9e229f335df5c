package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

// publishTo publishes n events of subscription sub and returns their ids.
func (s *natsServer) publishTo(t *testing.T, sub string, n int) []string {
	t.Helper()
	p := audit.NewPublisher(s.js, audit.PublisherOptions{})
	ids := make([]string, 0, n)
	for range n {
		e := &audit.Event{EventType: audit.EventTypeSSH, SubscriptionId: sub, ActionPerformed: "Certificate Issued"}
		if err := p.PublishAsync(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.EventId)
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	return ids
}

// putRoute writes a subscription's route entry.
func putRoute(t *testing.T, kv jetstream.KeyValue, sub string, e *routes.Entry) {
	t.Helper()
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), sub, b); err != nil {
		t.Fatal(err)
	}
}

func entry(h *hec, token string) *routes.Entry {
	return &routes.Entry{Enabled: true, Provider: "huntress", HECURL: h.url(), HECToken: token,
		AuthScheme: "Splunk", AdminEmails: []string{"admin@example.com"}, UpdatedAt: time.Now().Add(-time.Second)}
}

// Subscription routes come from the KV bucket EZSSH_SIEM and change while the
// forwarder runs and events flow: each subscription's events reach only its
// own HEC; a sealed token is opened with the key; a token sealed with another
// key stops only its own route; a changed destination, a disable, a re-enable
// and a delete lose nothing and send nothing to the wrong place.
func TestSubscriptionRoutesFromKV(t *testing.T) {
	ns := startNATS(t)
	ctx := context.Background()
	kv, err := routes.EnsureBucket(ctx, ns.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	key, other := make([]byte, 32), make([]byte, 32)
	rand.Read(key)
	rand.Read(other)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}

	hecA, hecA2, hecB, hecC := startHEC(t, nil), startHEC(t, nil), startHEC(t, nil), startHEC(t, nil)
	putRoute(t, kv, "sub-a", entry(hecA, hecToken))
	sealed, err := routes.Seal(key, hecToken)
	if err != nil {
		t.Fatal(err)
	}
	putRoute(t, kv, "sub-b", entry(hecB, sealed))
	wrong, _ := routes.Seal(other, hecToken)
	putRoute(t, kv, "sub-c", entry(hecC, wrong))

	env := runEnv(t, ns.url(), "", "huntress")
	delete(env, "HUNTRESS_HEC_URL")
	delete(env, "HUNTRESS_HEC_TOKEN")
	env["FORWARDER_SECRET_KEY_FILE"] = keyFile
	proc := startForwarder(t, "forwarder", env)
	eventually(t, 20*time.Second, "routes a and b have consumers", func() bool {
		return ns.consumer(t, "huntress-sub-a") != nil && ns.consumer(t, "huntress-sub-b") != nil
	})

	a1 := ns.publishTo(t, "sub-a", 300)
	b1 := ns.publishTo(t, "sub-b", 300)
	c1 := ns.publishTo(t, "sub-c", 50)
	eventually(t, 30*time.Second, "a and b delivered", func() bool {
		return hecA.distinct() == len(a1) && hecB.distinct() == len(b1)
	})
	checkComplete(t, countAll(a1, hecA))
	checkComplete(t, countAll(b1, hecB)) // the sealed token was opened
	if hecC.distinct() != 0 || ns.consumer(t, "huntress-sub-c") != nil {
		t.Errorf("route c, sealed with another key, delivered %d events", hecC.distinct())
	}
	_ = c1

	// Change a's destination while its events flow: none lost, none to the
	// old HEC once the change is applied.
	stop := make(chan struct{})
	flowed := make(chan []string)
	go func() {
		var ids []string
		for {
			select {
			case <-stop:
				flowed <- ids
				return
			default:
			}
			ids = append(ids, ns.publishTo(t, "sub-a", 20)...)
		}
	}()
	putRoute(t, kv, "sub-a", entry(hecA2, hecToken))
	eventually(t, 20*time.Second, "the new HEC receives a's events", func() bool { return hecA2.distinct() > 0 })
	close(stop)
	a2 := <-flowed
	after := ns.publishTo(t, "sub-a", 100)
	eventually(t, 30*time.Second, "a's events delivered across the change", func() bool {
		return countAll(append(append([]string{}, a1...), append(a2, after...)...), hecA, hecA2).missing == 0
	})
	if missing := countAll(after, hecA).missing; missing != len(after) {
		t.Errorf("%d events published after the change reached the old HEC", len(after)-missing)
	}

	// Disable: a's events wait; re-enable: they arrive.
	disabled := entry(hecA2, hecToken)
	disabled.Enabled = false
	putRoute(t, kv, "sub-a", disabled)
	eventually(t, 20*time.Second, "route a stopped", func() bool {
		return strings.Contains(proc.output(), `msg="route disabled; its events wait in the stream" component=forwarder subscription=sub-a`)
	})
	held := ns.publishTo(t, "sub-a", 100)
	eventually(t, 10*time.Second, "held events wait in the consumer", func() bool {
		c := ns.consumer(t, "huntress-sub-a")
		return c != nil && c.NumPending >= uint64(len(held))
	})
	if n := len(held) - countAll(held, hecA2).missing; n != 0 {
		t.Fatalf("a disabled route delivered %d events", n)
	}
	putRoute(t, kv, "sub-a", entry(hecA2, hecToken))
	eventually(t, 30*time.Second, "held events delivered after re-enable", func() bool {
		return countAll(held, hecA2).missing == 0
	})

	// Delete: the route and its consumer go; b keeps delivering.
	if err := kv.Delete(ctx, "sub-a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a's consumer deleted", func() bool { return ns.consumer(t, "huntress-sub-a") == nil })
	b2 := ns.publishTo(t, "sub-b", 100)
	eventually(t, 20*time.Second, "b still delivers", func() bool { return countAll(b2, hecB).missing == 0 })
	for _, h := range []*hec{hecA, hecA2} {
		if n := len(b1) - countAll(b1, h).missing; n != 0 {
			t.Errorf("%d of b's events reached one of a's HECs", n)
		}
	}
	proc.mustRun(t)
}
