package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/embedded"
)

// ackInfo agrees with jetstream.Msg.Metadata on what a real server sends,
// first deliveries and redeliveries alike, and refuses what is not an ack
// subject.
func TestAckInfoAgreesWithMetadata(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{StoreDir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ACKINFO", Subjects: []string{"ackinfo.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, "ackinfo.x", []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	check := func(m jetstream.Msg) {
		t.Helper()
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		d, seq, ok := ackInfo(m.Reply())
		if !ok || d != md.NumDelivered || seq != md.Sequence.Stream {
			t.Errorf("ackInfo(%q) = %d, %d, %v; Metadata says delivered %d, stream seq %d", m.Reply(), d, seq, ok, md.NumDelivered, md.Sequence.Stream)
		}
	}
	for round := range 3 { // each round NAKs everything: deliveries 1, 2, 3
		batch, err := c.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			check(m)
			if md, _ := m.Metadata(); md.NumDelivered != uint64(round+1) {
				t.Fatalf("round %d: delivered %d", round, md.NumDelivered)
			}
			_ = m.Nak()
			n++
		}
		if n != 3 {
			t.Fatalf("round %d fetched %d", round, n)
		}
	}

	for reply, want := range map[string][3]uint64{
		"$JS.ACK.S.C.7.42.40.1700000000000000000.3":               {7, 42, 1},
		"$JS.ACK.hub.ACCHASH.S.C.2.9.9.1700000000000000000.0.rnd": {2, 9, 1},
		"$JS.ACK.hub.ACCHASH.S.C.2.9.9.1700000000000000000.0":     {2, 9, 1},
		"$JS.ACK.S.C.x.42.40.1700000000000000000.3":               {0, 0, 0},
		"$JS.ACK.S.C.7.42":          {0, 0, 0},
		"$JS.ACK.a.b.S.C.7.42.40.1": {0, 0, 0},
		"_INBOX.abc":                {0, 0, 0},
		"":                          {0, 0, 0},
	} {
		d, seq, ok := ackInfo(reply)
		if got := [3]uint64{d, seq, map[bool]uint64{true: 1}[ok]}; got != want {
			t.Errorf("ackInfo(%q) = %v, want %v", reply, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ackInfo("$JS.ACK.hub.ACCHASH.S.C.2.9.9.1700000000000000000.0.rnd") }); n != 0 {
		t.Errorf("ackInfo allocates %v times", n)
	}
}
