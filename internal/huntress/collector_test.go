package huntress

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// post sends body to the collector handler and returns the reply.
func post(t testing.TB, h http.Handler, method, path, auth string, body []byte, gzipped bool) (int, string, http.Header) {
	t.Helper()
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	if gzipped {
		r.Header.Set("Content-Encoding", "gzip")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String(), w.Header()
}

func TestCollectorReplies(t *testing.T) {
	good := []byte(`{"time":1.5,"event":{"a":1}} {"event":"text"}` + "\n" + `{"event":[1,2]}`)
	auth := "Splunk " + testToken
	for _, tc := range []struct {
		name    string
		method  string
		path    string
		auth    string
		body    []byte
		gzipped bool
		status  int
		reply   string
		events  int
	}{
		{"success", "POST", "/services/collector", auth, good, false, 200, `{"text":"Success","code":0}`, 3},
		{"event endpoint", "POST", "/services/collector/event", auth, good, false, 200, `{"text":"Success","code":0}`, 3},
		{"bearer", "POST", "/services/collector/event", "Bearer " + testToken, good, false, 200, `{"text":"Success","code":0}`, 3},
		{"scheme case", "POST", "/services/collector/event", "splunk " + testToken, good, false, 200, `{"text":"Success","code":0}`, 3},
		{"gzip", "POST", "/services/collector/event", auth, gz(t, good), true, 200, `{"text":"Success","code":0}`, 3},
		{"no token", "POST", "/services/collector", "", good, false, 401, `{"text":"Token is required","code":2}`, 0},
		{"basic", "POST", "/services/collector", "Basic " + testToken, good, false, 401, `{"text":"Invalid authorization","code":3}`, 0},
		{"no scheme", "POST", "/services/collector", testToken, good, false, 401, `{"text":"Invalid authorization","code":3}`, 0},
		{"wrong token", "POST", "/services/collector", "Splunk nope", good, false, 403, `{"text":"Invalid token","code":4}`, 0},
		{"empty", "POST", "/services/collector", auth, nil, false, 400, `{"text":"No data","code":5}`, 0},
		{"blank", "POST", "/services/collector", auth, []byte(" \n "), false, 400, `{"text":"No data","code":5}`, 0},
		{"gzip'd empty", "POST", "/services/collector", auth, gz(t, nil), true, 400, `{"text":"No data","code":5}`, 0},
		{"gzip header, plain body", "POST", "/services/collector", auth, good, true, 400, `{"text":"Invalid data format","code":6}`, 0},
		{"malformed second", "POST", "/services/collector", auth, []byte(`{"event":1}{"event":`), false, 400, `{"text":"Invalid data format","code":6,"invalid-event-number":1}`, 0},
		{"not JSON", "POST", "/services/collector", auth, []byte(`hello`), false, 400, `{"text":"Invalid data format","code":6,"invalid-event-number":0}`, 0},
		{"missing event", "POST", "/services/collector", auth, []byte(`{"event":1}{"time":2}`), false, 400, `{"text":"Event field is required","code":12,"invalid-event-number":1}`, 0},
		{"null event", "POST", "/services/collector", auth, []byte(`{"event":null}`), false, 400, `{"text":"Event field is required","code":12,"invalid-event-number":0}`, 0},
		{"blank event", "POST", "/services/collector", auth, []byte(`{"event":1}{"event":2}{"event":""}`), false, 400, `{"text":"Event field cannot be blank","code":13,"invalid-event-number":2}`, 0},
		{"wrong path", "POST", "/services/collector/raw", auth, good, false, 404, `{"text":"The requested URL was not found on this server.","code":404}`, 0},
		{"GET", "GET", "/services/collector", auth, nil, false, 405, `{"text":"Method not allowed"}`, 0},
		{"health", "GET", "/services/collector/health", "", nil, false, 200, `{"text":"HEC is healthy","code":17}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := NewCollector(CollectorOptions{Token: testToken})
			status, reply, _ := post(t, col, tc.method, tc.path, tc.auth, tc.body, tc.gzipped)
			if status != tc.status || reply != tc.reply {
				t.Errorf("reply %d %s, want %d %s", status, reply, tc.status, tc.reply)
			}
			if n := len(col.Events()); n != tc.events {
				t.Errorf("recorded %d events, want %d", n, tc.events)
			}
		})
	}
}

func TestCollectorKeepsEventBytes(t *testing.T) {
	col := NewCollector(CollectorOptions{})
	events := []string{`{ "a" : 1 , "b":"\u00e9<>" }`, `"text"`, `[1, 2.50]`, `{"nested":{"x":[{}]}}`}
	var body []byte
	for _, e := range events {
		body = append(body, `{"time":1,"host":"h","event":`+e+"}\n"...)
	}
	if status, reply, _ := post(t, col, "POST", "/services/collector", "", body, false); status != 200 {
		t.Fatalf("%d %s", status, reply)
	}
	got := col.Events()
	for i, e := range events {
		if string(got[i]) != e {
			t.Errorf("event %d = %s, want %s", i, got[i], e)
		}
	}
	if s := col.Stats(); s.Requests != 1 || s.Accepted != 1 || s.Events != 4 || s.Bytes != int64(len(body)) {
		t.Errorf("stats %+v", s)
	}
}

func TestCollectorKeep(t *testing.T) {
	send := func(col *Collector, from, to int) {
		var body []byte
		for i := from; i < to; i++ {
			body = append(body, `{"event":`+string(rune('0'+i))+`}`...)
		}
		post(t, col, "POST", "/services/collector", "", body, false)
	}
	col := NewCollector(CollectorOptions{Keep: 3})
	send(col, 0, 2)
	send(col, 2, 7)
	var got []string
	for _, e := range col.Events() {
		got = append(got, string(e))
	}
	if strings.Join(got, ",") != "4,5,6" {
		t.Errorf("Events() = %v, want the last 3 oldest first", got)
	}
	none := NewCollector(CollectorOptions{Keep: -1})
	send(none, 0, 3)
	if len(none.Events()) != 0 || none.Stats().Events != 3 {
		t.Errorf("Keep -1 kept %d events, counted %d", len(none.Events()), none.Stats().Events)
	}
}

func TestCollectorFaultInjection(t *testing.T) {
	var mu sync.Mutex
	down := true
	srv, col := collectorServer(t, CollectorOptions{
		Token:      testToken,
		RetryAfter: 2,
		Fail: func(r *http.Request, events [][]byte) (int, string, bool) {
			mu.Lock()
			defer mu.Unlock()
			return 503, `{"text":"Server is busy","code":9}`, down
		},
		RejectEvent: func(b []byte) bool { return bytes.Contains(b, []byte(`"bad"`)) },
	})
	c := newClient(t, srv.URL)
	ctx := context.Background()

	err := c.Send(ctx, sampleEvents(2))
	if delivery.ClassOf(err) != delivery.Retry || delivery.RetryAfterOf(err) != 2*time.Second {
		t.Fatalf("Send while down = %v", err)
	}
	if err := c.Probe(ctx); delivery.ClassOf(err) != delivery.Retry {
		t.Fatalf("Probe while down = %v, want retry (Fail sees empty bodies too)", err)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	if err := c.Probe(ctx); err != nil {
		t.Fatalf("Probe when up = %v", err)
	}

	batch := sampleEvents(4)
	batch[2].Body = []byte(`{"bad":true}`)
	err = c.Send(ctx, batch)
	if i, ok := delivery.EventIndexOf(err); delivery.ClassOf(err) != delivery.Rejected || !ok || i != 2 {
		t.Fatalf("Send with a bad event = %v (index %d %v), want rejected at 2", err, i, ok)
	}
	if n := len(col.Events()); n != 0 {
		t.Errorf("a refused request recorded %d events", n)
	}
	if err := c.Send(ctx, append(batch[:2:2], batch[3])); err != nil {
		t.Fatalf("Send without the bad event: %v", err)
	}
	if n := len(col.Events()); n != 3 {
		t.Errorf("recorded %d events, want 3", n)
	}
}

func TestCollectorMaxBody(t *testing.T) {
	srv, _ := collectorServer(t, CollectorOptions{MaxBodyBytes: 10 << 10})
	c := newClient(t, srv.URL)
	if err := c.Send(context.Background(), sampleEvents(20)); delivery.ClassOf(err) != delivery.TooLarge {
		t.Fatalf("Send = %v, want too large", err)
	}
	if err := c.Send(context.Background(), sampleEvents(3)); err != nil {
		t.Fatalf("Send = %v", err)
	}
}

func TestCollectorOnEvent(t *testing.T) {
	var mu sync.Mutex
	var got [][]byte
	var times []time.Time
	srv, _ := collectorServer(t, CollectorOptions{OnEvent: func(b []byte, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, b)
		times = append(times, at)
	}})
	before := time.Now()
	evs := sampleEvents(5)
	if err := newClient(t, srv.URL).Send(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 5 {
		t.Fatalf("OnEvent called %d times", len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i], evs[i].Body) || times[i].Before(before) || times[i].After(time.Now()) {
			t.Errorf("event %d: %q at %v", i, got[i][:20], times[i])
		}
	}
}

func TestStartCollector(t *testing.T) {
	rc, err := StartCollector("", CollectorOptions{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rc.URL(), "http://127.0.0.1:") || !strings.HasSuffix(rc.URL(), "/services/collector") {
		t.Errorf("URL %q", rc.URL())
	}
	c := newClient(t, rc.URL())
	if err := c.Send(context.Background(), sampleEvents(7)); err != nil {
		t.Fatal(err)
	}
	if rc.Stats().Events != 7 {
		t.Errorf("stats %+v", rc.Stats())
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case <-rc.Done():
	default:
		t.Error("Done not closed after Close")
	}
	c.CloseIdleConnections()
	if err := c.Send(context.Background(), sampleEvents(1)); delivery.ClassOf(err) != delivery.Retry {
		t.Errorf("Send after Close = %v, want retry", err)
	}
	if _, err := StartCollector("127.0.0.1:-1", CollectorOptions{}); err == nil || !strings.HasPrefix(err.Error(), "huntress: ") {
		t.Errorf("StartCollector on a bad address: %v", err)
	}
}

func TestCollectorGzipBomb(t *testing.T) {
	// 64 MiB of zeros compresses to ~64 KiB; the collector stops at its limit.
	var raw bytes.Buffer
	zw := gzip.NewWriter(&raw)
	zw.Write([]byte(`{"event":"`))
	zeros := make([]byte, 1<<20)
	for range 64 {
		zw.Write(zeros)
	}
	zw.Close()
	col := NewCollector(CollectorOptions{MaxBodyBytes: 1 << 20})
	status, _, _ := post(t, col, "POST", "/services/collector", "", raw.Bytes(), true)
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", status)
	}
}
