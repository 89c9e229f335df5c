package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

const replayTestToken = "0b7e4a1c-3d2f-4e5a-9b8c-7d6e5f4a3b2c"

// replayEnv is an embedded server with the audit stream and three batches of
// events: t1 before T, t2 in [T, U), t3 after U.
type replayEnv struct {
	url    string
	js     jetstream.JetStream
	stream jetstream.Stream
	T, U   time.Time
	events map[string]replayTestEvent // by EventId
}

type replayTestEvent struct {
	batch, sub, eventType string
}

var (
	replayTestSubs  = []string{"sub-a", "sub-b", "sub-c"}
	replayTestTypes = []string{"EZSSH_SSH", "EZSSH_GIT"}
)

// startReplayEnv publishes n1, n2 and n3 events, spread over three
// subscriptions and two types, with the window's bounds T and U between the
// batches in stream time.
func startReplayEnv(t *testing.T, n1, n2, n3 int) *replayEnv {
	t.Helper()
	srvURL, js := startTestJetStream(t)
	s, err := audit.EnsureStream(context.Background(), js, audit.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"HUNTRESS_HEC_TOKEN", "HUNTRESS_HEC_TOKEN_FILE", "HUNTRESS_HEC_URL", routes.KeyFileEnv,
		"FORWARDER_ROUTES_FILE", "FORWARDER_STREAM", "FORWARDER_DLQ_STREAM", "FORWARDER_BATCH_EVENTS", "FORWARDER_IN_FLIGHT",
		"NATS_CREDS", "NATS_NKEY", "NATS_USER", "NATS_PASSWORD", "NATS_CA", "NATS_CERT", "NATS_KEY"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	e := &replayEnv{url: srvURL, js: js, stream: s, events: map[string]replayTestEvent{}}
	e.publish(t, "t1", n1)
	e.T = replayMark()
	e.publish(t, "t2", n2)
	e.U = replayMark()
	e.publish(t, "t3", n3)
	return e
}

// replayMark returns a time after every event stored so far and before every
// later one: it lets the clock move on each side of it, by polling.
func replayMark() time.Time {
	wait := func(from time.Time) {
		for time.Since(from) <= 20*time.Millisecond {
			time.Sleep(time.Millisecond)
		}
	}
	wait(time.Now())
	mark := time.Now()
	wait(mark)
	return mark
}

func (e *replayEnv) publish(t *testing.T, batch string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		sub := replayTestSubs[i%len(replayTestSubs)]
		typ := replayTestTypes[(i/len(replayTestSubs))%len(replayTestTypes)]
		id := fmt.Sprintf("%s-%04d", batch, i)
		body := fmt.Appendf(nil, `{"EventId":%q,"EventType":%q,"RequestDate":%q,"SubscriptionId":%q,"ActionPerformed":"Certificate Issued"}`,
			id, typ, time.Now().UTC().Format(time.RFC3339Nano), sub)
		m := nats.NewMsg(audit.Subject(sub, audit.KindOf(typ)))
		m.Data = body
		m.Header.Set(nats.MsgIdHdr, id)
		if _, err := e.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		e.events[id] = replayTestEvent{batch: batch, sub: sub, eventType: typ}
	}
}

// want returns the ids of the t2 events that match sub and typ (empty: any).
func (e *replayEnv) want(sub, typ string) []string {
	var ids []string
	for id, ev := range e.events {
		if ev.batch == "t2" && (sub == "" || ev.sub == sub) && (typ == "" || ev.eventType == typ) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// run runs `forwarder replay args...` in process.
func (e *replayEnv) run(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var out, errb dlqLockedBuffer
	err = run(ctx, append([]string{"replay", "--nats-url", e.url}, args...), &out, &errb)
	return out.String(), errb.String(), err
}

func (e *replayEnv) window() []string {
	return []string{"--since", dlqRFC(e.T), "--until", dlqRFC(e.U)}
}

// setRoute stores the route of sub in EZSSH_SIEM, pointing at url.
func (e *replayEnv) setRoute(t *testing.T, sub, url string) {
	t.Helper()
	ctx := context.Background()
	kv, err := routes.EnsureBucket(ctx, e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	en := routes.Entry{Enabled: true, HECURL: url, HECToken: replayTestToken, AdminEmails: []string{"admin@example.com"}}
	v, err := en.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, sub, v); err != nil {
		t.Fatal(err)
	}
}

// consumers returns the names of the audit stream's consumers.
func (e *replayEnv) consumers(t *testing.T) []string {
	t.Helper()
	var names []string
	l := e.stream.ConsumerNames(context.Background())
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// replayHEC is an HEC collector that counts deliveries by EventId.
type replayHEC struct {
	url  string
	coll *huntress.Collector
	mu   sync.Mutex
	got  map[string]int
}

func newReplayHEC(t *testing.T) *replayHEC {
	t.Helper()
	h := &replayHEC{got: map[string]int{}}
	h.coll = huntress.NewCollector(huntress.CollectorOptions{
		Token: replayTestToken,
		OnEvent: func(body []byte, _ time.Time) {
			f, err := audit.Inspect(body)
			if err != nil {
				t.Errorf("HEC received an invalid event: %v", err)
				return
			}
			h.mu.Lock()
			h.got[f.EventId]++
			h.mu.Unlock()
		},
	})
	srv := httptest.NewServer(h.coll)
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/services/collector"
	return h
}

func (h *replayHEC) counts() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.got)
}

func (h *replayHEC) unique() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.got)
}

// liveState is what a replay must leave alone on a route's live consumer.
type liveState struct {
	cfg                 jetstream.ConsumerConfig
	pending, ackPending uint64
	delivered, ackFloor jetstream.SequenceInfo
	redelivered         int
	paused              bool
	lastTimes           []int64
}

func liveInfo(t *testing.T, s jetstream.Stream, name string) liveState {
	t.Helper()
	c, err := s.Consumer(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	i := c.CachedInfo()
	cfg := i.Config
	cfg.Metadata = nil // the server's own version keys
	st := liveState{cfg: cfg, pending: i.NumPending, ackPending: uint64(i.NumAckPending),
		delivered: i.Delivered, ackFloor: i.AckFloor, redelivered: i.NumRedelivered, paused: i.Paused}
	// Last activity is a pointer; compare the times.
	for _, si := range []*jetstream.SequenceInfo{&st.delivered, &st.ackFloor} {
		if si.Last != nil {
			st.lastTimes = append(st.lastTimes, si.Last.UnixNano())
		}
		si.Last = nil
	}
	return st
}

func TestReplayWindow(t *testing.T) {
	e := startReplayEnv(t, 30, 60, 30)
	// The live route of sub-a, half-way through its events: the replays must
	// not move it.
	ctx := context.Background()
	live, err := e.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: routes.ConsumerName("huntress", "sub-a"), FilterSubject: routes.Filter("sub-a"), AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := live.Fetch(25)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for m := range batch.Messages() {
		if i%2 == 0 {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		i++
	}
	before := liveInfo(t, e.stream, "huntress-sub-a")

	cases := []struct {
		name      string
		args      []string
		sub, typ  string
		viaRoutes bool // the destination is sub-a's route in EZSSH_SIEM
	}{
		{name: "global route, every event"},
		{name: "subscription route", args: []string{"--subscription", "sub-a"}, sub: "sub-a", viaRoutes: true},
		{name: "subscription route, one type", args: []string{"--subscription", "sub-a", "--type", "EZSSH_GIT"}, sub: "sub-a", typ: "EZSSH_GIT", viaRoutes: true},
		{name: "global route, one type", args: []string{"--route", "global", "--type", "EZSSH_SSH"}, typ: "EZSSH_SSH"},
		{name: "global route, one subscription", args: []string{"--route", "global", "--subscription", "sub-b"}, sub: "sub-b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newReplayHEC(t)
			other := newReplayHEC(t) // the destination that must get nothing
			if tc.viaRoutes {
				e.setRoute(t, "sub-a", h.url)
				t.Setenv("HUNTRESS_HEC_URL", other.url)
			} else {
				e.setRoute(t, "sub-a", other.url)
				t.Setenv("HUNTRESS_HEC_URL", h.url)
			}
			t.Setenv("HUNTRESS_HEC_TOKEN", replayTestToken)
			out, errOut, err := e.run(ctx, append(e.window(), tc.args...)...)
			if err != nil {
				t.Fatalf("replay: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
			}
			want := e.want(tc.sub, tc.typ)
			got := h.counts()
			if ids := slices.Sorted(maps.Keys(got)); !slices.Equal(ids, want) {
				t.Errorf("delivered %d events %v\nwant %d %v", len(ids), ids, len(want), want)
			}
			for id, n := range got {
				if n != 1 {
					t.Errorf("event %s delivered %d times", id, n)
				}
			}
			if n := other.coll.Stats().Requests; n != 0 {
				t.Errorf("the other destination got %d requests", n)
			}
			if !strings.Contains(out, "finished in") || !strings.Contains(out, fmt.Sprintf("%d delivered, 0 dead-lettered", len(want))) {
				t.Errorf("summary missing:\n%s", out)
			}
			if names := e.consumers(t); !slices.Equal(names, []string{"huntress-sub-a"}) {
				t.Errorf("consumers after the replay: %v", names)
			}
		})
	}
	if after := liveInfo(t, e.stream, "huntress-sub-a"); !replayLiveEqual(before, after) {
		t.Errorf("the live consumer changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

func replayLiveEqual(a, b liveState) bool {
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}

func TestReplayDryRun(t *testing.T) {
	e := startReplayEnv(t, 12, 60, 12)
	h := newReplayHEC(t)
	t.Setenv("HUNTRESS_HEC_URL", h.url)
	t.Setenv("HUNTRESS_HEC_TOKEN", replayTestToken)
	e.setRoute(t, "sub-a", h.url)
	cases := []struct {
		name     string
		args     []string
		sub, typ string
	}{
		{name: "every event"},
		{name: "subscription", args: []string{"--subscription", "sub-a"}, sub: "sub-a"},
		{name: "type", args: []string{"--type", "EZSSH_GIT"}, typ: "EZSSH_GIT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := e.run(context.Background(), append(append(e.window(), "--dry-run"), tc.args...)...)
			if err != nil {
				t.Fatalf("replay --dry-run: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
			}
			want := map[string]int{}
			for _, id := range e.want(tc.sub, tc.typ) {
				want[e.events[id].eventType]++
			}
			total := 0
			for typ, n := range want {
				total += n
				if !regexp.MustCompile(`(?m)^  ` + typ + ` +` + fmt.Sprint(n) + `$`).MatchString(out) {
					t.Errorf("no line %q %d:\n%s", typ, n, out)
				}
			}
			for _, typ := range replayTestTypes {
				if want[typ] == 0 && strings.Contains(out, "  "+typ) {
					t.Errorf("%s counted, none expected:\n%s", typ, out)
				}
			}
			if !regexp.MustCompile(`(?m)^events: +` + fmt.Sprint(total) + ` `).MatchString(out) {
				t.Errorf("total %d missing:\n%s", total, out)
			}
			// The span lies inside the window.
			for _, label := range []string{"first", "last"} {
				m := regexp.MustCompile(`(?m)^` + label + `: +(\S+)$`).FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("no %s time:\n%s", label, out)
				}
				ts, err := time.Parse(time.RFC3339Nano, m[1])
				if err != nil || ts.Before(e.T) || !ts.Before(e.U) {
					t.Errorf("%s %s is not in [%s, %s)", label, m[1], dlqRFC(e.T), dlqRFC(e.U))
				}
			}
		})
	}
	if n := h.coll.Stats().Requests; n != 0 {
		t.Errorf("a dry run sent %d requests", n)
	}
	if names := e.consumers(t); len(names) != 0 {
		t.Errorf("a dry run left consumers: %v", names)
	}
}

// A replay interrupted half-way and run again delivers the rest; the only
// duplicates are the batches that were in flight.
func TestReplayResume(t *testing.T) {
	const (
		batchEvents = 10
		inFlight    = 2
	)
	for _, how := range []string{"same arguments", "resume ID"} {
		t.Run(how, func(t *testing.T) {
			e := startReplayEnv(t, 20, 300, 20)
			h := newReplayHEC(t)
			t.Setenv("HUNTRESS_HEC_URL", h.url)
			t.Setenv("HUNTRESS_HEC_TOKEN", replayTestToken)
			args := append(e.window(), "--rate", "300/s", "--batch-events", fmt.Sprint(batchEvents), "--in-flight", fmt.Sprint(inFlight))

			ctx, cancel := context.WithCancel(context.Background())
			type result struct {
				out, errOut string
				err         error
			}
			done := make(chan result, 1)
			go func() {
				out, errOut, err := e.run(ctx, args...)
				done <- result{out, errOut, err}
			}()
			dlqEventually(t, 20*time.Second, "half the window delivered", func() bool { return h.unique() >= 150 || len(done) > 0 })
			cancel()
			first := <-done
			if !errors.Is(first.err, errReplayInterrupted) {
				t.Fatalf("interrupted replay returned %v\nstdout:\n%s\nstderr:\n%s", first.err, first.out, first.errOut)
			}
			m := regexp.MustCompile(`resume with: forwarder replay --resume ([0-9a-f]{12}) \(or the same arguments\)`).FindStringSubmatch(first.errOut)
			if m == nil {
				t.Fatalf("no resume hint:\n%s", first.errOut)
			}
			id := m[1]
			if got := h.unique(); got >= 300 {
				t.Fatalf("the interrupted replay delivered all %d events", got)
			}
			c, err := e.stream.Consumer(context.Background(), replayConsumer(id))
			if err != nil {
				t.Fatalf("the interrupted replay's consumer: %v", err)
			}
			if md := c.CachedInfo().Config.Metadata; md[metaTotal] != "300" || md[metaID] != id {
				t.Errorf("consumer metadata %v", md)
			}

			again := args
			if how == "resume ID" {
				again = []string{"--resume", id, "--batch-events", fmt.Sprint(batchEvents), "--in-flight", fmt.Sprint(inFlight)}
			}
			out, errOut, err := e.run(context.Background(), again...)
			if err != nil {
				t.Fatalf("resumed replay: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
			}
			if !strings.Contains(errOut, "resuming replay "+id) || !strings.Contains(out, "settled by earlier runs") {
				t.Errorf("the second run did not resume %s:\nstdout:\n%s\nstderr:\n%s", id, out, errOut)
			}
			got := h.counts()
			want := e.want("", "")
			dups := 0
			for _, id := range want {
				if got[id] == 0 {
					t.Errorf("event %s never delivered", id)
				}
				dups += max(0, got[id]-1)
			}
			if len(got) != len(want) {
				t.Errorf("delivered %d distinct events, want %d (only t2)", len(got), len(want))
			}
			if dups > batchEvents*inFlight {
				t.Errorf("%d duplicates; at most a batch per send slot (%d) may be sent twice", dups, batchEvents*inFlight)
			}
			if names := e.consumers(t); len(names) != 0 {
				t.Errorf("consumers left after the replay finished: %v", names)
			}
		})
	}
}

func TestReplayUsageErrors(t *testing.T) {
	e := startReplayEnv(t, 0, 0, 0)
	cases := map[string][]string{
		"no since":              {},
		"resume with since":     {"--resume", "0123456789ab", "--since", "1h"},
		"bad resume id":         {"--resume", "nope"},
		"until before since":    {"--since", "1h", "--until", "2h"},
		"until in the future":   {"--since", "1h", "--until", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
		"bad since":             {"--since", "yesterday"},
		"bad type":              {"--since", "1h", "--type", "EZSSH.GIT"},
		"bad rate":              {"--since", "1h", "--rate", "fast"},
		"bad subscription":      {"--since", "1h", "--subscription", "a.b"},
		"no global route":       {"--since", "1h"},
		"no routes file":        {"--since", "1h", "--route", "soc"},
		"unknown resume":        {"--resume", "0123456789ab"},
		"subscription no route": {"--since", "1h", "--subscription", "sub-z"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			out, errOut, err := e.run(context.Background(), args...)
			if !cliflag.IsUsage(err) {
				t.Errorf("got %v, want a usage error\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
			}
		})
	}
}

func TestIntersectSubjects(t *testing.T) {
	cases := []struct {
		a, b, want string
		ok         bool
	}{
		{"ezssh.audit.>", "ezssh.audit.>", "ezssh.audit.>", true},
		{"ezssh.audit.>", "ezssh.audit.sub-a.>", "ezssh.audit.sub-a.>", true},
		{"ezssh.audit.*.git", "ezssh.audit.sub-a.>", "ezssh.audit.sub-a.git", true},
		{"ezssh.audit.sub-a.>", "ezssh.audit.*.git", "ezssh.audit.sub-a.git", true},
		{"ezssh.audit.sub-a.>", "ezssh.audit.sub-b.>", "", false},
		{"ezssh.audit.*.ssh", "ezssh.audit.*.git", "", false},
		{"ezssh.audit.sub-a.ssh", "ezssh.audit.sub-a", "", false},
		{"ezssh.audit.*.*", "ezssh.audit.>", "ezssh.audit.*.*", true},
	}
	for _, c := range cases {
		got, ok := intersectSubjects(c.a, c.b)
		if got != c.want || ok != c.ok {
			t.Errorf("intersect(%s, %s) = %q %v, want %q %v", c.a, c.b, got, ok, c.want, c.ok)
		}
	}
}

func TestParseReplayRate(t *testing.T) {
	for in, want := range map[string]float64{"500": 500, "500/s": 500, "600/m": 10, "7200/h": 2, "0.5": 0.5} {
		if got, err := parseReplayRate(in); err != nil || got != want {
			t.Errorf("parseReplayRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1", "5/d", "x/s"} {
		if _, err := parseReplayRate(bad); err == nil {
			t.Errorf("parseReplayRate(%q) accepted", bad)
		}
	}
}

func TestReplayProgressLine(t *testing.T) {
	p := &dlqProgress{label: "replay x", eta: true}
	p.set(150, 300, 50)
	// 100 events this run in 2s: 50/s, 150 left: 3s.
	if got := p.line(2 * time.Second); got != "replay x 150/300 [==========>         ] 50/s ETA 3s\n" {
		t.Errorf("line = %q", got)
	}
}

// An event of the window that comes back after the replay's route reached
// the end of the window (here: another client held it, then returned it) is
// still delivered: the replay pulls again.
func TestReplayPullsEventsThatCameBack(t *testing.T) {
	e := startReplayEnv(t, 0, 40, 10)
	h := newReplayHEC(t)
	t.Setenv("HUNTRESS_HEC_URL", h.url)
	t.Setenv("HUNTRESS_HEC_TOKEN", replayTestToken)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		out, errOut, err := e.run(ctx, append(e.window(), "--rate", "200/s", "--batch-events", "5")...)
		if err != nil {
			err = fmt.Errorf("%w\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
		}
		done <- err
	}()
	var cons jetstream.Consumer
	dlqEventually(t, 10*time.Second, "the replay consumer", func() bool {
		for _, n := range e.consumers(t) {
			if strings.HasPrefix(n, replayConsumerPrefix) {
				c, err := e.stream.Consumer(ctx, n)
				cons = c
				return err == nil
			}
		}
		return false
	})
	// Take one event of the window from under the replay.
	var stolen jetstream.Msg
	dlqEventually(t, 10*time.Second, "an event taken", func() bool {
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return false
		}
		for m := range b.Messages() {
			stolen = m
		}
		return stolen != nil
	})
	dlqEventually(t, 20*time.Second, "every other event delivered", func() bool { return h.unique() >= 39 })
	if err := stolen.Nak(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the replay did not finish")
	}
	if got, want := slices.Sorted(maps.Keys(h.counts())), e.want("", ""); !slices.Equal(got, want) {
		t.Errorf("delivered %v\nwant %v", got, want)
	}
}

// Without --until the window ends when the replay starts; with no event
// after it, the replay still knows when it is done.
func TestReplayUntilNow(t *testing.T) {
	e := startReplayEnv(t, 5, 40, 0)
	h := newReplayHEC(t)
	t.Setenv("HUNTRESS_HEC_URL", h.url)
	t.Setenv("HUNTRESS_HEC_TOKEN", replayTestToken)
	out, errOut, err := e.run(context.Background(), "--since", dlqRFC(e.T), "--batch-events", "7")
	if err != nil {
		t.Fatalf("replay: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if got, want := slices.Sorted(maps.Keys(h.counts())), e.want("", ""); !slices.Equal(got, want) {
		t.Errorf("delivered %v\nwant %v", got, want)
	}
	if names := e.consumers(t); len(names) != 0 {
		t.Errorf("consumers left: %v", names)
	}
	// An empty window sends nothing and leaves nothing.
	out, errOut, err = e.run(context.Background(), "--since", "1h", "--until", dlqRFC(e.T.Add(-10*time.Millisecond)), "--type", "EZSSH_NONE")
	if err != nil || !strings.Contains(out, "nothing to replay") {
		t.Errorf("empty window: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if names := e.consumers(t); len(names) != 0 {
		t.Errorf("consumers left: %v", names)
	}
}
