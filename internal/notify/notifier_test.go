package notify_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/notify"
)

const token = "11111111-2222-3333-4444-555555555555"

var t0 = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// mailer records what it is asked to send. fail, when set, decides the
// outcome of the nth call (from 1); block, when set, holds every call until
// the call's context ends.
type mailer struct {
	mu    sync.Mutex
	sent  []notify.Message
	calls int
	fail  func(n int) error
	block bool
	entry chan struct{} // receives on every call, when set
}

func (m *mailer) Send(ctx context.Context, msg notify.Message) error {
	m.mu.Lock()
	m.calls++
	n, fail, block, entry := m.calls, m.fail, m.block, m.entry
	m.mu.Unlock()
	if entry != nil {
		entry <- struct{}{}
	}
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	if fail != nil {
		if err := fail(n); err != nil {
			return err
		}
	}
	m.mu.Lock()
	m.sent = append(m.sent, msg)
	m.mu.Unlock()
	return nil
}

func (m *mailer) messages() []notify.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]notify.Message(nil), m.sent...)
}

type env struct {
	clock  *clock
	store  *notify.MemStore
	mailer *mailer
}

func newEnv() *env {
	return &env{clock: &clock{t: t0}, store: &notify.MemStore{}, mailer: &mailer{}}
}

// notifier returns a Notifier on e's store, clock and mailer, as one
// instance of a fleet.
func (e *env) notifier(t *testing.T, instance string, tweak ...func(*notify.Config)) *notify.Notifier {
	t.Helper()
	cfg := notify.Config{
		Window:       15 * time.Minute,
		Mailer:       e.mailer,
		Store:        e.store,
		Recipients:   func(string) []string { return []string{"admin@example.com", "sec@example.com"} },
		Destination:  func(string) string { return "https://hec.huntress.io/services/collector" },
		Now:          e.clock.Now,
		Instance:     instance,
		RetryInitial: time.Millisecond,
		SendTimeout:  50 * time.Millisecond,
		Lease:        2 * time.Minute,
	}
	for _, f := range tweak {
		f(&cfg)
	}
	n, err := notify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func deadLetter(reason, sub, id string) notify.Alert {
	return notify.Alert{
		Kind: notify.KindDeadLetter, Route: "global", Reason: reason, Subscription: sub, ID: id,
		Error:  `huntress: HEC replied 400 code 6: "Invalid data format" (invalid event 0) [rejected]`,
		Status: 400, Code: 6, HasCode: true,
	}
}

func opened(class string, status int, errText string) notify.Alert {
	return notify.Alert{Kind: notify.KindOpened, Route: "global", Class: class, Status: status, Error: errText}
}

func recovered() notify.Alert { return notify.Alert{Kind: notify.KindRecovered, Route: "global"} }

func handle(t *testing.T, n *notify.Notifier, a notify.Alert) {
	t.Helper()
	if err := n.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

func tick(t *testing.T, n *notify.Notifier) {
	t.Helper()
	if err := n.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func wantMails(t *testing.T, m *mailer, n int) []notify.Message {
	t.Helper()
	got := m.messages()
	if len(got) != n {
		var subjects []string
		for _, g := range got {
			subjects = append(subjects, g.Subject)
		}
		t.Fatalf("%d emails sent, want %d: %q", len(got), n, subjects)
	}
	return got
}

func contains(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

func TestFirstDeadLetterSendsOneIncidentEmail(t *testing.T) {
	e := newEnv()
	n := e.notifier(t, "a")
	handle(t, n, deadLetter(notify.ReasonRejected, "sub-42", "1"))
	m := wantMails(t, e.mailer, 1)[0]
	if strings.Join(m.To, ",") != "admin@example.com,sec@example.com" {
		t.Errorf("recipients %v", m.To)
	}
	contains(t, "subject", m.Subject, "Huntress refused an audit event", "route global", "subscription sub-42")
	contains(t, "body", m.Body,
		"Subscription:    sub-42",
		"hec.huntress.io",
		"rejected: Huntress refused the event itself",
		"HTTP 400, code 6",
		"Invalid data format",
		"2026-03-04 10:00:00 UTC",
		"forwarder dlq list --route global --reason rejected",
		"at most one email every 15 minutes",
	)
	if s := n.Stats(); s.Sent != 1 || s.Failed != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestTheSameAlertHandledTwiceCountsOnce(t *testing.T) {
	e := newEnv()
	n := e.notifier(t, "a")
	handle(t, n, deadLetter(notify.ReasonRejected, "sub-1", "1"))
	handle(t, n, deadLetter(notify.ReasonRejected, "sub-1", "2"))
	handle(t, n, deadLetter(notify.ReasonRejected, "sub-1", "2")) // redelivered after a crash
	e.clock.Add(15 * time.Minute)
	tick(t, n)
	got := wantMails(t, e.mailer, 2)
	contains(t, "digest", got[1].Body, "Dead letters:    1 (rejected 1)")
}

func TestManyInstancesReportingOneOutageSendOneEmail(t *testing.T) {
	e := newEnv()
	const instances = 8
	ns := make([]*notify.Notifier, instances)
	for i := range ns {
		ns[i] = e.notifier(t, fmt.Sprintf("inst-%d", i))
	}
	var wg sync.WaitGroup
	for _, n := range ns {
		wg.Go(func() {
			handle(t, n, opened(notify.ClassMisconfigured, 401, `huntress: HEC replied 401: "Invalid token" [misconfigured]`))
		})
	}
	wg.Wait()
	m := wantMails(t, e.mailer, 1)[0]
	contains(t, "subject", m.Subject, "delivery to hec.huntress.io stopped", "HEC token was refused")
	contains(t, "body", m.Body,
		"paste a new one in EZSSH Settings → Advanced Settings",
		"Test Connection",
		"HTTP 401",
		"No event is lost",
	)

	e.clock.Add(3 * time.Minute)
	for _, n := range ns {
		wg.Go(func() { handle(t, n, recovered()) })
	}
	wg.Wait()
	got := wantMails(t, e.mailer, 2)
	contains(t, "recovery subject", got[1].Subject, "recovered", "route global")
	contains(t, "recovery body", got[1].Body, "has resumed", "Interrupted for: 3m0s", "Recovered:       2026-03-04 10:03:00 UTC")

	// Nothing else is due, however long we wait.
	for range 4 {
		e.clock.Add(15 * time.Minute)
		for _, n := range ns {
			tick(t, n)
		}
	}
	wantMails(t, e.mailer, 2)
}

func TestDigestsAtMostOncePerWindowWithCountsAndSamples(t *testing.T) {
	e := newEnv()
	a, b := e.notifier(t, "a"), e.notifier(t, "b")
	handle(t, a, deadLetter(notify.ReasonRejected, "sub-1", "1"))
	wantMails(t, e.mailer, 1)

	// 8 more in the window, from both instances.
	for i := range 8 {
		e.clock.Add(time.Minute)
		reason, n := notify.ReasonRejected, a
		if i%3 == 0 {
			reason, n = notify.ReasonInvalid, b
		}
		al := deadLetter(reason, fmt.Sprintf("sub-%d", i%2), fmt.Sprint(i+2))
		al.Error = fmt.Sprintf("error number %d", i)
		handle(t, n, al)
	}
	e.clock.Add(7*time.Minute - time.Second) // 14:59 after the incident email
	tick(t, a)
	tick(t, b)
	wantMails(t, e.mailer, 1)

	e.clock.Add(time.Second)
	tick(t, b)
	tick(t, a)
	got := wantMails(t, e.mailer, 2)
	d := got[1]
	contains(t, "digest subject", d.Subject, "8 more audit events dead-lettered", "route global")
	contains(t, "digest body", d.Body,
		"Dead letters:    8 (rejected 5, invalid 3)",
		"sub-0 (4), sub-1 (4)",
		"First:           2026-03-04 10:01:00 UTC",
		"Last:            2026-03-04 10:08:00 UTC",
		"Sample errors",
		"error number 0", "error number 4",
		"9 dead letters in all",
		"--reason rejected", "--reason invalid",
	)
	if strings.Contains(d.Body, "error number 5") {
		t.Error("digest has more than 5 samples")
	}

	// One more right after: it waits for the next window.
	handle(t, a, deadLetter(notify.ReasonUndeliverable, "sub-1", "100"))
	tick(t, b)
	wantMails(t, e.mailer, 2)
	e.clock.Add(15 * time.Minute)
	tick(t, b)
	tick(t, a)
	got = wantMails(t, e.mailer, 3)
	contains(t, "second digest", got[2].Body, "Dead letters:    1 (undeliverable 1)", "--reason undeliverable")

	// A quiet window ends the incident; the next dead letter starts a new one.
	e.clock.Add(15 * time.Minute)
	tick(t, a)
	wantMails(t, e.mailer, 3)
	handle(t, b, deadLetter(notify.ReasonRejected, "sub-9", "200"))
	got = wantMails(t, e.mailer, 4)
	contains(t, "new incident", got[3].Subject, "Huntress refused an audit event", "sub-9")
}

func TestOutageWithDeadLettersDigestAndRecovery(t *testing.T) {
	e := newEnv()
	n := e.notifier(t, "a")
	handle(t, n, opened(notify.ClassRetry, 503, `huntress: HEC replied 503: "Server is busy" [retry]`))
	got := wantMails(t, e.mailer, 1)
	contains(t, "outage", got[0].Body, "Huntress (the HEC) is unreachable or failing", "will be delivered when it recovers")
	handle(t, n, opened(notify.ClassRetry, 503, "again")) // another instance
	e.clock.Add(time.Minute)
	handle(t, n, deadLetter(notify.ReasonInvalid, "sub-1", "1"))
	e.clock.Add(15 * time.Minute)
	tick(t, n)
	got = wantMails(t, e.mailer, 2)
	contains(t, "digest", got[1].Body, "Dead letters:    1 (invalid 1)", "Delivery:        stopped since 2026-03-04 10:00:00 UTC")
	e.clock.Add(time.Minute)
	handle(t, n, recovered())
	got = wantMails(t, e.mailer, 3)
	contains(t, "recovery", got[2].Body, "Interrupted for: 17m0s", "Dead letters:    1 (invalid 1)")
}

func TestFlappingGoesIntoTheDigest(t *testing.T) {
	e := newEnv()
	n := e.notifier(t, "a")
	handle(t, n, opened(notify.ClassRetry, 503, "busy"))
	e.clock.Add(time.Minute)
	handle(t, n, recovered())
	wantMails(t, e.mailer, 2)
	for range 3 {
		e.clock.Add(time.Minute)
		handle(t, n, opened(notify.ClassRetry, 503, "busy"))
		e.clock.Add(time.Minute)
		handle(t, n, recovered())
	}
	wantMails(t, e.mailer, 2)
	e.clock.Add(15 * time.Minute)
	tick(t, n)
	got := wantMails(t, e.mailer, 3)
	contains(t, "digest", got[2].Subject, "interrupted again")
	contains(t, "digest", got[2].Body, "delivery stopped 3 more times soon after it recovered", "Delivery:        resumed at")
}

func TestAgingWarningAtMostOncePerWindow(t *testing.T) {
	e := newEnv()
	n := e.notifier(t, "a")
	handle(t, n, opened(notify.ClassMisconfigured, 404, `huntress: HEC replied 404 [misconfigured]`))
	aging := func(held uint64) notify.Alert {
		return notify.Alert{Kind: notify.KindAging, Route: "global", HeldEvents: held, ExpiresAt: e.clock.Now().Add(20 * time.Hour)}
	}
	handle(t, n, aging(100))
	got := wantMails(t, e.mailer, 2)
	contains(t, "404 advice", got[0].Body, "The HEC URL is wrong", "HTTP Event Collector URL")
	contains(t, "aging", got[1].Subject, "100 held audit events will be lost at 2026-03-05 06:00:00 UTC")
	contains(t, "aging", got[1].Body, "in 20h0m0s", "FORWARDER_STREAM_MAX_AGE", "The HEC URL is wrong")
	for range 10 {
		e.clock.Add(time.Minute)
		handle(t, n, aging(150))
	}
	wantMails(t, e.mailer, 2)
	e.clock.Add(5 * time.Minute)
	tick(t, n)
	got = wantMails(t, e.mailer, 3)
	contains(t, "second aging", got[2].Subject, "150 held audit events")
}

func TestClaimWhoseHolderDiedIsSentByAnother(t *testing.T) {
	e := newEnv()
	stuck := &mailer{block: true, entry: make(chan struct{}, 1)}
	a := e.notifier(t, "a", func(c *notify.Config) { c.Mailer = stuck; c.SendTimeout = time.Hour; c.Lease = 2 * time.Hour })
	b := e.notifier(t, "b")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Handle(ctx, opened(notify.ClassRetry, 0, "dial tcp: connection refused")) }()
	<-stuck.entry // a claimed the email and hangs sending it

	tick(t, b) // the claim is alive: b leaves it alone
	wantMails(t, e.mailer, 0)

	e.clock.Add(2*time.Hour + time.Second)
	tick(t, b)
	got := wantMails(t, e.mailer, 1)
	contains(t, "outage", got[0].Body, "none (no HTTP reply)", "connection refused")

	cancel() // a comes back from the dead: its late outcome must not undo b's
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Hour)
	tick(t, a)
	tick(t, b)
	wantMails(t, e.mailer, 1)
}

func TestFailedEmailIsRetriedLater(t *testing.T) {
	e := newEnv()
	var failing atomic.Bool
	failing.Store(true)
	e.mailer.fail = func(int) error {
		if failing.Load() {
			return errors.New("dial tcp 192.0.2.1:587: connection refused")
		}
		return nil
	}
	n := e.notifier(t, "a")
	handle(t, n, deadLetter(notify.ReasonRejected, "sub-1", "1"))
	wantMails(t, e.mailer, 0)
	s := n.Stats()
	if s.Failed == 0 || s.Sent != 0 {
		t.Fatalf("stats after failure %+v", s)
	}
	failing.Store(false)
	tick(t, n) // not yet: the retry waits
	wantMails(t, e.mailer, 0)
	e.clock.Add(time.Minute)
	tick(t, n)
	wantMails(t, e.mailer, 1)
	if s := n.Stats(); s.Sent != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestEmailIsDroppedAfterMaxAttemptsOrPermanentRefusal(t *testing.T) {
	t.Run("attempts", func(t *testing.T) {
		e := newEnv()
		e.mailer.fail = func(int) error { return errors.New("timeout") }
		n := e.notifier(t, "a", func(c *notify.Config) { c.MaxAttempts = 3 })
		handle(t, n, deadLetter(notify.ReasonRejected, "sub-1", "1"))
		for range 5 {
			e.clock.Add(15 * time.Minute)
			tick(t, n)
		}
		if s := n.Stats(); s.Dropped != 1 {
			t.Errorf("stats %+v", s)
		}
		e.mailer.mu.Lock()
		calls := e.mailer.calls
		e.mailer.fail = nil
		e.mailer.mu.Unlock()
		e.clock.Add(time.Hour)
		tick(t, n)
		wantMails(t, e.mailer, 0)
		if calls < 3 {
			t.Errorf("%d attempts, want at least 3", calls)
		}
	})
	t.Run("permanent", func(t *testing.T) {
		e := newEnv()
		e.mailer.fail = func(int) error { return fmt.Errorf("%w: 550 no such user", notify.ErrPermanent) }
		n := e.notifier(t, "a")
		handle(t, n, deadLetter(notify.ReasonRejected, "sub-1", "1"))
		if s := n.Stats(); s.Dropped != 1 || s.Failed != 1 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestEmailsNeverCarryCredentials(t *testing.T) {
	e := newEnv()
	n := e.notifier(t, "a")
	a := deadLetter(notify.ReasonRejected, "sub-1", "1")
	a.Error = "HEC said: Authorization: Splunk " + token + "\r\nX-Injected: yes"
	handle(t, n, a)
	o := opened(notify.ClassMisconfigured, 401, "echo: Bearer "+token)
	handle(t, n, o)
	for _, m := range wantMails(t, e.mailer, 2) {
		if strings.Contains(m.Body, token) || strings.Contains(m.Subject, token) {
			t.Errorf("token in email:\n%s", m.Body)
		}
		if strings.Contains(m.Body, "\r") || strings.Contains(m.Body, "\nX-Injected") {
			t.Errorf("error text broke a line:\n%q", m.Body)
		}
	}
}

func TestRouteWithoutRecipientsSendsNothing(t *testing.T) {
	e := newEnv()
	n := e.notifier(t, "a", func(c *notify.Config) { c.Recipients = func(string) []string { return nil } })
	handle(t, n, deadLetter(notify.ReasonRejected, "sub-1", "1"))
	wantMails(t, e.mailer, 0)
	if s := n.Stats(); s.Unaddressed != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestHandleRejectsInvalidAlerts(t *testing.T) {
	n := newEnv().notifier(t, "a")
	for _, a := range []notify.Alert{
		{Kind: notify.KindOpened, Route: ""},
		{Kind: notify.KindOpened, Route: "a.b"},
		{Kind: "exploded", Route: "global"},
	} {
		if err := n.Handle(context.Background(), a); !errors.Is(err, notify.ErrInvalidAlert) {
			t.Errorf("Handle(%+v) = %v, want ErrInvalidAlert", a, err)
		}
	}
}

func TestTLSFailureAdvice(t *testing.T) {
	e := newEnv()
	n := e.notifier(t, "a")
	handle(t, n, opened(notify.ClassMisconfigured, 0, "huntress: HEC request failed: tls: failed to verify certificate: x509: certificate signed by unknown authority [misconfigured]"))
	m := wantMails(t, e.mailer, 1)[0]
	contains(t, "tls", m.Subject, "the TLS connection failed")
	contains(t, "tls", m.Body, "its certificate is not trusted")
}

func TestConfigValidate(t *testing.T) {
	if _, err := notify.New(notify.Config{}); err == nil {
		t.Fatal("empty config accepted")
	}
	_, err := notify.New(notify.Config{Mailer: &mailer{}, Store: &notify.MemStore{}, Recipients: func(string) []string { return nil },
		Lease: time.Minute, SendTimeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "lease") {
		t.Errorf("lease not above send timeout: %v", err)
	}
}
