package notifyfeed_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/embedded"
	"github.com/ezssh/siem-forwarder/internal/embedded/embeddedtest"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/notify"
	"github.com/ezssh/siem-forwarder/internal/notify/smtptest"
	"github.com/ezssh/siem-forwarder/internal/notifyfeed"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

const (
	testToken = "11111111-2222-3333-4444-555555555555"
	window    = 1500 * time.Millisecond
	dlqStream = "EZSSH_AUDIT_DLQ"
)

var admins = []string{"admin@example.com", "secops@example.com"}

// fleet is a JetStream server, a HEC, an SMTP server, and instances that each
// run a forwarder and a notifier feed on their own connection, as separate
// processes would.
type fleet struct {
	js   jetstream.JetStream // the test's own connection
	smtp *smtptest.Server
	down atomic.Bool // the HEC answers 503 while set

	mu        sync.Mutex
	delivered map[string]int

	forwarders []*pipeline.Forwarder
	notifiers  []*notify.Notifier
}

func startFleet(t *testing.T, instances int, reject func([]byte) bool) *fleet {
	t.Helper()
	srv := embeddedtest.Start(t, embedded.Config{})
	f := &fleet{delivered: map[string]int{}}
	f.js = connect(t, srv.URL())
	if _, err := audit.EnsureStream(context.Background(), f.js, audit.StreamOptions{}); err != nil {
		t.Fatal(err)
	}

	coll := huntress.NewCollector(huntress.CollectorOptions{
		Token: testToken,
		Fail: func(*http.Request, [][]byte) (int, string, bool) {
			if f.down.Load() {
				return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
			}
			return 0, "", false
		},
		RejectEvent: reject,
		OnEvent: func(body []byte, _ time.Time) {
			fields, err := audit.Inspect(body)
			if err != nil {
				return
			}
			f.mu.Lock()
			f.delivered[fields.EventId]++
			f.mu.Unlock()
		},
	})
	hec := httptest.NewServer(coll)
	t.Cleanup(hec.Close)

	f.smtp = smtptest.Start(t, smtptest.Options{})
	mailer, err := notify.NewSMTPMailer(notify.SMTPConfig{Host: f.smtp.Host, Port: f.smtp.Port, From: "forwarder@example.com"})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	for i := range instances {
		js := connect(t, srv.URL())
		client, err := huntress.New(huntress.Config{URL: hec.URL, Token: testToken, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		fw, err := pipeline.New(js, pipelineConfig(), []pipeline.Route{{
			Name: "global", Consumer: "huntress", Destination: hec.URL + "/services/collector", Sink: client,
		}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		f.forwarders = append(f.forwarders, fw)
		wg.Go(func() {
			if err := fw.Run(ctx); err != nil {
				t.Errorf("forwarder %d: %v", i, err)
			}
		})

		store, err := notifyfeed.OpenStore(ctx, js, notifyfeed.StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n, err := notify.New(notify.Config{
			Window: window,
			Mailer: mailer,
			Store:  store,
			Recipients: func(route string) []string {
				if route == "global" {
					return admins
				}
				return nil
			},
			Destination:  func(string) string { return hec.URL + "/services/collector" },
			Instance:     fmt.Sprintf("instance-%d", i),
			Lease:        10 * time.Second,
			SendTimeout:  5 * time.Second,
			RetryInitial: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		f.notifiers = append(f.notifiers, n)
		wg.Go(func() {
			if err := notifyfeed.Run(ctx, js, notifyfeed.Options{Notifier: n, TickEvery: 100 * time.Millisecond}); err != nil {
				t.Errorf("feed %d: %v", i, err)
			}
		})
	}
	for i, fw := range f.forwarders {
		eventually(t, 10*time.Second, fmt.Sprintf("forwarder %d ready", i), fw.Ready)
	}
	// The notifier's consumer starts at new messages: wait for it before
	// anything happens.
	eventually(t, 10*time.Second, "the notifier's consumer", func() bool {
		_, err := f.js.Consumer(context.Background(), dlqStream, "notifier")
		return err == nil
	})
	return f
}

func pipelineConfig() pipeline.Config {
	return pipeline.Config{
		MaxBatchEvents:  10,
		Prefetch:        20,
		RetryInitial:    20 * time.Millisecond,
		RetryMax:        200 * time.Millisecond,
		PauseMin:        200 * time.Millisecond,
		PauseMax:        time.Second,
		ProbeTimeout:    2 * time.Second,
		BreakerFailures: 3,
		ShutdownTimeout: 5 * time.Second,
	}
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	_, js := embeddedtest.Connect(t, url)
	return js
}

// publish publishes n events; poison ones carry a marker the HEC refuses.
func (f *fleet) publish(t *testing.T, prefix string, n int, poison bool) []string {
	t.Helper()
	ctx := context.Background()
	p := audit.NewPublisher(f.js, audit.PublisherOptions{})
	ids := make([]string, 0, n)
	for i := range n {
		id := fmt.Sprintf("%s-%05d", prefix, i)
		name := "user"
		if poison {
			name = "poison"
		}
		body := fmt.Appendf(nil, `{"EventId":%q,"EventType":"EZSSH_SSH","RequestDate":%q,"SubscriptionId":"sub-%d","ActionPerformed":"Certificate Issued","RequestorFriendlyName":%q}`,
			id, time.Now().UTC().Format(time.RFC3339Nano), i%3, name)
		if err := p.PublishRawAsync(ctx, body); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

func (f *fleet) deliveredAll(ids []string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if f.delivered[id] == 0 {
			return false
		}
	}
	return true
}

// count counts the messages on subject in the dead-letter stream.
func (f *fleet) count(t *testing.T, subject string) uint64 {
	t.Helper()
	s, err := f.js.Stream(context.Background(), dlqStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// settled reports whether the notifier's consumer has handled everything.
func (f *fleet) settled(t *testing.T) bool {
	t.Helper()
	c, err := f.js.Consumer(context.Background(), dlqStream, "notifier")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumPending == 0 && info.NumAckPending == 0
}

func (f *fleet) emails(substr string) []smtptest.Message {
	var out []smtptest.Message
	for _, m := range f.smtp.Messages() {
		if strings.Contains(m.Subject, substr) {
			out = append(out, m)
		}
	}
	return out
}

// checkEmails asserts what every email must satisfy.
func (f *fleet) checkEmails(t *testing.T) {
	t.Helper()
	var digests []time.Time
	for _, m := range f.smtp.Messages() {
		if strings.Join(m.To, ",") != strings.Join(admins, ",") {
			t.Errorf("email %q went to %v, want %v", m.Subject, m.To, admins)
		}
		raw := string(m.Raw)
		if strings.Contains(raw, testToken) || strings.Contains(m.Body, testToken) {
			t.Errorf("email %q contains the HEC token", m.Subject)
		}
		if strings.Contains(strings.ToLower(m.Body), "authorization:") {
			t.Errorf("email %q contains an Authorization header", m.Subject)
		}
		if strings.Contains(m.Subject, "more audit event") || strings.Contains(m.Subject, "interrupted again") {
			digests = append(digests, m.At)
		}
	}
	for i := 1; i < len(digests); i++ {
		// The window runs from the previous email's queueing; allow for
		// the time sending takes.
		if gap := digests[i].Sub(digests[i-1]); gap < window-200*time.Millisecond {
			t.Errorf("two digests %v apart, window %v", gap, window)
		}
	}
}

func TestOutageOfTwoInstancesSendsOneIncidentAndOneRecoveryEmail(t *testing.T) {
	f := startFleet(t, 2, nil)
	f.down.Store(true)
	ids := f.publish(t, "outage", 300, false)

	eventually(t, 20*time.Second, "the incident email", func() bool { return len(f.emails("stopped")) > 0 })
	// Let the second instance's breaker open too, so that the notifier sees the
	// same outage reported twice.
	eventually(t, 20*time.Second, "both instances report the outage", func() bool {
		return f.count(t, "ezssh.route.global.opened") >= 2
	})
	// A real outage: the route is paused and probed without consuming events.
	eventually(t, 20*time.Second, "the paused route probed", func() bool {
		var probes int64
		for _, fw := range f.forwarders {
			for _, s := range fw.Stats() {
				probes += s.Probes
			}
		}
		return probes >= 3
	})
	inc := f.emails("stopped")[0]
	if !strings.Contains(inc.Subject, "127.0.0.1") || !strings.Contains(inc.Body, "Huntress is unreachable or failing") ||
		!strings.Contains(inc.Body, "HTTP 503") || !strings.Contains(inc.Body, "held") {
		t.Errorf("incident email:\n%s\n%s", inc.Subject, inc.Body)
	}

	f.down.Store(false)
	eventually(t, 30*time.Second, "the recovery email", func() bool { return len(f.emails("recovered")) > 0 })
	eventually(t, 30*time.Second, "every event delivered", func() bool { return f.deliveredAll(ids) })
	eventually(t, 20*time.Second, "every instance reports the recovery, and the notifier has read it all", func() bool {
		return f.count(t, "ezssh.route.global.recovered") >= f.count(t, "ezssh.route.global.opened") && f.settled(t)
	})

	if n := len(f.emails("stopped")); n != 1 {
		t.Errorf("%d incident emails, want 1", n)
	}
	if n := len(f.emails("recovered")); n != 1 {
		t.Errorf("%d recovery emails, want 1", n)
	}
	rec := f.emails("recovered")[0]
	if !strings.Contains(rec.Body, "has resumed") || !strings.Contains(rec.Body, "Interrupted for") {
		t.Errorf("recovery email:\n%s", rec.Body)
	}
	f.checkEmails(t)
	var sent int64
	for _, n := range f.notifiers {
		sent += n.Stats().Sent
	}
	if want := int64(len(f.smtp.Messages())); sent != want {
		t.Errorf("notifiers count %d emails sent, the server has %d", sent, want)
	}
}

func TestRejectedEventsSendOneIncidentEmailThenADigest(t *testing.T) {
	f := startFleet(t, 2, func(body []byte) bool { return bytes.Contains(body, []byte(`"poison"`)) })
	good := f.publish(t, "good", 50, false)
	f.publish(t, "bad", 1, true)

	eventually(t, 20*time.Second, "the incident email", func() bool { return len(f.emails("refused an audit event")) > 0 })
	inc := f.emails("refused an audit event")[0]
	for _, want := range []string{"rejected: Huntress refused the event itself", "Subscription:    sub-0", "HTTP 400, code 6",
		"forwarder dlq list --route global", "127.0.0.1"} {
		if !strings.Contains(inc.Body, want) {
			t.Errorf("incident email lacks %q:\n%s", want, inc.Body)
		}
	}

	// Two more in the same window: one digest, a window after the first email.
	good = append(good, f.publish(t, "good2", 50, false)...)
	f.publish(t, "bad2", 2, true)
	eventually(t, 20*time.Second, "the digest", func() bool { return len(f.emails("more audit event")) > 0 })
	eventually(t, 20*time.Second, "every good event delivered", func() bool { return f.deliveredAll(good) })

	d := f.emails("more audit event")[0]
	if !strings.Contains(d.Subject, "2 more audit events dead-lettered") || !strings.Contains(d.Body, "Dead letters:    2 (rejected 2)") {
		t.Errorf("digest:\n%s\n%s", d.Subject, d.Body)
	}
	if gap := d.At.Sub(inc.At); gap < window-200*time.Millisecond {
		t.Errorf("digest %v after the incident email, window %v", gap, window)
	}
	if n := f.count(t, "ezssh.dlq.>"); n != 3 {
		t.Errorf("%d dead letters, want 3", n)
	}
	if n := len(f.emails("refused an audit event")); n != 1 {
		t.Errorf("%d incident emails, want 1", n)
	}
	if n := len(f.emails("more audit event")); n != 1 {
		t.Errorf("%d digests, want 1", n)
	}
	f.checkEmails(t)
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
