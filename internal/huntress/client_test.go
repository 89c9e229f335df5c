package huntress

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// seenRequest is what a test server saw of one request.
type seenRequest struct {
	header http.Header
	body   []byte // gunzipped
	raw    int    // bytes on the wire
}

// recorder wraps h and records every request (body gunzipped), then replays
// the body to h.
func recorder(t testing.TB, h http.Handler) (http.Handler, func() []seenRequest) {
	var mu sync.Mutex
	var seen []seenRequest
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("read body: %v", err)
			}
			body := raw
			if r.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(raw))
				if err != nil {
					t.Errorf("gunzip: %v", err)
				} else if body, err = io.ReadAll(zr); err != nil {
					t.Errorf("gunzip: %v", err)
				}
			}
			mu.Lock()
			seen = append(seen, seenRequest{header: r.Header.Clone(), body: body, raw: len(raw)})
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(raw))
			h.ServeHTTP(w, r)
		}), func() []seenRequest {
			mu.Lock()
			defer mu.Unlock()
			return append([]seenRequest(nil), seen...)
		}
}

func TestSendDeliversEventsByteForByte(t *testing.T) {
	col := NewCollector(CollectorOptions{Token: testToken})
	h, seen := recorder(t, col)
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := newClient(t, srv.URL+"/services/collector", func(cfg *Config) { cfg.Index = "ezssh" })

	evs := sampleEvents(20)
	evs = append(evs, delivery.Event{Time: time.Now(), Body: []byte("{ \"spaced\" : [1, 2.50, \"\\u00e9\"] }")})
	if err := c.Send(context.Background(), evs); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := col.Events()
	if len(got) != len(evs) {
		t.Fatalf("collector has %d events, want %d", len(got), len(evs))
	}
	for i := range evs {
		if !bytes.Equal(got[i], evs[i].Body) {
			t.Errorf("event %d changed:\n got %s\nwant %s", i, got[i], evs[i].Body)
		}
	}
	reqs := seen()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1 batch", len(reqs))
	}
	r := reqs[0]
	for k, want := range map[string]string{
		"Authorization":    "Splunk " + testToken,
		"Content-Type":     "application/json",
		"Content-Encoding": "gzip",
		"User-Agent":       "ezssh-siem-forwarder",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	var want []byte
	for _, ev := range evs {
		want = c.AppendEnvelope(want, ev)
	}
	if !bytes.Equal(r.body, want) {
		t.Errorf("body is not the concatenated envelopes")
	}
	if r.raw >= len(r.body) {
		t.Errorf("gzip'd body (%d bytes) is not smaller than the envelopes (%d)", r.raw, len(r.body))
	}
}

func TestSendGzipThreshold(t *testing.T) {
	ev := []delivery.Event{{Time: time.Now(), Body: []byte(`{"a":"` + strings.Repeat("x", 100) + `"}`)}}
	size := len(newClient(t, "https://h").AppendEnvelope(nil, ev[0]))
	for _, tc := range []struct {
		name      string
		threshold int
		want      bool
	}{
		{"default 1024, small body", 0, false},
		{"at threshold", size, true},
		{"one above", size + 1, false},
		{"below", size - 1, true},
		{"disabled", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, seen := recorder(t, NewCollector(CollectorOptions{}))
			srv := httptest.NewServer(h)
			defer srv.Close()
			c := newClient(t, srv.URL, func(cfg *Config) { cfg.GzipThreshold = tc.threshold })
			if err := c.Send(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			r := seen()[0]
			if got := r.header.Get("Content-Encoding") == "gzip"; got != tc.want {
				t.Errorf("gzip = %v, want %v (body %d bytes, threshold %d)", got, tc.want, size, tc.threshold)
			}
			if len(r.body) != size {
				t.Errorf("body %d bytes, want %d", len(r.body), size)
			}
		})
	}
}

func TestSendBearerScheme(t *testing.T) {
	_, col := collectorServer(t, CollectorOptions{Token: testToken, AuthScheme: "Bearer"})
	srv, _ := collectorServer(t, CollectorOptions{Token: testToken, AuthScheme: "Bearer"})
	_ = col
	if err := newClient(t, srv.URL).Send(context.Background(), sampleEvents(1)); delivery.ClassOf(err) != delivery.Misconfigured {
		t.Errorf("Splunk scheme to a Bearer-only HEC: %v, want misconfigured", err)
	}
	c := newClient(t, srv.URL, func(cfg *Config) { cfg.AuthScheme = "Bearer" })
	if err := c.Send(context.Background(), sampleEvents(1)); err != nil {
		t.Errorf("Bearer: %v", err)
	}
}

// base64Token is testToken as a server decoding Basic auth might echo it.
var base64Token = base64.StdEncoding.EncodeToString([]byte(testToken))

func TestSendClassifiesReplies(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		header     map[string]string
		class      delivery.Class
		code       int // -1: none
		text       string
		index      int // -1: none
		retryAfter time.Duration
		excerpt    string // substring
	}{
		{"success", 200, `{"text":"Success","code":0}`, nil, 0, 0, "", -1, 0, ""},
		{"204 no body", 204, ``, nil, 0, 0, "", -1, 0, ""},
		{"bad event with index", 400, `{"text":"Invalid data format","code":6,"invalid-event-number":2}`, nil, delivery.Rejected, 6, "Invalid data format", 2, 0, ""},
		{"bad event index out of range", 400, `{"text":"Invalid data format","code":6,"invalid-event-number":3}`, nil, delivery.Rejected, 6, "Invalid data format", -1, 0, ""},
		{"otel: code 6 without index", 400, `{"text":"Invalid data format","code":6}`, nil, delivery.Rejected, 6, "Invalid data format", -1, 0, ""},
		{"no data to a non-empty body", 400, `{"text":"No data","code":5}`, nil, delivery.Rejected, 5, "No data", -1, 0, ""},
		{"400 not JSON", 400, `Bad Request`, nil, delivery.Rejected, -1, "", -1, 0, "Bad Request"},
		{"incorrect index", 400, `{"text":"Incorrect index","code":7,"invalid-event-number":0}`, nil, delivery.Misconfigured, 7, "Incorrect index", 0, 0, ""},
		{"channel missing", 400, `{"text":"Data channel is missing","code":10}`, nil, delivery.Misconfigured, 10, "Data channel is missing", -1, 0, ""},
		{"400 busy", 400, `{"text":"Server is busy","code":9}`, nil, delivery.Retry, 9, "Server is busy", -1, 0, ""},
		{"token required", 401, `{"text":"Token is required","code":2}`, nil, delivery.Misconfigured, 2, "Token is required", -1, 0, ""},
		{"invalid token", 403, `{"text":"Invalid token","code":4}`, nil, delivery.Misconfigured, 4, "Invalid token", -1, 0, ""},
		{"otel echoes the token", 401, "invalid token: Splunk " + testToken + "\n", nil, delivery.Misconfigured, -1, "", -1, 0, "Splunk [REDACTED]"},
		{"echoes base64 token", 401, `{"text":"bad credentials ` + base64Token + `","code":3}`, nil, delivery.Misconfigured, 3, "bad credentials [REDACTED]", -1, 0, "[REDACTED]"},
		{"wrong url", 404, `<html>Not Found</html>`, nil, delivery.Misconfigured, -1, "", -1, 0, "Not Found"},
		{"method", 405, ``, nil, delivery.Misconfigured, -1, "", -1, 0, ""},
		{"too large", 413, `Content-Length of 2000000 too large (maximum is 1000000)`, nil, delivery.TooLarge, -1, "", -1, 0, "too large"},
		{"timeout", 408, ``, nil, delivery.Retry, -1, "", -1, 0, ""},
		{"throttled", 429, `{"text":"HEC queue is at capacity","code":26}`, map[string]string{"Retry-After": "7"}, delivery.Retry, 26, "HEC queue is at capacity", -1, 7 * time.Second, ""},
		{"busy", 503, `{"text":"Server is busy","code":9}`, map[string]string{"Retry-After": "3600"}, delivery.Retry, 9, "Server is busy", -1, 10 * time.Minute, ""},
		{"internal", 500, `{"text":"Internal server error","code":8}`, nil, delivery.Retry, 8, "Internal server error", -1, 0, ""},
		{"bad gateway html", 502, `<html>Bad Gateway</html>`, nil, delivery.Retry, -1, "", -1, 0, "Bad Gateway"},
		{"redirect", 302, ``, map[string]string{"Location": "/elsewhere"}, delivery.Misconfigured, -1, "", -1, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c := newClient(t, srv.URL)
			err := c.Send(context.Background(), sampleEvents(3))
			if hits.Load() != 1 {
				t.Errorf("server saw %d requests, want 1 (redirects are not followed)", hits.Load())
			}
			if tc.class == 0 {
				if err != nil {
					t.Fatalf("Send = %v, want nil", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Send = %v (%T), want *Error", err, err)
			}
			if delivery.ClassOf(err) != tc.class || e.Status != tc.status {
				t.Errorf("class %v status %d, want %v %d", delivery.ClassOf(err), e.Status, tc.class, tc.status)
			}
			if e.HasCode != (tc.code >= 0) || (e.HasCode && e.Code != tc.code) {
				t.Errorf("code %d (has %v), want %d", e.Code, e.HasCode, tc.code)
			}
			if e.Text != tc.text {
				t.Errorf("text %q, want %q", e.Text, tc.text)
			}
			idx, ok := delivery.EventIndexOf(err)
			if ok != (tc.index >= 0) || (ok && idx != tc.index) {
				t.Errorf("EventIndexOf = %d, %v; want %d", idx, ok, tc.index)
			}
			if got := delivery.RetryAfterOf(err); got != tc.retryAfter {
				t.Errorf("RetryAfterOf = %v, want %v", got, tc.retryAfter)
			}
			if !strings.Contains(e.Excerpt, tc.excerpt) {
				t.Errorf("excerpt %q does not contain %q", e.Excerpt, tc.excerpt)
			}
			for _, s := range []string{err.Error(), e.Excerpt, e.Text, fmt.Sprintf("%+v", err)} {
				if strings.Contains(s, testToken) || strings.Contains(s, base64Token) {
					t.Errorf("token leaked: %s", s)
				}
			}
			if !strings.HasPrefix(err.Error(), "huntress: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestErrorIsClassSentinel(t *testing.T) {
	for class, sentinel := range map[delivery.Class]error{
		delivery.Retry: ErrRetry, delivery.Misconfigured: ErrMisconfigured,
		delivery.Rejected: ErrRejected, delivery.TooLarge: ErrTooLarge,
	} {
		err := fmt.Errorf("route x: %w", &Error{Class: class, Status: 500, InvalidEvent: -1})
		for _, other := range []error{ErrRetry, ErrMisconfigured, ErrRejected, ErrTooLarge} {
			if errors.Is(err, other) != (other == sentinel) {
				t.Errorf("class %v: errors.Is(%v) = %v", class, other, !(other == sentinel))
			}
		}
	}
}

func TestExcerptIsBoundedAndScrubbed(t *testing.T) {
	// The token straddles the 256-byte cut: it is scrubbed before the cut.
	body := strings.Repeat("x", 240) + testToken + strings.Repeat("y", 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		io.WriteString(w, body)
	}))
	defer srv.Close()
	err := newClient(t, srv.URL).Send(context.Background(), sampleEvents(1))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	if len(e.Excerpt) > 256 {
		t.Errorf("excerpt is %d bytes", len(e.Excerpt))
	}
	if !strings.HasPrefix(e.Excerpt, strings.Repeat("x", 240)+"[REDACTED]y") {
		t.Errorf("excerpt = %q", e.Excerpt)
	}
	if strings.Contains(e.Excerpt, testToken[:4]) {
		t.Errorf("excerpt keeps a piece of the token: %q", e.Excerpt)
	}

	// The read limit cuts the token.
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		io.WriteString(w, "bad: "+testToken)
	}))
	defer srv2.Close()
	err = newClient(t, srv2.URL, func(c *Config) { c.MaxResponseBytes = 12 }).Send(context.Background(), sampleEvents(1))
	if !errors.As(err, &e) || e.Excerpt != "bad: " {
		t.Errorf("excerpt with a cut token = %q, want %q", e.Excerpt, "bad: ")
	}
}

func TestSendNetworkFailures(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		err := newClient(t, closedURL(t)).Send(context.Background(), sampleEvents(1))
		var e *Error
		if !errors.As(err, &e) || e.Class != delivery.Retry || e.Status != 0 || e.Err == nil {
			t.Fatalf("Send = %#v, want a retryable network *Error", err)
		}
		if _, ok := delivery.EventIndexOf(err); ok {
			t.Error("a network error names an event")
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := httptest.NewTLSServer(NewCollector(CollectorOptions{}))
		defer srv.Close()
		err := newClient(t, srv.URL).Send(context.Background(), sampleEvents(1))
		if delivery.ClassOf(err) != delivery.Misconfigured {
			t.Fatalf("Send = %v, want misconfigured", err)
		}
	})
	t.Run("trusted via TLS config", func(t *testing.T) {
		srv := httptest.NewTLSServer(NewCollector(CollectorOptions{}))
		defer srv.Close()
		c := newClient(t, srv.URL, func(c *Config) { c.TLS = srv.Client().Transport.(*http.Transport).TLSClientConfig })
		if err := c.Send(context.Background(), sampleEvents(1)); err != nil {
			t.Fatalf("Send with the CA: %v", err)
		}
	})
	t.Run("https to a plain http port", func(t *testing.T) {
		srv := httptest.NewServer(NewCollector(CollectorOptions{}))
		defer srv.Close()
		err := newClient(t, strings.Replace(srv.URL, "http://", "https://", 1)).Send(context.Background(), sampleEvents(1))
		if delivery.ClassOf(err) != delivery.Misconfigured {
			t.Fatalf("Send = %v, want misconfigured", err)
		}
	})
	t.Run("response timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
		}))
		defer srv.Close()
		defer close(release)
		c := newClient(t, srv.URL, func(c *Config) { c.Timeout = 50 * time.Millisecond })
		err := c.Send(context.Background(), sampleEvents(1))
		var e *Error
		if !errors.As(err, &e) || e.Class != delivery.Retry || !isTimeout(e.Err) {
			t.Fatalf("Send = %v, want a retryable timeout", err)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		srv, _ := collectorServer(t, CollectorOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := newClient(t, srv.URL).Send(ctx, sampleEvents(1))
		if delivery.ClassOf(err) != delivery.Retry || !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v, want retry wrapping context.Canceled", err)
		}
	})
}

func TestSendReusesOneConnection(t *testing.T) {
	// Error replies with bodies must be drained so the connection is reused.
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(400)
		io.WriteString(w, `{"text":"Invalid data format","code":6,"invalid-event-number":0}`+strings.Repeat(" ", 5000))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newClient(t, srv.URL)
	for range 20 {
		if err := c.Send(context.Background(), sampleEvents(2)); delivery.ClassOf(err) != delivery.Rejected {
			t.Fatalf("Send = %v", err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential requests used %d connections, want 1", n)
	}
}

func TestSendConcurrentBatchesStayIntact(t *testing.T) {
	// Many goroutines share the client and its pools; every batch must
	// arrive exactly as built (run with -race).
	var mu sync.Mutex
	got := map[string]int{}
	srv, _ := collectorServer(t, CollectorOptions{Token: testToken, Keep: -1, OnEvent: func(b []byte, _ time.Time) {
		mu.Lock()
		got[string(b)]++
		mu.Unlock()
	}})
	c := newClient(t, srv.URL, func(c *Config) { c.GzipThreshold = 4096 }) // mix of gzip'd and plain
	const workers, batches = 8, 20
	var wg sync.WaitGroup
	want := map[string]int{}
	for w := range workers {
		var evs [][]delivery.Event
		for b := range batches {
			n := 1 + (w*batches+b)%7
			batch := make([]delivery.Event, n)
			for i := range batch {
				batch[i] = delivery.Event{Time: time.Now(), Body: sampleEvent(w*10000 + b*100 + i)}
				want[string(batch[i].Body)]++
			}
			evs = append(evs, batch)
		}
		wg.Go(func() {
			for _, batch := range evs {
				if err := c.Send(context.Background(), batch); err != nil {
					t.Errorf("Send: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if len(got) != len(want) {
		t.Fatalf("received %d distinct events, want %d", len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("event received %d times, want %d", got[k], n)
		}
	}
}

// discardTransport consumes request bodies and answers 200, so that an
// allocation count sees only the client's own work.
type discardTransport struct{}

func (discardTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

func TestSendAllocationsDoNotGrowWithEvents(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	c := newClient(t, "https://hec.example.com")
	c.hc.Transport = discardTransport{}
	allocs := func(n int) float64 {
		evs := sampleEvents(n)
		c.Send(context.Background(), evs) // warm the pools
		return testing.AllocsPerRun(50, func() {
			if err := c.Send(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(10), allocs(500)
	t.Logf("allocations per Send: %v for 10 events, %v for 500", small, large)
	if large > small+2 || small > 60 {
		t.Errorf("allocations per Send: %v for 10 events, %v for 500: want a small constant", small, large)
	}
}

func TestSendNoEventsIsANoOp(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	if err := newClient(t, srv.URL).Send(context.Background(), nil); err != nil || hits.Load() != 0 {
		t.Errorf("Send(nil) = %v with %d requests", err, hits.Load())
	}
}

func TestProbe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   delivery.Class
	}{
		{"splunk no data", 400, `{"text":"No data","code":5}`, 0},
		{"otel 200", 200, `{"text":"Success","code":0}`, 0},
		{"400 bad format", 400, `{"text":"Invalid data format","code":6}`, delivery.Rejected},
		{"400 not JSON", 400, `No data`, delivery.Rejected},
		{"wrong token", 403, `{"text":"Invalid token","code":4}`, delivery.Misconfigured},
		{"otel wrong token", 401, `invalid token ` + testToken, delivery.Misconfigured},
		{"down", 503, `{"text":"Server is busy","code":9}`, delivery.Retry},
		{"wrong url", 404, ``, delivery.Misconfigured},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if len(b) != 0 || r.ContentLength != 0 || r.Header.Get("Content-Encoding") != "" {
					t.Errorf("probe sent %d bytes (Content-Length %d, encoding %q)", len(b), r.ContentLength, r.Header.Get("Content-Encoding"))
				}
				if r.Header.Get("Authorization") != "Splunk "+testToken {
					t.Errorf("probe without the token")
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			err := newClient(t, srv.URL).Probe(context.Background())
			if got := delivery.ClassOf(err); got != tc.want {
				t.Errorf("Probe = %v (class %v), want class %v", err, got, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("token leaked: %v", err)
			}
		})
	}
	t.Run("collector", func(t *testing.T) {
		srv, col := collectorServer(t, CollectorOptions{Token: testToken})
		if err := newClient(t, srv.URL).Probe(context.Background()); err != nil {
			t.Errorf("Probe to a healthy collector: %v", err)
		}
		if col.Stats().Events != 0 {
			t.Error("Probe delivered an event")
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		if err := newClient(t, closedURL(t)).Probe(context.Background()); delivery.ClassOf(err) != delivery.Retry {
			t.Errorf("Probe = %v, want retry", err)
		}
	})
}

func TestClientDescribesDestinationWithoutToken(t *testing.T) {
	c := newClient(t, "https://hec.huntress.io/services/collector")
	if c.Host() != "hec.huntress.io" || c.URL() != "https://hec.huntress.io/services/collector/event" {
		t.Errorf("Host %q URL %q", c.Host(), c.URL())
	}
	for _, s := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c)} {
		if strings.Contains(s, testToken) {
			t.Errorf("token leaked: %s", s)
		}
	}
}
