package pipeline_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/embedded"
	"github.com/ezssh/siem-forwarder/internal/embedded/embeddedtest"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

const testToken = "11111111-2222-3333-4444-555555555555"

// startJetStream starts an embedded server and returns a JetStream context on
// a stream that exists.
func startJetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	srv := embeddedtest.Start(t, embedded.Config{})
	_, js := embeddedtest.Connect(t, srv.URL())
	if _, err := audit.EnsureStream(context.Background(), js, audit.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return js
}

// eventBody returns a valid event body for subscription sub with id id.
func eventBody(id, sub string, n int) []byte {
	return fmt.Appendf(nil, `{"EventId":%q,"EventType":"EZSSH_SSH","RequestDate":%q,"SubscriptionId":%q,"ActionPerformed":"Certificate Issued","RequestorFriendlyName":"user %d","Extra":{"n":%d,"nested":[1,2,{"a":"é\u00e9"}]}}`,
		id, time.Now().UTC().Format(time.RFC3339Nano), sub, n, n)
}

// publishN publishes n events over subs subscriptions and returns their bodies
// by EventId.
func publishN(t *testing.T, js jetstream.JetStream, n, subs int, prefix string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	p := audit.NewPublisher(js, audit.PublisherOptions{})
	out := make(map[string][]byte, n)
	for i := range n {
		id := fmt.Sprintf("%s-%06d", prefix, i)
		b := eventBody(id, fmt.Sprintf("sub-%02d", i%subs), i)
		out[id] = b
		if err := p.PublishRawAsync(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return out
}

// hec is a collector behind httptest that records every event it accepts by
// EventId.
type hec struct {
	*huntress.Collector
	srv *httptest.Server

	mu  sync.Mutex
	got map[string][][]byte
}

func startHEC(t *testing.T, opts huntress.CollectorOptions) *hec {
	t.Helper()
	h := &hec{got: map[string][][]byte{}}
	opts.Token = testToken
	opts.OnEvent = func(body []byte, _ time.Time) {
		f, err := audit.Inspect(body)
		if err != nil {
			t.Errorf("HEC received an invalid event: %v", err)
			return
		}
		h.mu.Lock()
		h.got[f.EventId] = append(h.got[f.EventId], body)
		h.mu.Unlock()
	}
	h.Collector = huntress.NewCollector(opts)
	h.srv = httptest.NewServer(h.Collector)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hec) unique() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.got)
}

// count is how often event id arrived.
func (h *hec) count(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.got[id])
}

// check asserts every published event arrived exactly once, byte for byte.
func (h *hec) check(t *testing.T, want map[string][]byte) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.got) != len(want) {
		t.Errorf("HEC has %d distinct events, want %d", len(h.got), len(want))
	}
	bad := 0
	for id, body := range want {
		got := h.got[id]
		switch {
		case len(got) == 0:
			bad++
			if bad < 5 {
				t.Errorf("event %s never arrived", id)
			}
		case len(got) > 1:
			bad++
			if bad < 5 {
				t.Errorf("event %s arrived %d times", id, len(got))
			}
		case string(got[0]) != string(body):
			bad++
			if bad < 5 {
				t.Errorf("event %s changed on the way:\n got %s\nwant %s", id, got[0], body)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d events wrong", bad, len(want))
	}
}

func (h *hec) client(t *testing.T) *huntress.Client {
	t.Helper()
	c, err := huntress.New(huntress.Config{URL: h.srv.URL, Token: testToken, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fastConfig makes breakers and retries quick enough for tests.
func fastConfig() pipeline.Config {
	return pipeline.Config{
		RetryInitial:    20 * time.Millisecond,
		RetryMax:        200 * time.Millisecond,
		PauseMin:        200 * time.Millisecond,
		PauseMax:        time.Second,
		ProbeTimeout:    2 * time.Second,
		BreakerFailures: 3,
		ShutdownTimeout: 5 * time.Second,
	}
}

// startForwarder runs a forwarder until the test ends or stop is called;
// stop returns when Run returned.
func startForwarder(t *testing.T, js jetstream.JetStream, cfg pipeline.Config, routes ...pipeline.Route) (f *pipeline.Forwarder, stop func()) {
	t.Helper()
	f, err := pipeline.New(js, cfg, routes, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	eventually(t, 10*time.Second, "forwarder ready", f.Ready)
	return f, stop
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func consumerInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(context.Background(), audit.StreamName, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}
