package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/embedded"
	"github.com/ezssh/siem-forwarder/internal/embedded/embeddedtest"
	"github.com/ezssh/siem-forwarder/internal/generate"
)

// server starts an embedded server and returns its URL and a JetStream
// context on it.
func server(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	for _, v := range []string{"NATS_URL", "NATS_CREDS", "NATS_NKEY", "NATS_USER", "NATS_PASSWORD", "NATS_CA", "NATS_CERT", "NATS_KEY"} {
		t.Setenv(v, "")
	}
	s := embeddedtest.Start(t, embedded.Config{NoSync: true})
	_, js := embeddedtest.Connect(t, s.URL())
	return s.URL(), js
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(testContext(t), audit.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestPublishNDJSON(t *testing.T) {
	url, js := server(t)
	g := generate.New(generate.Options{Seed: 1})
	goodLine := func() string { b, _ := g.NextBody(); return string(b) }
	noSub := strings.Replace(goodLine(), `"SubscriptionId":"`, `"Subscription":"`, 1)
	tooLong := `{"EventId":"` + strings.Repeat("x", maxLine) + `"}`
	lines := []string{
		goodLine(),         // 1
		`{"EventId": "x",`, // 2 bad JSON
		goodLine() + "\r",  // 3 CRLF
		"",                 // 4 blank
		noSub,              // 5
		tooLong,            // 6
		goodLine(),         // 7
		`[1,2]`,            // 8 not an object
		"  " + goodLine(),  // 9 last line, no newline
	}
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(testContext(t), []string{"publish", "--nats-url", url, "--ensure-stream", "-f", file}, &stdout, &stderr)
	if err == nil || cliflag.IsUsage(err) {
		t.Fatalf("run = %v, want a failure for the bad lines", err)
	}
	wantErr := []string{
		"line 2: not JSON: unexpected end of input",
		"line 5: SubscriptionId: missing",
		"line 6: longer than",
		"line 8: not a JSON object",
	}
	gotErr := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(gotErr) != len(wantErr) {
		t.Fatalf("stderr:\n%s\nwant %d lines", stderr.String(), len(wantErr))
	}
	for i, w := range wantErr {
		if !strings.HasPrefix(gotErr[i], w) {
			t.Errorf("stderr line %d = %q, want prefix %q", i+1, gotErr[i], w)
		}
	}
	if got := stdout.String(); got != "published=4 bad=4\n" {
		t.Errorf("stdout = %q", got)
	}
	if n := streamMsgs(t, js); n != 4 {
		t.Errorf("stream holds %d messages, want 4", n)
	}
}

func TestPublishOne(t *testing.T) {
	url, js := server(t)
	var stdout, stderr bytes.Buffer
	args := []string{"publish", "--nats-url", url, "--ensure-stream", "--subscription", "acme", "--type", "EZSSH_GIT",
		"--requestor", "Alice Martin", "--user-key", "ssh-ed25519 AAAA alice@laptop", "--criticality", "High",
		"--event-id", "evt-1", "--field", "SourceIp=203.0.113.9", "--field", `Tags=["a","b"]`}
	if err := run(testContext(t), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if got := stdout.String(); got != "EventId=evt-1 stream=EZSSH_AUDIT seq=1\n" {
		t.Errorf("stdout = %q", got)
	}
	stdout.Reset()
	if err := run(testContext(t), args, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if got := stdout.String(); got != "EventId=evt-1 stream=EZSSH_AUDIT seq=1 duplicate=true\n" {
		t.Errorf("stdout of the repeat = %q", got)
	}
	s, _ := js.Stream(testContext(t), audit.StreamName)
	msg, err := s.GetLastMsgForSubject(testContext(t), "ezssh.audit.acme.git")
	if err != nil {
		t.Fatal(err)
	}
	var e audit.Event
	if err := e.UnmarshalJSON(msg.Data); err != nil {
		t.Fatal(err)
	}
	if e.RequestorFriendlyName != "Alice Martin" || e.Criticality != "High" ||
		string(e.Extra["SourceIp"]) != `"203.0.113.9"` || string(e.Extra["Tags"]) != `["a","b"]` {
		t.Errorf("stored event %+v", e)
	}
}

func TestPublishUsageErrors(t *testing.T) {
	url, _ := server(t)
	for name, args := range map[string][]string{
		"no subscription":     {"publish", "--nats-url", url},
		"bad subscription":    {"publish", "--nats-url", url, "--subscription", "a.b"},
		"bad criticality":     {"publish", "--nats-url", url, "--subscription", "a", "--criticality", "Urgent"},
		"field shadows":       {"publish", "--nats-url", url, "--subscription", "a", "--field", "EventId=x"},
		"field without value": {"publish", "--nats-url", url, "--field", "novalue"},
		"unknown command":     {"frobnicate"},
		"no command":          {},
		"negative count":      {"generate", "--nats-url", url, "--count", "-1"},
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(testContext(t), args, &out, &out); !cliflag.IsUsage(err) {
				t.Errorf("run = %v, want a usage error", err)
			}
		})
	}
}

func TestHelpNamesEnvironment(t *testing.T) {
	for cmd, want := range map[string][]string{
		"publish":  {"$NATS_URL", "$PRODUCER_SUBSCRIPTION", "$PRODUCER_FILE", "$PRODUCER_ENSURE_STREAM", "nats://127.0.0.1:4222"},
		"generate": {"$NATS_URL", "$PRODUCER_COUNT", "$PRODUCER_RATE", "$PRODUCER_SUBSCRIPTIONS", "$PRODUCER_SEED"},
	} {
		var out bytes.Buffer
		if err := run(t.Context(), []string{cmd, "--help"}, &out, &out); err != nil {
			t.Errorf("%s --help = %v", cmd, err)
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s --help lacks %s:\n%s", cmd, w, out.String())
			}
		}
	}
}

func TestGenerate(t *testing.T) {
	url, js := server(t)
	var stdout, stderr bytes.Buffer
	err := run(testContext(t), []string{"generate", "--nats-url", url, "--ensure-stream", "--count", "500", "--subscriptions", "3"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if n := streamMsgs(t, js); n != 500 {
		t.Errorf("stream holds %d messages, want 500", n)
	}
	if !strings.HasPrefix(stdout.String(), "sent=500 acked=500 failed=0 ") || !strings.Contains(stdout.String(), "events/s") {
		t.Errorf("stdout = %q", stdout.String())
	}
}

func TestGenerateRateAndInterrupt(t *testing.T) {
	url, js := server(t)
	ctx, cancel := context.WithCancel(testContext(t))
	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"generate", "--nats-url", url, "--ensure-stream", "--count", "0", "--rate", "200", "--progress", "50ms"}, &stdout, &stderr)
	}()
	eventually(t, "50 events in the stream", func() bool {
		s, err := js.Stream(ctx, audit.StreamName)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs >= 50
	})
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after interrupt = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to stop", d)
	}
	if !strings.Contains(stderr.String(), "rate=") {
		t.Errorf("no progress lines: %q", stderr.String())
	}
	// 200/s: the run lasted at least 250 ms for 50 events; far more than the
	// rate allows would mean the limit is not applied.
	m := regexp.MustCompile(`^sent=\d+ acked=\d+ failed=0 elapsed=\S+ rate=(\d+) events/s\n$`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("summary %q", stdout.String())
	}
	if rate, _ := strconv.Atoi(m[1]); rate > 260 {
		t.Errorf("achieved %d events/s with --rate 200", rate)
	}
}
