package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/embedded"
	"github.com/ezssh/siem-forwarder/internal/embedded/embeddedtest"
	"github.com/ezssh/siem-forwarder/internal/huntress"
)

// natsServer is an embedded JetStream server with the audit stream and a
// client connection of the test's own.
type natsServer struct {
	srv *embedded.Server
	dir string // the store
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startNATS(t *testing.T) *natsServer {
	t.Helper()
	dir := t.TempDir()
	srv := embeddedtest.Start(t, embedded.Config{StoreDir: dir})
	return connectNATS(t, srv, dir)
}

// connectNATS connects the test to srv, whose store is dir, and makes sure
// the audit stream exists.
func connectNATS(t *testing.T, srv *embedded.Server, dir string) *natsServer {
	t.Helper()
	nc, js := embeddedtest.Connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := audit.EnsureStream(ctx, js, audit.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return &natsServer{srv: srv, dir: dir, nc: nc, js: js}
}

func (s *natsServer) url() string { return s.srv.URL() }

// publish publishes n valid events spread over five subscriptions and returns
// their EventIds.
func (s *natsServer) publish(t *testing.T, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	start := time.Now()
	p := audit.NewPublisher(s.js, audit.PublisherOptions{})
	ids := make([]string, 0, n)
	for i := range n {
		e := &audit.Event{
			EventType:             audit.EventTypeSSH,
			SubscriptionId:        fmt.Sprintf("e2e-sub-%d", i%5),
			ActionPerformed:       "Certificate Issued",
			RequestorFriendlyName: fmt.Sprintf("user %d", i),
			UserPublicKey:         "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ0ZXN0a2V5Zm9yZTJldGVzdHNvbmx5AAAAAAAA e2e",
			Criticality:           audit.CriticalityLow,
		}
		if err := p.PublishAsync(ctx, e); err != nil {
			t.Fatalf("publish event %d: %v", i, err)
		}
		ids = append(ids, e.EventId)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("publish: %v", err)
	}
	t.Logf("published %d events in %v", n, time.Since(start).Round(time.Millisecond))
	return ids
}

// consumer returns the current state of the durable consumer name, or nil
// while it does not exist.
func (s *natsServer) consumer(t *testing.T, name string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := s.js.Consumer(ctx, audit.StreamName, name)
	if err != nil {
		return nil
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil
	}
	return info
}

// drained reports whether consumer name has acknowledged every message.
func (s *natsServer) drained(t *testing.T, name string) bool {
	info := s.consumer(t, name)
	return info != nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
}

// hec is an httptest HEC collector that counts what it accepted, by EventId.
type hec struct {
	srv *httptest.Server
	col *huntress.Collector

	mu       sync.Mutex
	seen     map[string]int // EventId → times accepted
	accepted int            // events accepted, duplicates included
	foreign  int            // accepted events that are not valid audit events
}

// failHook is a collector's Fail hook (see huntress.CollectorOptions) that
// also gets the collector's tally.
type failHook func(h *hec, r *http.Request, events [][]byte) (status int, reply string, ok bool)

// startHEC starts a collector that requires hecToken. fail, when not nil,
// decides about each request first.
func startHEC(t *testing.T, fail failHook) *hec {
	t.Helper()
	h := &hec{seen: make(map[string]int)}
	opts := huntress.CollectorOptions{Token: hecToken, Keep: -1, OnEvent: h.record}
	if fail != nil {
		opts.Fail = func(r *http.Request, events [][]byte) (int, string, bool) { return fail(h, r, events) }
	}
	h.col = huntress.NewCollector(opts)
	h.srv = httptest.NewServer(h.col)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hec) url() string { return h.srv.URL + "/services/collector" }

func (h *hec) record(body []byte, _ time.Time) {
	f, err := audit.Inspect(body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.accepted++
	if err != nil {
		h.foreign++
		return
	}
	h.seen[f.EventId]++
}

// distinct is the number of different events accepted.
func (h *hec) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// tally is what a set of collectors accepted, together.
type tally struct {
	distinct   int // different EventIds
	accepted   int // events, duplicates included
	duplicates int // accepted - distinct
	foreign    int // events that were not valid audit events
	missing    int // of the expected EventIds, those never accepted
	unexpected int // EventIds accepted that were never published
}

func countAll(ids []string, hecs ...*hec) tally {
	seen := make(map[string]int)
	var tl tally
	for _, h := range hecs {
		h.mu.Lock()
		for id, n := range h.seen {
			seen[id] += n
		}
		tl.accepted += h.accepted
		tl.foreign += h.foreign
		h.mu.Unlock()
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
		if seen[id] == 0 {
			tl.missing++
		}
	}
	for id := range seen {
		if !want[id] {
			tl.unexpected++
		}
	}
	tl.distinct = len(seen)
	tl.duplicates = tl.accepted - tl.foreign - tl.distinct
	return tl
}

// checkComplete fails the test unless the collectors together accepted every
// id, and nothing else.
func checkComplete(t *testing.T, tl tally) {
	t.Helper()
	if tl.missing != 0 || tl.unexpected != 0 || tl.foreign != 0 {
		t.Errorf("collectors: %d events missing, %d unexpected EventIds, %d events that are not audit events", tl.missing, tl.unexpected, tl.foreign)
	}
}

// logTallyOnFailure logs what the collectors accepted if the test fails.
func logTallyOnFailure(t *testing.T, ids []string, hecs ...*hec) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("collectors: %+v", countAll(ids, hecs...))
		}
	})
}
