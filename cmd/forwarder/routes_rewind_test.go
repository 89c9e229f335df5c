package main

import (
	"context"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

// rewindEnv is the replay test's stream (events t1, then T, t2, then U, t3)
// delivered by a running forwarder: the route of subscription sub-a to one
// HEC, the global route to another.
type rewindEnv struct {
	*replayEnv
	sub, global *replayHEC
}

const rewindSubConsumer = "huntress-sub-a"

func startRewindEnv(t *testing.T) *rewindEnv {
	t.Helper()
	e := &rewindEnv{replayEnv: startReplayEnv(t, 30, 30, 30), sub: newReplayHEC(t), global: newReplayHEC(t)}
	client := func(h *replayHEC) *huntress.Client {
		c, err := huntress.New(huntress.Config{URL: h.url, Token: replayTestToken, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	fw, err := pipeline.New(e.js, pipeline.Config{RetryInitial: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, ShutdownTimeout: 5 * time.Second},
		[]pipeline.Route{
			{Name: "sub-a", Consumer: rewindSubConsumer, FilterSubject: routes.Filter("sub-a"), Sink: client(e.sub)},
			{Name: "global", Consumer: "huntress", Sink: client(e.global)},
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runPipeline(t, fw)
	dlqEventually(t, 20*time.Second, "every event delivered once", func() bool {
		return e.sub.unique() == len(e.ids("sub-a")) && e.global.unique() == len(e.events)
	})
	return e
}

// ids are the EventIds of sub's events (every event with sub empty) in the
// given batches (every batch with none).
func (e *rewindEnv) ids(sub string, batches ...string) []string {
	var out []string
	for id, ev := range e.events {
		if (sub == "" || ev.sub == sub) && (len(batches) == 0 || slices.Contains(batches, ev.batch)) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// rewind runs forwarder routes rewind with confirm as the terminal (nil:
// none).
func (e *rewindEnv) rewind(confirm string, args ...string) (string, error) {
	var (
		out, errb dlqLockedBuffer
		in        io.Reader
	)
	if confirm != "" {
		in = strings.NewReader(confirm)
	}
	err := routesRewind(context.Background(), append(args, "--nats-url", e.url), in, &out, &errb)
	return out.String() + errb.String(), err
}

// deliveredAgain waits until h has every event of want twice and consumer
// has nothing left, then returns the events h has more than once (failing the
// test for any it has more than twice).
func (e *rewindEnv) deliveredAgain(t *testing.T, h *replayHEC, consumer string, want []string) []string {
	t.Helper()
	dlqEventually(t, 30*time.Second, "the events since the rewind delivered again", func() bool {
		got := h.counts()
		for _, id := range want {
			if got[id] < 2 {
				return false
			}
		}
		c, err := e.stream.Consumer(context.Background(), consumer)
		if err != nil {
			return false
		}
		info := c.CachedInfo()
		return info.NumPending == 0 && info.NumAckPending == 0
	})
	var again []string
	for id, n := range h.counts() {
		if n > 1 {
			again = append(again, id)
		}
		if n > 2 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	slices.Sort(again)
	return again
}

func TestRoutesRewind(t *testing.T) {
	e := startRewindEnv(t)
	before := liveInfo(t, e.stream, rewindSubConsumer)
	unchanged := func(t *testing.T) {
		t.Helper()
		if after := liveInfo(t, e.stream, rewindSubConsumer); after.cfg.DeliverPolicy != before.cfg.DeliverPolicy || after.cfg.OptStartTime != nil {
			t.Errorf("the consumer moved: %+v", after.cfg)
		}
		if n := e.sub.unique(); n != len(e.ids("sub-a")) || slices.ContainsFunc(slices.Collect(maps.Values(e.sub.counts())), func(n int) bool { return n != 1 }) {
			t.Errorf("events delivered again without a rewind: %v", e.sub.counts())
		}
	}

	t.Run("dry run", func(t *testing.T) {
		out, err := e.rewind("", "sub-a", "--to", dlqRFC(e.T), "--dry-run")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, want := range []string{"consumer huntress-sub-a", "now: 0 events not yet delivered", "20 events to deliver", "nothing was changed"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		unchanged(t)
	})
	t.Run("no terminal, no --yes", func(t *testing.T) {
		out, err := e.rewind("", "sub-a", "--to", dlqRFC(e.T))
		if !cliflag.IsUsage(err) || !strings.Contains(err.Error(), "--yes") {
			t.Fatalf("err = %v, want a usage error asking for --yes\n%s", err, out)
		}
		unchanged(t)
	})
	t.Run("declined", func(t *testing.T) {
		out, err := e.rewind("n\n", "sub-a", "--to", dlqRFC(e.T))
		if err != nil || !strings.Contains(out, "Rewind? [y/N]") || !strings.Contains(out, "nothing was changed") {
			t.Fatalf("err = %v\n%s", err, out)
		}
		unchanged(t)
	})

	t.Run("subscription route, confirmed", func(t *testing.T) {
		out, err := e.rewind("y\n", "sub-a", "--to", dlqRFC(e.T))
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "20 events to deliver") || !strings.Contains(out, "rewound huntress-sub-a to "+replayTime(e.T)) {
			t.Errorf("output:\n%s", out)
		}
		// Exactly the events stored since T came again, through the
		// forwarder that kept running.
		again := e.deliveredAgain(t, e.sub, rewindSubConsumer, e.ids("sub-a", "t2", "t3"))
		if want := e.ids("sub-a", "t2", "t3"); !slices.Equal(again, want) {
			t.Errorf("delivered again %d events %v\nwant %d %v", len(again), again, len(want), want)
		}
		after := liveInfo(t, e.stream, rewindSubConsumer)
		if after.cfg.DeliverPolicy != jetstream.DeliverByStartTimePolicy || !after.cfg.OptStartTime.Equal(e.T) {
			t.Errorf("consumer delivers %v from %v, want by start time from %v", after.cfg.DeliverPolicy, after.cfg.OptStartTime, e.T)
		}
		b, a := before.cfg, after.cfg
		b.DeliverPolicy, b.OptStartTime, a.DeliverPolicy, a.OptStartTime = 0, nil, 0, nil
		if !replayLiveEqual(liveState{cfg: b}, liveState{cfg: a}) {
			t.Errorf("the consumer's other settings changed:\nbefore %+v\nafter  %+v", b, a)
		}
		c, _ := e.stream.Consumer(context.Background(), rewindSubConsumer)
		if got := c.CachedInfo().Config.Metadata[metaRewoundTo]; got != replayTime(e.T) {
			t.Errorf("metadata %s = %q", metaRewoundTo, got)
		}
		for id, n := range e.global.counts() {
			if n != 1 {
				t.Errorf("the global route delivered %s %d times", id, n)
			}
		}
	})

	t.Run("global route", func(t *testing.T) {
		subBefore := e.sub.counts()
		var out, errb dlqLockedBuffer
		err := run(context.Background(), []string{"routes", "rewind", "--route", "global", "--to", dlqRFC(e.U), "--yes", "--nats-url", e.url}, &out, &errb)
		if err != nil {
			t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
		}
		if !strings.Contains(out.String(), "the global route: consumer huntress ") || !strings.Contains(out.String(), "30 events to deliver") {
			t.Errorf("output:\n%s", out.String())
		}
		again := e.deliveredAgain(t, e.global, "huntress", e.ids("", "t3"))
		if want := e.ids("", "t3"); !slices.Equal(again, want) {
			t.Errorf("delivered again %d events %v\nwant %d %v", len(again), again, len(want), want)
		}
		if got := e.sub.counts(); !maps.Equal(got, subBefore) {
			t.Error("rewinding the global route changed what the subscription route delivered")
		}
	})
}

func TestRoutesRewindUsage(t *testing.T) {
	e := startRewindEnv(t)
	now := time.Now()
	for _, tc := range []struct {
		name string
		args []string
		want string // in the usage error
	}{
		{"no route", []string{"--to", "6h", "--yes"}, "name the route"},
		{"both", []string{"sub-a", "--route", "global", "--to", "6h", "--yes"}, "not both"},
		{"no --to", []string{"sub-a", "--yes"}, "--to is required"},
		{"bad --to", []string{"sub-a", "--to", "yesterday", "--yes"}, "neither an RFC 3339 time"},
		{"future --to", []string{"sub-a", "--to", dlqRFC(now.Add(time.Hour)), "--yes"}, "in the future"},
		{"bad SUB", []string{"sub.a", "--to", "6h", "--yes"}, "not a SubscriptionId"},
		{"extra argument", []string{"sub-a", "sub-b", "--to", "6h", "--yes"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.rewind("", tc.args...)
			if !cliflag.IsUsage(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a usage error with %q\n%s", err, tc.want, out)
			}
		})
	}
	// A route with no consumer: not a usage error, and it names the consumer.
	out, err := e.rewind("", "--route", "soc", "--to", "6h", "--yes")
	if err == nil || cliflag.IsUsage(err) || !strings.Contains(err.Error(), "no consumer huntress_soc") {
		t.Errorf("err = %v, want one naming consumer huntress_soc\n%s", err, out)
	}
	if names := e.consumers(t); !slices.Equal(names, []string{"huntress", rewindSubConsumer}) {
		t.Errorf("consumers after the failed commands: %v", names)
	}
}
