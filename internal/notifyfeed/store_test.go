package notifyfeed_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/embedded"
	"github.com/ezssh/siem-forwarder/internal/embedded/embeddedtest"
	"github.com/ezssh/siem-forwarder/internal/notify"
	"github.com/ezssh/siem-forwarder/internal/notify/smtptest"
	"github.com/ezssh/siem-forwarder/internal/notifyfeed"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

func startServer(t *testing.T) string {
	t.Helper()
	srv := embeddedtest.Start(t, embedded.Config{})
	return srv.URL()
}

func TestKVStoreCompareAndSet(t *testing.T) {
	js := connect(t, startServer(t))
	ctx := context.Background()
	s, err := notifyfeed.OpenStore(ctx, js, notifyfeed.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "route.a"); !errors.Is(err, notify.ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if keys, err := s.Keys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("Keys of an empty bucket: %v, %v", keys, err)
	}
	r1, err := s.Create(ctx, "route.a", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "route.a", []byte("again")); !errors.Is(err, notify.ErrExists) {
		t.Fatalf("second Create: %v", err)
	}
	r2, err := s.Update(ctx, "route.a", []byte("two"), r1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "route.a", []byte("stale"), r1); !errors.Is(err, notify.ErrConflict) {
		t.Fatalf("stale Update: %v", err)
	}
	v, rev, err := s.Get(ctx, "route.a")
	if err != nil || string(v) != "two" || rev != r2 {
		t.Fatalf("Get = %q %d %v, want two %d", v, rev, err, r2)
	}
	if _, err := s.Create(ctx, "route.b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	keys, err := s.Keys(ctx)
	slices.Sort(keys)
	if err != nil || strings.Join(keys, ",") != "route.a,route.b" {
		t.Fatalf("Keys = %v, %v", keys, err)
	}
	// Reopening keeps the state (history 1 is fine: only the latest matters).
	s2, err := notifyfeed.OpenStore(ctx, js, notifyfeed.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, err := s2.Get(ctx, "route.a"); err != nil || string(v) != "two" {
		t.Fatalf("after reopen: %q %v", v, err)
	}
}

// The consumer starts at new messages when first created, so an old backlog
// sends no email; once it exists it keeps its position across restarts.
func TestConsumerSkipsOldBacklogButKeepsItsPosition(t *testing.T) {
	url := startServer(t)
	js := connect(t, url)
	ctx := context.Background()
	if _, err := pipeline.EnsureDLQStream(ctx, js, dlqStream, 0, 0); err != nil {
		t.Fatal(err)
	}
	openedOn := func(route string) {
		t.Helper()
		b, _ := json.Marshal(pipeline.RouteEvent{Route: route, State: pipeline.StateOpened, Class: "retry", Error: "busy", At: time.Now()})
		if _, err := js.Publish(ctx, pipeline.RouteEventSubject(route, pipeline.StateOpened), b); err != nil {
			t.Fatal(err)
		}
	}
	openedOn("old")

	mail := smtptest.Start(t, smtptest.Options{})
	mailer, err := notify.NewSMTPMailer(notify.SMTPConfig{Host: mail.Host, Port: mail.Port, From: "f@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := notify.New(notify.Config{Mailer: mailer, Store: &notify.MemStore{}, Recipients: func(string) []string { return []string{"a@example.com"} }})
	if err != nil {
		t.Fatal(err)
	}
	run := func() (stop func()) {
		rctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := notifyfeed.Run(rctx, connect(t, url), notifyfeed.Options{Notifier: n, TickEvery: 50 * time.Millisecond}); err != nil {
				t.Error(err)
			}
		})
		return func() { cancel(); wg.Wait() }
	}
	routes := func() []string {
		var out []string
		for _, m := range mail.Messages() {
			_, after, _ := strings.Cut(m.Subject, "(route ")
			out = append(out, strings.TrimSuffix(after, ")"))
		}
		return out
	}

	stop := run()
	eventually(t, 10*time.Second, "the consumer", func() bool {
		_, err := js.Consumer(ctx, dlqStream, "notifier")
		return err == nil
	})
	openedOn("new")
	eventually(t, 10*time.Second, "an email about the new outage", func() bool { return len(mail.Messages()) >= 1 })
	stop()

	openedOn("while-stopped")
	stop = run()
	defer stop()
	eventually(t, 10*time.Second, "an email about the outage reported while stopped", func() bool { return len(mail.Messages()) >= 2 })
	c, err := js.Consumer(ctx, dlqStream, "notifier")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the consumer to settle", func() bool {
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	if got := routes(); strings.Join(got, ",") != "new,while-stopped" {
		t.Errorf("emails about routes %v, want new, while-stopped", got)
	}
	info, _ := c.Info(ctx)
	if info.Config.DeliverPolicy != jetstream.DeliverNewPolicy || !slices.Equal(info.Config.FilterSubjects, []string{"ezssh.dlq.>", "ezssh.route.>"}) {
		t.Errorf("consumer config %+v", info.Config)
	}
}

// TestConsumerCreatedLateCatchesAlertsSinceStart: an outage reported after
// the forwarder started but before the notifier's consumer existed still gets
// its email; alerts from before Since do not.
func TestConsumerCreatedLateCatchesAlertsSinceStart(t *testing.T) {
	url := startServer(t)
	js := connect(t, url)
	ctx := t.Context()
	dlq, err := pipeline.EnsureDLQStream(ctx, js, dlqStream, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	openedOn := func(route string) time.Time {
		t.Helper()
		b, _ := json.Marshal(pipeline.RouteEvent{Route: route, State: pipeline.StateOpened, Class: "retry", Error: "busy", At: time.Now()})
		ack, err := js.Publish(ctx, pipeline.RouteEventSubject(route, pipeline.StateOpened), b)
		if err != nil {
			t.Fatal(err)
		}
		m, err := dlq.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		return m.Time
	}
	before := openedOn("before-start")
	openedOn("after-start") // stored after Since, before the consumer exists

	mail := smtptest.Start(t, smtptest.Options{})
	mailer, err := notify.NewSMTPMailer(notify.SMTPConfig{Host: mail.Host, Port: mail.Port, From: "f@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := notify.New(notify.Config{Mailer: mailer, Store: &notify.MemStore{}, Recipients: func(string) []string { return []string{"a@example.com"} }})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() {
		opts := notifyfeed.Options{Notifier: n, TickEvery: 50 * time.Millisecond, Since: before.Add(time.Nanosecond)}
		if err := notifyfeed.Run(rctx, js, opts); err != nil {
			t.Error(err)
		}
	})
	eventually(t, 10*time.Second, "the email about the outage raised before the consumer existed", func() bool { return len(mail.Messages()) >= 1 })
	c, err := js.Consumer(ctx, dlqStream, "notifier")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the consumer to settle", func() bool {
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	msgs := mail.Messages()
	if len(msgs) != 1 || !strings.Contains(msgs[0].Subject, "(route after-start)") {
		var subjects []string
		for _, m := range msgs {
			subjects = append(subjects, m.Subject)
		}
		t.Fatalf("emails %q, want one about route after-start only", subjects)
	}
}
