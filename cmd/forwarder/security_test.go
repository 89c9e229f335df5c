package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/natsconn"
	"github.com/ezssh/siem-forwarder/internal/notify/smtptest"
	"github.com/ezssh/siem-forwarder/internal/notifyfeed"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

// The server configuration of docs/nats-security.md sits between these
// markers; the test runs that very text, so the doc cannot drift from what
// works.
const (
	securityDoc       = "../../docs/nats-security.md"
	securityConfBegin = "<!-- nats-security.conf begin -->"
	securityConfEnd   = "<!-- nats-security.conf end -->"
)

// docServerConfig returns the nats-server configuration of the doc.
func docServerConfig(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(securityDoc)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), securityConfBegin)
	conf, _, ok2 := strings.Cut(rest, securityConfEnd)
	if !ok || !ok2 {
		t.Fatalf("%s has no configuration between %q and %q", securityDoc, securityConfBegin, securityConfEnd)
	}
	var lines []string
	for _, l := range strings.Split(conf, "\n") {
		if !strings.HasPrefix(l, "```") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// securityUsers are the doc's users and the passwords the test gives them
// through the environment variables the doc's configuration reads.
type securityUsers struct {
	admin, forwarder, publisher string
}

// startDocServer starts an embedded server from the doc's configuration, on a
// random port with its store in a temporary folder.
func startDocServer(t *testing.T) (string, securityUsers) {
	t.Helper()
	pw := func(env string) string {
		b := make([]byte, 12)
		rand.Read(b)
		p := "pw-" + hex.EncodeToString(b)
		t.Setenv(env, p)
		return p
	}
	users := securityUsers{
		admin:     pw("EZSSH_ADMIN_PASSWORD"),
		forwarder: pw("EZSSH_FORWARDER_PASSWORD"),
		publisher: pw("EZSSH_PUBLISHER_SUB_1234_PASSWORD"),
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigString(docServerConfig(t)); err != nil {
		t.Fatalf("the configuration in %s does not load: %v", securityDoc, err)
	}
	if !opts.JetStream || !opts.SyncAlways {
		t.Fatalf("the configuration in %s must enable JetStream with sync_interval: always", securityDoc)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("NATS server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL(), users
}

// connectAs connects as user, with the inbox prefix the doc gives it (none
// for admin), through natsconn, logging the connection's asynchronous errors
// (permission violations) to log.
func connectAs(t *testing.T, url, user, password string, log *lockedBuffer) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	o := natsconn.Options{URL: url, User: user, Password: password}
	if user != "admin" {
		o.InboxPrefix = "_INBOX." + user
	}
	l := slog.New(slog.DiscardHandler)
	if log != nil {
		l = slog.New(slog.NewTextHandler(log, nil))
	}
	nc, err := o.Connect(context.Background(), "security-test-"+user, l)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// forwarderProc is `forwarder run` running in process as the doc's forwarder
// user.
type forwarderProc struct {
	log  *lockedBuffer
	done chan error
	stop context.CancelFunc
}

func startForwarderAs(t *testing.T, args []string) *forwarderProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &forwarderProc{log: &lockedBuffer{}, done: make(chan error, 1), stop: cancel}
	go func() { p.done <- run(ctx, append([]string{"run"}, args...), p.log, p.log) }()
	t.Cleanup(func() {
		p.stop()
		<-p.done
	})
	dlqEventually(t, 30*time.Second, "the forwarder to start", func() bool {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("forwarder stopped: %v\n%s", err, p.log.String())
		default:
		}
		return strings.Contains(p.log.String(), "forwarder started")
	})
	return p
}

// shutdown stops the forwarder and checks it stopped cleanly.
func (p *forwarderProc) shutdown(t *testing.T) {
	t.Helper()
	p.stop()
	if err := <-p.done; err != nil {
		t.Fatalf("forwarder: %v\n%s", err, p.log.String())
	}
	p.done <- nil
}

// TestLeastPrivilegeAccountsFromDoc runs the forwarder and a publisher with
// the least-privilege users of docs/nats-security.md, against a server
// started from the doc's own configuration: events the publisher sends reach
// the global route's HEC and, through a route the admin put in EZSSH_SIEM, the
// subscription's HEC; an event that HEC refuses is dead-lettered and emailed
// about; the publisher may not publish for another subscription nor read
// anyone's events or replies; the forwarder, on a fresh server and again on
// a restart over what exists, never steps outside its permissions; and one
// given other stream settings fails rather than change the stream.
func TestLeastPrivilegeAccountsFromDoc(t *testing.T) {
	url, users := startDocServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	globalHEC := huntress.NewCollector(huntress.CollectorOptions{Token: "global-token"})
	var subDown atomic.Bool
	subHEC := huntress.NewCollector(huntress.CollectorOptions{Token: "sub-token",
		RejectEvent: func(body []byte) bool { return bytes.Contains(body, []byte("refuse-me")) },
		Fail: func(*http.Request, [][]byte) (int, string, bool) {
			return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, subDown.Load()
		}})
	globalSrv, subSrv := httptest.NewServer(globalHEC), httptest.NewServer(subHEC)
	t.Cleanup(globalSrv.Close)
	t.Cleanup(subSrv.Close)
	mail := smtptest.Start(t, smtptest.Options{})

	passwordFile := filepath.Join(t.TempDir(), "nats-password")
	if err := os.WriteFile(passwordFile, []byte(users.forwarder+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--nats-url", url, "--nats-user", "forwarder", "--nats-password-file", passwordFile, "--nats-inbox-prefix", "_INBOX.forwarder",
		"--http-addr", "", "--hec-url", globalSrv.URL, "--hec-token", "global-token",
		"--smtp-url", "smtp://" + mail.Addr(), "--smtp-from", "forwarder@example.com",
		"--admin-emails", "soc@example.com", "--notify-window", "1s",
		// Open a breaker at once and warn about held events at once, so the
		// outage below pauses, checks the oldest held event and resumes.
		"--breaker-failures", "1", "--retry-max", "500ms", "--pause-min", "1s", "--aging-warning", "8760h",
	}

	// A fresh server: the forwarder creates its streams and buckets.
	fwd := startForwarderAs(t, args)
	_, adminJS := connectAs(t, url, "admin", users.admin, nil)
	kv, err := adminJS.KeyValue(ctx, routes.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	entry := &routes.Entry{Enabled: true, Provider: "huntress", HECURL: subSrv.URL, HECToken: "sub-token",
		AdminEmails: []string{"sub-admin@example.com"}, UpdatedAt: time.Now().Add(-time.Second)}
	b, err := entry.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "sub-1234", b); err != nil {
		t.Fatal(err)
	}
	dlqEventually(t, 20*time.Second, "the route from EZSSH_SIEM to get its consumer, and the notifier its", func() bool {
		_, err := adminJS.Consumer(ctx, audit.StreamName, "huntress-sub-1234")
		_, err2 := adminJS.Consumer(ctx, "EZSSH_AUDIT_DLQ", "notifier") // it mails only what comes after it
		return err == nil && err2 == nil
	})

	pubLog := &lockedBuffer{}
	pubNC, pubJS := connectAs(t, url, "publisher-sub-1234", users.publisher, pubLog)
	pub := audit.NewPublisher(pubJS, audit.PublisherOptions{})
	var ids []string
	for i := range 20 {
		e := &audit.Event{EventType: audit.EventTypeSSH, SubscriptionId: "sub-1234", ActionPerformed: "Certificate Issued"}
		if i == 7 {
			e.RequestorFriendlyName = "refuse-me"
		}
		if _, err := pub.Publish(ctx, e); err != nil {
			t.Fatalf("publisher: %v", err)
		}
		ids = append(ids, e.EventId)
	}
	dlqEventually(t, 30*time.Second, "the events at both HECs", func() bool {
		return globalHEC.Stats().Events == 20 && subHEC.Stats().Events == 19
	})

	// The refused event is dead-lettered, and the route's admins told.
	dlqEventually(t, 20*time.Second, "the dead letter", func() bool {
		m, err := lastMsg(ctx, adminJS, "EZSSH_AUDIT_DLQ", pipeline.DLQSubjectPrefix+".>")
		return err == nil && m.Header.Get(pipeline.HeaderReason) == "rejected" && bytes.Contains(m.Data, []byte(ids[7]))
	})
	defer func() {
		if t.Failed() {
			t.Logf("forwarder log:\n%s", fwd.log.String())
		}
	}()
	dlqEventually(t, 30*time.Second, "the email to the route's admins", func() bool {
		for _, m := range mail.Messages() {
			if strings.Contains(strings.Join(m.To, ","), "sub-admin@example.com") {
				return true
			}
		}
		return false
	})

	// The publisher may publish only its own subscription's events, and read
	// none: neither from their subjects nor from the replies the forwarder
	// gets.
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = pub.Publish(pctx, &audit.Event{EventType: audit.EventTypeSSH, SubscriptionId: "sub-5678"})
	pcancel()
	if err == nil {
		t.Fatal("the publisher of sub-1234 published an event of sub-5678")
	}
	for _, subject := range []string{"ezssh.audit.>", "_INBOX.>", "_INBOX.forwarder.>"} {
		if _, err := pubNC.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
	}
	dlqEventually(t, 10*time.Second, "the server to refuse the publisher", func() bool {
		l := strings.ReplaceAll(strings.ToLower(pubLog.String()), `\"`, `"`)
		return strings.Contains(l, `permissions violation for publish to "ezssh.audit.sub-5678.ssh"`) &&
			strings.Contains(l, `permissions violation for subscription to "ezssh.audit.>"`) &&
			strings.Contains(l, `permissions violation for subscription to "_inbox.>"`) &&
			strings.Contains(l, `permissions violation for subscription to "_inbox.forwarder.>"`)
	})
	if m, err := lastMsg(ctx, adminJS, audit.StreamName, "ezssh.audit.sub-5678.>"); err == nil {
		t.Fatalf("the stream stored the refused event: %s", m.Data)
	}
	// An outage of the subscription's HEC: its consumer is paused on the
	// server, the state changes stored for the notifier; the route resumes
	// when the HEC is back.
	subDown.Store(true)
	if _, err := pub.Publish(ctx, &audit.Event{EventType: audit.EventTypeSSH, SubscriptionId: "sub-1234"}); err != nil {
		t.Fatal(err)
	}
	dlqEventually(t, 30*time.Second, "the route paused, its outage and aging stored", func() bool {
		c, err := adminJS.Consumer(ctx, audit.StreamName, "huntress-sub-1234")
		if err != nil || !c.CachedInfo().Paused {
			return false
		}
		_, err1 := lastMsg(ctx, adminJS, "EZSSH_AUDIT_DLQ", pipeline.RouteEventSubject("sub-1234", pipeline.StateOpened))
		_, err2 := lastMsg(ctx, adminJS, "EZSSH_AUDIT_DLQ", pipeline.RouteEventSubject("sub-1234", pipeline.StateAging))
		return err1 == nil && err2 == nil
	})
	subDown.Store(false)
	dlqEventually(t, 30*time.Second, "the route resumed", func() bool {
		_, err := lastMsg(ctx, adminJS, "EZSSH_AUDIT_DLQ", pipeline.RouteEventSubject("sub-1234", pipeline.StateRecovered))
		return err == nil && subHEC.Stats().Events == 20 && globalHEC.Stats().Events == 21
	})
	// Deleting the route from EZSSH_SIEM deletes its consumer.
	if err := kv.Delete(ctx, "sub-1234"); err != nil {
		t.Fatal(err)
	}
	dlqEventually(t, 20*time.Second, "the deleted route's consumer gone", func() bool {
		_, err := adminJS.Consumer(ctx, audit.StreamName, "huntress-sub-1234")
		return errors.Is(err, jetstream.ErrConsumerNotFound) && strings.Contains(fwd.log.String(), "route deleted")
	})
	fwd.shutdown(t)
	assertNoViolations(t, "first start", fwd.log.String())

	// What the forwarder does only now and then, done here with its
	// credentials: the notifier's scan of its state (every 30 s) and the
	// bookkeeping of messages suspected of crashing it.
	fwdLog := &lockedBuffer{}
	_, fwdJS := connectAs(t, url, "forwarder", users.forwarder, fwdLog)
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second) // a refused request only times out
	defer rcancel()
	store, err := notifyfeed.OpenStore(rctx, fwdJS, notifyfeed.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := store.Keys(rctx); err != nil || len(keys) == 0 {
		t.Errorf("the forwarder lists the notifier's state: %v, %v", keys, err)
	}
	suspects, err := pipeline.EnsureSuspectBucket(rctx, fwdJS, "EZSSH_FORWARDER_SUSPECTS", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := suspects.Put(rctx, "huntress.42", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if e, err := suspects.Get(rctx, "huntress.42"); err != nil || string(e.Value()) != "1" {
		t.Fatalf("suspect record: %v", err)
	}
	if err := suspects.Purge(rctx, "huntress.42"); err != nil {
		t.Fatal(err)
	}
	assertNoViolations(t, "state buckets", fwdLog.String())

	// A restart over the streams, buckets and consumers that exist now
	// needs no permission to change them.
	fwd = startForwarderAs(t, args)
	if _, err := pub.Publish(ctx, &audit.Event{EventType: audit.EventTypeGit, SubscriptionId: "sub-1234"}); err != nil {
		t.Fatal(err)
	}
	dlqEventually(t, 30*time.Second, "the event after the restart", func() bool {
		return globalHEC.Stats().Events == 22
	})
	fwd.shutdown(t)
	assertNoViolations(t, "restart", fwd.log.String())

	// Other stream settings than the stream has: the forwarder may not
	// change them, and says so instead of running on settings it was not
	// given. Without a deadline of its own, as in main, a refused request
	// fails after JetStream's default timeout (5 s).
	var changed lockedBuffer
	err = run(context.Background(), append([]string{"run"}, append(args, "--stream-max-age", "48h")...), &changed, &changed)
	if err == nil || !strings.Contains(strings.ReplaceAll(changed.String(), `\"`, `"`), `Permissions Violation for Publish to "$JS.API.STREAM.UPDATE.EZSSH_AUDIT"`) {
		t.Fatalf("a forwarder with another --stream-max-age: err = %v, log:\n%s", err, changed.String())
	}
	if s, err := lastStreamMaxAge(ctx, adminJS); err != nil || s != 30*24*time.Hour {
		t.Fatalf("the stream's max age is %v (%v), want it unchanged", s, err)
	}
}

func lastStreamMaxAge(ctx context.Context, js jetstream.JetStream) (time.Duration, error) {
	s, err := js.Stream(ctx, audit.StreamName)
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().Config.MaxAge, nil
}

func lastMsg(ctx context.Context, js jetstream.JetStream, stream, subject string) (*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.GetLastMsgForSubject(ctx, subject)
}

// assertNoViolations fails when the forwarder's log shows the server refused
// it anything, or a heartbeat could not be written: the doc's permissions
// must cover everything the forwarder does.
func assertNoViolations(t *testing.T, phase, log string) {
	t.Helper()
	for _, bad := range []string{"permissions violation", "heartbeat not", "level=ERROR", "cannot"} {
		if strings.Contains(strings.ToLower(log), strings.ToLower(bad)) {
			t.Errorf("%s: the forwarder's log shows %q:\n%s", phase, bad, log)
		}
	}
}
