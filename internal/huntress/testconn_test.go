package huntress

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestTestConnection(t *testing.T) {
	// reply answers every request with status and body, echoing the token
	// where the body says TOKEN, the way the OpenTelemetry receiver does.
	reply := func(status int, body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(status)
			io.WriteString(w, strings.ReplaceAll(body, "TOKEN", r.Header.Get("Authorization")))
		})
	}
	for _, tc := range []struct {
		name     string
		handler  http.Handler // nil: see url
		tls      bool
		url      string // when handler is nil
		edit     func(*Config)
		ok       bool
		scheme   string
		problem  string
		status   int
		requests int32 // requests the server saw; 0: not checked
		message  string
	}{
		{name: "collector", handler: NewCollector(CollectorOptions{Token: testToken}),
			ok: true, scheme: "Splunk", requests: 1, message: "arrived"},
		{name: "bearer-only HEC", handler: NewCollector(CollectorOptions{Token: testToken, AuthScheme: "Bearer"}),
			ok: true, scheme: "Bearer", requests: 2, message: "set the scheme to Bearer"},
		{name: "splunk-only HEC, configured Bearer", handler: NewCollector(CollectorOptions{Token: testToken, AuthScheme: "Splunk"}),
			edit: func(c *Config) { c.AuthScheme = "Bearer" }, ok: true, scheme: "Splunk", requests: 2, message: "set the scheme to Splunk"},
		{name: "wrong token", handler: NewCollector(CollectorOptions{Token: "another-token"}),
			problem: ProblemWrongToken, status: 403, requests: 2, message: "Copy the HTTP Event Collector Token again from Huntress → SIEM → Source Management"},
		{name: "otel echoes the token", handler: reply(401, "invalid token: TOKEN"),
			problem: ProblemWrongToken, status: 401, requests: 2},
		{name: "token disabled", handler: reply(403, `{"text":"Token disabled","code":1}`),
			problem: ProblemTokenDisabled, status: 403, requests: 2, message: "disabled"},
		{name: "wrong url", handler: reply(404, `{"text":"The requested URL was not found on this server.","code":404}`),
			problem: ProblemWrongURL, status: 404, requests: 1, message: "https://hec.huntress.io/services/collector"},
		{name: "redirect", handler: http.RedirectHandler("https://elsewhere.example.com/", http.StatusMovedPermanently),
			problem: ProblemWrongURL, status: 301, requests: 1},
		{name: "untrusted certificate", handler: NewCollector(CollectorOptions{}), tls: true,
			problem: ProblemTLS, message: "certificate"},
		{name: "server error", handler: reply(503, `{"text":"Server is busy","code":9}`),
			problem: ProblemServerError, status: 503, requests: 1, message: "Server is busy"},
		{name: "rejected", handler: reply(400, `{"text":"Invalid data format","code":6,"invalid-event-number":0}`),
			problem: ProblemRejected, status: 400, requests: 1, message: "Invalid data format"},
		{name: "incorrect index", handler: reply(400, `{"text":"Incorrect index","code":7}`),
			edit: func(c *Config) { c.Index = "nope" }, problem: ProblemRejected, status: 400, message: "index"},
		{name: "timeout", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Once the body is read, the server notices the client hang up.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}),
			edit: func(c *Config) { c.Timeout = 50 * time.Millisecond }, problem: ProblemTimeout},
		{name: "unreachable", url: closedURL(t), problem: ProblemUnreachable, message: "Could not reach"},
		{name: "dns", url: "http://no-such-host.invalid/services/collector", edit: func(c *Config) { c.AllowInsecureHTTP = true },
			problem: ProblemUnreachable, message: "does not exist"},
		{name: "insecure http", url: "http://hec.example.com/services/collector", problem: ProblemWrongURL, message: "--allow-insecure-http"},
		{name: "no token", url: "https://hec.example.com", edit: func(c *Config) { c.Token = "" }, problem: ProblemConfig, message: "Token is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			url := tc.url
			if tc.handler != nil {
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					hits.Add(1)
					tc.handler.ServeHTTP(w, r)
				})
				var srv *httptest.Server
				if tc.tls {
					srv = httptest.NewTLSServer(h)
				} else {
					srv = httptest.NewServer(h)
				}
				defer srv.Close()
				url = srv.URL + "/services/collector"
			}
			cfg := Config{URL: url, Token: testToken}
			if tc.edit != nil {
				tc.edit(&cfg)
			}
			d := TestConnection(context.Background(), cfg)
			t.Logf("%+v", d)
			if d.OK != tc.ok || d.Scheme != tc.scheme || d.Problem != tc.problem || d.Status != tc.status {
				t.Errorf("got OK=%v Scheme=%q Problem=%q Status=%d, want %v %q %q %d",
					d.OK, d.Scheme, d.Problem, d.Status, tc.ok, tc.scheme, tc.problem, tc.status)
			}
			if tc.requests != 0 && hits.Load() != tc.requests {
				t.Errorf("server saw %d requests, want %d", hits.Load(), tc.requests)
			}
			if !strings.Contains(d.Message, tc.message) || d.Message == "" {
				t.Errorf("message %q does not contain %q", d.Message, tc.message)
			}
			if strings.Contains(d.Message, testToken) || strings.Contains(d.Message, base64Token) {
				t.Errorf("token leaked: %q", d.Message)
			}
			if (d.Problem == "") != d.OK {
				t.Errorf("OK %v with problem %q", d.OK, d.Problem)
			}
			if tc.handler != nil && d.Latency <= 0 {
				t.Errorf("latency %v", d.Latency)
			}
		})
	}
}

func TestTestConnectionSendsTheTestEvent(t *testing.T) {
	srv, col := collectorServer(t, CollectorOptions{Token: testToken})
	before := time.Now().UTC().Truncate(time.Millisecond)
	if d := TestConnection(context.Background(), Config{URL: srv.URL, Token: testToken}); !d.OK {
		t.Fatalf("%+v", d)
	}
	evs := col.Events()
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	var ev map[string]string
	if err := json.Unmarshal(evs[0], &ev); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"EventType": "EZSSH_SSH", "ActionPerformed": "Test Connection", "SubscriptionId": "test",
		"RequestorFriendlyName": "EZSSH forwarder test-connection",
	} {
		if ev[k] != want {
			t.Errorf("%s = %q, want %q", k, ev[k], want)
		}
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(ev["EventId"]) {
		t.Errorf("EventId %q is not a UUIDv7", ev["EventId"])
	}
	at, err := time.Parse(time.RFC3339Nano, ev["RequestDate"])
	if err != nil || at.Before(before) || at.After(time.Now()) {
		t.Errorf("RequestDate %q: %v", ev["RequestDate"], err)
	}
	if len(ev) != 6 {
		t.Errorf("event has %d fields: %v", len(ev), ev)
	}
}
