package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

const dlqTestStream = "EZSSH_AUDIT_DLQ"

// dlqEnv is an embedded server with the audit and dead-letter streams.
type dlqEnv struct {
	url   string
	js    jetstream.JetStream
	dlq   jetstream.Stream
	audit jetstream.Stream
}

func startDLQEnv(t *testing.T) *dlqEnv {
	t.Helper()
	srvURL, js := startTestJetStream(t)
	ctx := context.Background()
	dlq, err := pipeline.EnsureDLQStream(ctx, js, dlqTestStream, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	as, err := audit.EnsureStream(ctx, js, audit.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &dlqEnv{url: srvURL, js: js, dlq: dlq, audit: as}
}

// run runs `forwarder dlq args...` in process against e.
func (e *dlqEnv) run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"dlq", args[0], "--nats-url", e.url}, args[1:]...)
	err = run(context.Background(), full, &out, &errb)
	return out.String(), errb.String(), err
}

func (e *dlqEnv) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := e.run(t, args...)
	if err != nil {
		t.Fatalf("dlq %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// listSeqs runs dlq list --json with filters and returns the sequences.
func (e *dlqEnv) listSeqs(t *testing.T, filters ...string) []uint64 {
	t.Helper()
	recs := e.listJSON(t, filters...)
	seqs := []uint64{}
	for _, r := range recs {
		seqs = append(seqs, r.Seq)
	}
	return seqs
}

func (e *dlqEnv) listJSON(t *testing.T, filters ...string) []dlqRecord {
	t.Helper()
	out := e.mustRun(t, append([]string{"list", "--json"}, filters...)...)
	var recs []dlqRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var r dlqRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("list --json line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// publish stores a message on subject with headers and returns its sequence
// and stored time.
func (e *dlqEnv) publish(t *testing.T, subject string, hdr map[string]string, body []byte) (uint64, time.Time) {
	t.Helper()
	ctx := context.Background()
	m := nats.NewMsg(subject)
	m.Data = body
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	ack, err := e.js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.dlq.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence, raw.Time
}

func dlqTestEvent(id, sub string) []byte {
	return fmt.Appendf(nil, `{"EventId":%q,"EventType":"EZSSH_SSH","RequestDate":%q,"SubscriptionId":%q,"ActionPerformed":"Certificate Issued","Note":"<&>"}`,
		id, time.Now().UTC().Format(time.RFC3339Nano), sub)
}

func dlqHeaders(route, orig, reason, status, code string) map[string]string {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	h := map[string]string{
		pipeline.HeaderReason:       reason,
		pipeline.HeaderError:        "the HEC said\nno: " + reason,
		pipeline.HeaderSubject:      orig,
		pipeline.HeaderStreamSeq:    "42",
		pipeline.HeaderRoute:        route,
		pipeline.HeaderAttempts:     "1",
		pipeline.HeaderFirstFailure: now,
		pipeline.HeaderLastFailure:  now,
	}
	if status != "" {
		h[pipeline.HeaderStatus] = status
	}
	if code != "" {
		h[pipeline.HeaderCode] = code
	}
	return h
}

// dlqFixture stores:
//
//	1 huntress/sub-a rejected 400/6
//	2 huntress/sub-b invalid (body not JSON)
//	3 a route state change (ezssh.route.x.opened)
//	4 sub-a/sub-a rejected 400/13
//	5 huntress/sub-a undeliverable
type dlqFixture struct {
	*dlqEnv
	times  map[uint64]time.Time
	bodies map[uint64][]byte
}

func newDLQFixture(t *testing.T) *dlqFixture {
	t.Helper()
	f := &dlqFixture{dlqEnv: startDLQEnv(t), times: map[uint64]time.Time{}, bodies: map[uint64][]byte{}}
	add := func(subject string, hdr map[string]string, body []byte) {
		seq, ts := f.publish(t, subject, hdr, body)
		f.times[seq], f.bodies[seq] = ts, body
	}
	add("ezssh.dlq.huntress.sub-a.ssh", dlqHeaders("huntress", "ezssh.audit.sub-a.ssh", "rejected", "400", "6"), dlqTestEvent("ev-1", "sub-a"))
	add("ezssh.dlq.huntress.sub-b.git", dlqHeaders("huntress", "ezssh.audit.sub-b.git", "invalid", "", ""), []byte("not json <&>"))
	add(pipeline.RouteEventSubject("x", pipeline.StateOpened), nil, []byte(`{"route":"x","state":"opened"}`))
	add("ezssh.dlq.sub-a.sub-a.ssh", dlqHeaders("sub-a", "ezssh.audit.sub-a.ssh", "rejected", "400", "13"), dlqTestEvent("ev-4", "sub-a"))
	add("ezssh.dlq.huntress.sub-a.ssh", dlqHeaders("huntress", "ezssh.audit.sub-a.ssh", "undeliverable", "", ""), dlqTestEvent("ev-5", "sub-a"))
	if len(f.times) != 5 {
		t.Fatalf("fixture has %d messages", len(f.times))
	}
	return f
}

func dlqRFC(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func TestDLQListFilters(t *testing.T) {
	f := newDLQFixture(t)
	cases := []struct {
		name    string
		filters []string
		want    []uint64
	}{
		{"all", nil, []uint64{1, 2, 4, 5}},
		{"route", []string{"--route", "huntress"}, []uint64{1, 2, 5}},
		{"subscription", []string{"--subscription", "sub-a"}, []uint64{1, 4, 5}},
		{"route and subscription", []string{"--route", "sub-a", "--subscription", "sub-a"}, []uint64{4}},
		{"reason", []string{"--reason", "rejected"}, []uint64{1, 4}},
		{"route and reason", []string{"--route", "huntress", "--reason", "rejected"}, []uint64{1}},
		{"since", []string{"--since", dlqRFC(f.times[4])}, []uint64{4, 5}},
		{"until", []string{"--until", dlqRFC(f.times[2])}, []uint64{1, 2}},
		{"since and until", []string{"--since", dlqRFC(f.times[2]), "--until", dlqRFC(f.times[4])}, []uint64{2, 4}},
		{"since an age", []string{"--since", "1h"}, []uint64{1, 2, 4, 5}},
		{"until an age", []string{"--until", "1d"}, []uint64{}},
		{"no match", []string{"--subscription", "nobody"}, []uint64{}},
		{"limit", []string{"--limit", "2"}, []uint64{1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := f.listSeqs(t, c.filters...); !slices.Equal(got, c.want) {
				t.Errorf("list %v = %v, want %v", c.filters, got, c.want)
			}
		})
	}
}

func TestDLQListJSON(t *testing.T) {
	f := newDLQFixture(t)
	recs := f.listJSON(t)
	if len(recs) != 4 {
		t.Fatalf("got %d records, want 4", len(recs))
	}
	r := recs[0]
	if r.Seq != 1 || r.Route != "huntress" || r.Subscription != "sub-a" || r.Kind != "ssh" || r.Reason != "rejected" ||
		r.Status != 400 || r.Code == nil || *r.Code != 6 || r.OriginalSubject != "ezssh.audit.sub-a.ssh" || r.OriginalSeq != 42 {
		t.Errorf("record 1 = %+v", r)
	}
	if !r.Time.Equal(f.times[1]) {
		t.Errorf("time %v, want the stored time %v", r.Time, f.times[1])
	}
	if got := r.Headers[pipeline.HeaderReason]; len(got) != 1 || got[0] != "rejected" {
		t.Errorf("headers %v lack the reason", r.Headers)
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil || body["EventId"] != "ev-1" || body["Note"] != "<&>" {
		t.Errorf("body of a JSON dead letter should be the JSON itself: %s (%v)", r.Body, err)
	}
	var s string
	if err := json.Unmarshal(recs[1].Body, &s); err != nil || s != "not json <&>" {
		t.Errorf("body of a non-JSON dead letter should be a string: %s (%v)", recs[1].Body, err)
	}
}

func TestDLQListTable(t *testing.T) {
	f := newDLQFixture(t)
	out := f.mustRun(t, "list", "--route", "huntress")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines, want a header and 3 rows:\n%s", len(lines), out)
	}
	for _, col := range []string{"SEQ", "TIME", "ROUTE", "SUBSCRIPTION", "REASON", "STATUS/CODE", "ERROR"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %s", lines[0], col)
		}
	}
	for i, want := range [][]string{
		{"1", "huntress", "sub-a", "rejected", "400/6", "the HEC said no: rejected"},
		{"2", "huntress", "sub-b", "invalid", "-"},
		{"5", "huntress", "sub-a", "undeliverable"},
	} {
		row := lines[i+1]
		if fields := strings.Fields(row); fields[0] != want[0] {
			t.Errorf("row %d = %q, want SEQ %s", i, row, want[0])
		}
		for _, w := range want[1:] {
			if !strings.Contains(row, w) {
				t.Errorf("row %q lacks %q", row, w)
			}
		}
	}
	if strings.Contains(out, "ezssh.route") || strings.Contains(out, "opened") {
		t.Errorf("route state changes must not be listed:\n%s", out)
	}
}

func TestDLQShow(t *testing.T) {
	f := newDLQFixture(t)
	out := f.mustRun(t, "show", "1")
	for _, want := range []string{
		"Dead letter 1 of " + dlqTestStream,
		"ezssh.dlq.huntress.sub-a.ssh",
		pipeline.HeaderReason + ": rejected",
		pipeline.HeaderCode + ": 6",
		pipeline.HeaderSubject + ": ezssh.audit.sub-a.ssh",
		`  "EventId": "ev-1",`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show 1 lacks %q:\n%s", want, out)
		}
	}
	out = f.mustRun(t, "show", "--json", "2")
	var r dlqRecord
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Seq != 2 || r.Reason != "invalid" {
		t.Errorf("show --json 2 = %s (%v)", out, err)
	}
	if _, _, err := f.run(t, "show", "3"); err == nil || !strings.Contains(err.Error(), "not a dead letter") {
		t.Errorf("show of a route state change: err = %v", err)
	}
	if _, _, err := f.run(t, "show", "99"); err == nil || cliflag.IsUsage(err) {
		t.Errorf("show of a missing sequence: err = %v, want a plain error", err)
	}
}

func (e *dlqEnv) streamMsgs(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestDLQPurge(t *testing.T) {
	f := newDLQFixture(t)
	out := f.mustRun(t, "purge", "--reason", "rejected", "--dry-run")
	if !strings.Contains(out, "2 dead letters would be deleted") {
		t.Errorf("dry run said:\n%s", out)
	}
	if n := f.streamMsgs(t, f.dlq); n != 5 {
		t.Fatalf("dry run changed the stream: %d messages, want 5", n)
	}

	// Header filter: one delete per match.
	out = f.mustRun(t, "purge", "--reason", "rejected")
	if !strings.Contains(out, "deleted 2 dead letters") {
		t.Errorf("purge said:\n%s", out)
	}
	if got := f.listSeqs(t); !slices.Equal(got, []uint64{2, 5}) {
		t.Errorf("after purging the rejected: %v, want [2 5]", got)
	}

	// Subject filter only: one server-side purge.
	out = f.mustRun(t, "purge", "--route", "huntress", "--subscription", "sub-b")
	if !strings.Contains(out, "deleted 1 dead letter") {
		t.Errorf("purge said:\n%s", out)
	}
	if got := f.listSeqs(t); !slices.Equal(got, []uint64{5}) {
		t.Errorf("after purging huntress/sub-b: %v, want [5]", got)
	}

	out = f.mustRun(t, "purge", "--all")
	if !strings.Contains(out, "deleted 1 dead letter") {
		t.Errorf("purge --all said:\n%s", out)
	}
	if got := f.listSeqs(t); len(got) != 0 {
		t.Errorf("after purge --all: %v", got)
	}
	if _, err := f.dlq.GetMsg(context.Background(), 3); err != nil {
		t.Errorf("the route state change must survive purge --all: %v", err)
	}
}

func TestDLQRedrive(t *testing.T) {
	f := newDLQFixture(t)
	ctx := context.Background()
	filters := []string{"--subscription", "sub-a", "--reason", "rejected"}

	out := f.mustRun(t, append([]string{"redrive", "--dry-run"}, filters...)...)
	if !strings.Contains(out, "2 dead letters would be republished") {
		t.Errorf("dry run said:\n%s", out)
	}
	if n := f.streamMsgs(t, f.audit); n != 0 {
		t.Fatalf("dry run published %d messages", n)
	}

	out = f.mustRun(t, append([]string{"redrive", "--keep"}, filters...)...)
	if !strings.Contains(out, "redrove 2 dead letters") {
		t.Errorf("redrive --keep said:\n%s", out)
	}
	if got := f.listSeqs(t); !slices.Equal(got, []uint64{1, 2, 4, 5}) {
		t.Errorf("--keep removed dead letters: %v", got)
	}
	wantIDs := map[uint64]string{1: "ev-1-redrive-1", 4: "ev-4-redrive-4"}
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := f.audit.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		from := m.Header.Get(headerRedrivenFrom)
		var dl uint64
		fmt.Sscanf(from, dlqTestStream+"/%d", &dl)
		if m.Subject != "ezssh.audit.sub-a.ssh" {
			t.Errorf("redriven to %s, want the original subject", m.Subject)
		}
		if !bytes.Equal(m.Data, f.bodies[dl]) {
			t.Errorf("body of dead letter %d changed:\n got %s\nwant %s", dl, m.Data, f.bodies[dl])
		}
		if id := m.Header.Get(jetstream.MsgIDHeader); id != wantIDs[dl] {
			t.Errorf("Nats-Msg-Id of dead letter %d (%s) = %q, want %q", dl, from, id, wantIDs[dl])
		}
	}

	// Again without --keep, as after an interrupted run: the audit stream
	// drops the second copies, and the dead letters go.
	out = f.mustRun(t, append([]string{"redrive"}, filters...)...)
	if !strings.Contains(out, "redrove 2 dead letters") || !strings.Contains(out, "already been republished") {
		t.Errorf("second redrive said:\n%s", out)
	}
	if n := f.streamMsgs(t, f.audit); n != 2 {
		t.Errorf("audit stream holds %d messages, want 2: a redrive run twice must not duplicate", n)
	}
	if got := f.listSeqs(t); !slices.Equal(got, []uint64{2, 5}) {
		t.Errorf("after redrive: %v, want [2 5]", got)
	}
	if _, err := f.dlq.GetMsg(ctx, 3); err != nil {
		t.Errorf("the route state change must survive redrive: %v", err)
	}
}

func TestDLQRedriveSkipsLettersWithoutOriginal(t *testing.T) {
	e := startDLQEnv(t)
	h := dlqHeaders("huntress", "", "invalid", "", "")
	delete(h, pipeline.HeaderSubject)
	e.publish(t, "ezssh.dlq.huntress.unknown.unknown", h, []byte("x"))
	h = dlqHeaders("huntress", "some.other.subject", "invalid", "", "")
	e.publish(t, "ezssh.dlq.huntress.unknown.unknown", h, []byte("y"))
	out, errOut, err := e.run(t, "redrive")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "redrove 0 dead letters") || !strings.Contains(out, "skipped 2 dead letters") {
		t.Errorf("redrive said:\n%s\nstderr:\n%s", out, errOut)
	}
	if n := e.streamMsgs(t, e.audit); n != 0 {
		t.Errorf("published %d messages to the audit stream", n)
	}
	if got := e.listSeqs(t); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("skipped dead letters must stay: %v", got)
	}
}

func TestDLQUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"dlq"}, "list, show, redrive or purge"},
		{[]string{"dlq", "frob"}, `"frob"`},
		{[]string{"dlq", "list", "--reason", "lost"}, "--reason"},
		{[]string{"dlq", "list", "--since", "yesterday"}, "--since"},
		{[]string{"dlq", "list", "--until", "-5m"}, "--until"},
		{[]string{"dlq", "list", "--since", "1h", "--until", "2h"}, "--until"},
		{[]string{"dlq", "list", "--route", "a.b"}, "--route"},
		{[]string{"dlq", "list", "--subscription", "*"}, "--subscription"},
		{[]string{"dlq", "list", "--limit", "-1"}, "--limit"},
		{[]string{"dlq", "list", "--bogus"}, "bogus"},
		{[]string{"dlq", "list", "extra"}, "extra"},
		{[]string{"dlq", "purge"}, "--all"},
		{[]string{"dlq", "redrive", "--parallel", "0"}, "--parallel"},
		{[]string{"dlq", "show"}, "SEQ"},
		{[]string{"dlq", "show", "abc"}, "abc"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), c.args, &out, &errb)
			if err == nil || !cliflag.IsUsage(err) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
		})
	}
}

func TestDLQHelp(t *testing.T) {
	for _, cmd := range []string{"list", "show", "redrive", "purge"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"dlq", cmd, "--help"}, &out, &out); err != nil {
			t.Fatalf("dlq %s --help: %v", cmd, err)
		}
		for _, want := range []string{"forwarder dlq " + cmd, "--nats-url", "$NATS_URL", "$FORWARDER_DLQ_STREAM"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("dlq %s --help lacks %q", cmd, want)
			}
		}
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Time{
		"":                     {},
		"6h":                   now.Add(-6 * time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"1d12h":                now.Add(-36 * time.Hour),
		"2026-02-01T00:00:00Z": time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
	}
	for in, want := range cases {
		got, err := parseDLQTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-1h", "d", "xd", "2026-02-01"} {
		if _, err := parseDLQTime(bad, now); err == nil {
			t.Errorf("parseWhen(%q) accepted", bad)
		}
	}
}

// dlqLockedBuffer is a bytes.Buffer safe for the progress goroutine and the
// test to share.
type dlqLockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *dlqLockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *dlqLockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestProgress(t *testing.T) {
	var buf dlqLockedBuffer
	p := newDLQProgress(&buf, "redrive")
	p.after, p.every = 0, time.Millisecond
	p.setTotal(10)
	p.add(4)
	p.start()
	dlqEventually(t, 5*time.Second, "a progress line", func() bool {
		return strings.Contains(buf.String(), "redrive 4/10 [========>           ]")
	})
	p.add(6)
	p.stop()
	p.stop()
	if !strings.Contains(buf.String(), "redrive 10/10 [====================]") {
		t.Errorf("final line missing:\n%s", buf.String())
	}

	// A short run draws nothing.
	var quiet dlqLockedBuffer
	q := newDLQProgress(&quiet, "purge")
	q.start()
	q.add(3)
	q.stop()
	if quiet.String() != "" {
		t.Errorf("a run under a second drew %q", quiet.String())
	}
}

// dlqEventually polls cond until it holds or timeout passes.
func dlqEventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDLQRedriveRoundTrip: the HEC refuses an event, the pipeline
// dead-letters it; the HEC is fixed, dlq redrive sends it back through the
// pipeline, and it is delivered, byte for byte, and leaves the DLQ.
func TestDLQRedriveRoundTrip(t *testing.T) {
	e := startDLQEnv(t)
	const token = "11111111-2222-3333-4444-555555555555"
	var (
		reject atomic.Bool
		mu     sync.Mutex
		got    = map[string][][]byte{}
	)
	reject.Store(true)
	coll := huntress.NewCollector(huntress.CollectorOptions{
		Token: token,
		RejectEvent: func(body []byte) bool {
			return reject.Load() && bytes.Contains(body, []byte(`"poison-1"`))
		},
		OnEvent: func(body []byte, _ time.Time) {
			f, err := audit.Inspect(body)
			if err != nil {
				t.Errorf("HEC received an invalid event: %v", err)
				return
			}
			mu.Lock()
			got[f.EventId] = append(got[f.EventId], bytes.Clone(body))
			mu.Unlock()
		},
	})
	hs := httptest.NewServer(coll)
	t.Cleanup(hs.Close)
	client, err := huntress.New(huntress.Config{URL: hs.URL, Token: token, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fw, err := pipeline.New(e.js, pipeline.Config{
		RetryInitial:    20 * time.Millisecond,
		RetryMax:        200 * time.Millisecond,
		PauseMin:        200 * time.Millisecond,
		PauseMax:        time.Second,
		ProbeTimeout:    2 * time.Second,
		BreakerFailures: 3,
		ShutdownTimeout: 5 * time.Second,
	}, []pipeline.Route{{Name: "huntress", Destination: "test HEC", Sink: client}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runPipeline(t, fw)
	dlqEventually(t, 10*time.Second, "forwarder ready", fw.Ready)

	received := func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(got[id])
	}
	pub := audit.NewPublisher(e.js, audit.PublisherOptions{})
	bodies := map[string][]byte{}
	for _, id := range []string{"good-1", "poison-1", "good-2"} {
		bodies[id] = dlqTestEvent(id, "sub-a")
		if _, err := pub.PublishRaw(context.Background(), bodies[id]); err != nil {
			t.Fatal(err)
		}
	}
	dlqEventually(t, 20*time.Second, "the good events delivered and the poison one dead-lettered", func() bool {
		return received("good-1") == 1 && received("good-2") == 1 && len(e.listSeqs(t)) == 1
	})
	recs := e.listJSON(t)
	if r := recs[0]; r.Reason != "rejected" || r.Status != 400 || r.Code == nil || *r.Code != 6 || r.OriginalSubject != "ezssh.audit.sub-a.ssh" {
		t.Fatalf("dead letter = %+v", r)
	}
	if received("poison-1") != 0 {
		t.Fatal("the poison event was delivered while the HEC refused it")
	}

	reject.Store(false) // the HEC is fixed
	out := e.mustRun(t, "redrive")
	if !strings.Contains(out, "redrove 1 dead letter ") {
		t.Errorf("redrive said:\n%s", out)
	}
	dlqEventually(t, 20*time.Second, "the redriven event delivered", func() bool { return received("poison-1") > 0 })
	mu.Lock()
	if n := len(got["poison-1"]); n != 1 || !bytes.Equal(got["poison-1"][0], bodies["poison-1"]) {
		t.Errorf("redriven event arrived %d times; body %s, want %s", n, got["poison-1"][0], bodies["poison-1"])
	}
	mu.Unlock()
	if seqs := e.listSeqs(t); len(seqs) != 0 {
		t.Errorf("the DLQ still holds %v after the redrive", seqs)
	}
}
