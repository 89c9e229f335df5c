package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/delivery"
	"github.com/ezssh/siem-forwarder/internal/huntress"
)

// syncBuffer is a bytes.Buffer safe for the collector's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// start runs the collector with args and returns its HEC URL and base URL.
func start(t *testing.T, args ...string) (hecURL, base string, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stderr = &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), io.Discard, stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("collector: %v", err)
		}
	})
	re := regexp.MustCompile(`url=(http://\S+/services/collector)`)
	eventually(t, "the collector to listen", func() bool { return re.MatchString(stderr.String()) })
	hecURL = re.FindStringSubmatch(stderr.String())[1]
	return hecURL, strings.TrimSuffix(hecURL, "/services/collector"), stderr
}

func client(t *testing.T, url, token string) *huntress.Client {
	t.Helper()
	c, err := huntress.New(huntress.Config{URL: url, Token: token, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func events(bodies ...string) []delivery.Event {
	out := make([]delivery.Event, len(bodies))
	for i, b := range bodies {
		out[i] = delivery.Event{Time: time.Now(), Body: []byte(b)}
	}
	return out
}

func setMode(t *testing.T, base, mode string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, base+"/collector/mode", strings.NewReader(mode))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func stats(t *testing.T, base string) statsReply {
	t.Helper()
	resp, err := http.Get(base + "/collector/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s statsReply
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCollectorWritesEveryAcceptedEvent(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events.ndjson")
	url, base, _ := start(t, "--token", "tok-1", "--out", out)

	var herr *huntress.Error
	if err := client(t, url, "wrong").Send(t.Context(), events(`{"EventId":"x"}`)); !errors.As(err, &herr) || herr.Status != http.StatusForbidden {
		t.Fatalf("a wrong token: Send = %v, want 403", err)
	}
	big := `{"EventId":"b","Pad":"` + strings.Repeat("p", 4000) + `"}` // gzip'd by the client
	if err := client(t, url, "tok-1").Send(t.Context(), events(`{"EventId":"a"}`, big, "{\n\"EventId\": \"c\"\n}")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct{ EventId string }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		ids = append(ids, e.EventId)
	}
	if got := strings.Join(ids, ","); got != "a,b,c" {
		t.Fatalf("events file holds %q, want a,b,c (one per line, the multi-line one compacted)", got)
	}
	if s := stats(t, base); s.Events != 3 || s.Accepted != 1 || s.Mode != "ok" {
		t.Fatalf("stats = %+v, want 3 events in 1 accepted request, mode ok", s)
	}
}

func TestCollectorFaultModes(t *testing.T) {
	url, base, _ := start(t, "--allow-fault-injection")
	c := client(t, url, "any")

	if code := setMode(t, base, "unavailable"); code != http.StatusOK {
		t.Fatalf("PUT mode = %d", code)
	}
	var herr *huntress.Error
	if err := c.Send(t.Context(), events(`{"EventId":"u"}`)); !errors.As(err, &herr) || herr.Status != http.StatusServiceUnavailable {
		t.Fatalf("in mode unavailable Send = %v, want a 503", err)
	}

	setMode(t, base, "hang")
	sent := make(chan error, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	go func() { sent <- client(t, url, "any").Send(ctx, events(`{"EventId":"h"}`)) }()
	eventually(t, "the request to reach the hanging collector", func() bool { return stats(t, base).Requests == 2 })
	select {
	case err := <-sent:
		t.Fatalf("a hanging collector answered: %v", err)
	default:
	}
	setMode(t, base, "ok") // the held request is now judged and accepted
	if err := <-sent; err != nil {
		t.Fatalf("held request after mode ok: %v", err)
	}
	if s := stats(t, base); s.Events != 1 {
		t.Fatalf("stats = %+v, want exactly the held event accepted", s)
	}
	if code := setMode(t, base, "sideways"); code != http.StatusBadRequest {
		t.Fatalf("unknown mode answered %d, want 400", code)
	}
}

func TestCollectorFaultInjectionIsOffByDefault(t *testing.T) {
	_, base, _ := start(t)
	if code := setMode(t, base, "unavailable"); code != http.StatusForbidden {
		t.Fatalf("PUT mode without --allow-fault-injection = %d, want 403", code)
	}
}

func TestCollectorBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--addr", "nowhere"},
		{"--token", "a", "--token-file", "f"},
		{"--token-file", filepath.Join(t.TempDir(), "missing")},
		{"extra"},
	} {
		err := run(t.Context(), args, io.Discard, io.Discard)
		if !cliflag.IsUsage(err) || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("%v: err = %v, want a usage error naming it", args, err)
		}
	}
}
