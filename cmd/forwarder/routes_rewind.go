package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

const routesRewindIntro = `forwarder routes rewind SUB --to T: move the live durable consumer of
subscription SUB's route back to T, so that every event the stream stored
since T is delivered to the route's destination again (and, after it, the
events still to come). T is RFC 3339 (2026-01-02T15:04:05Z) or an age such
as 90m, 6h or 7d ("that long ago").

  forwarder routes rewind SUB --to T [--yes] [--dry-run]
  forwarder routes rewind --route NAME --to T [--yes] [--dry-run]

--route rewinds a static route instead: "global" (the HUNTRESS_HEC_URL route,
consumer <consumer>) or NAME of the forwarder's --routes-file (consumer
<consumer>_NAME).

JetStream cannot move a durable consumer, so the consumer is deleted and
created again with the same settings, starting at T. Running forwarders keep
running: they see their consumer go, adopt the new one within seconds and go
on from T. Events they had in hand may arrive twice; every event carries its
EventId. It asks before it acts unless --yes is given (needed when stdin is
not a terminal). To send a window to a destination without moving the live
consumer, use forwarder replay.`

// rewindTarget is the route whose consumer is rewound.
type rewindTarget struct {
	consumer string
	desc     string // for people: "the route of subscription sub-1"
}

func runRoutesRewind(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return routesRewind(ctx, args, terminalStdin(), stdout, stderr)
}

// terminalStdin is stdin when it is a terminal, to ask for confirmation;
// nil otherwise.
func terminalStdin() io.Reader {
	fi, err := os.Stdin.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return os.Stdin
}

// routesRewind is forwarder routes rewind; confirm (nil when there is no
// terminal) answers its question.
func routesRewind(ctx context.Context, args []string, confirm io.Reader, stdout, stderr io.Writer) error {
	var (
		c           routesConn
		cf          routesConsumerFlags
		route, to   string
		yes, dryRun bool
		s           = cliflag.New("forwarder routes rewind", routesRewindIntro, stdout)
	)
	c.bind(s)
	cf.bind(s)
	s.String(&route, "route", "", "", `rewind a static route instead of a subscription's: "global" (HUNTRESS_HEC_URL) or a route of --routes-file`)
	s.String(&to, "to", "", "", "where to move the consumer (required): RFC 3339, or an age such as 6h or 7d")
	s.Bool(&yes, "yes", "", false, "do not ask for confirmation")
	s.Bool(&dryRun, "dry-run", "", false, "only say what would happen")
	// SUB is optional (--route names a static route instead), so the
	// arguments are taken here rather than by parseRoutesFlags.
	var sub string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if err := s.Parse(args); err != nil {
		if isHelp(err) {
			return nil
		}
		return err
	}
	rest := s.Args()
	if sub == "" && len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	switch {
	case len(rest) > 0:
		return cliflag.Usagef("routes rewind: unexpected argument %q (see --help)", rest[0])
	case sub == "" && route == "":
		return cliflag.Usagef("routes rewind: name the route: a subscription (routes rewind SUB) or a static route (--route global, or a route of --routes-file)")
	case sub != "" && !routes.ValidSubscription(sub):
		return cliflag.Usagef("routes rewind: SUB %q is not a SubscriptionId: ASCII letters, digits, '-', '_' and '=', at most 128", sub)
	}
	if err := c.validate(); err != nil {
		return err
	}
	if err := cf.validate(); err != nil {
		return err
	}
	now := time.Now()
	tgt, at, err := rewindArgs(cf, sub, route, to, now)
	if err != nil {
		return err
	}
	if !yes && !dryRun && confirm == nil {
		return cliflag.Usagef("routes rewind moves where %s delivers from: pass --yes to confirm (stdin is not a terminal to ask), or --dry-run to look first", tgt.desc)
	}

	conn, err := c.connect(ctx, stderr, "routes")
	if err != nil {
		return err
	}
	defer conn.close()
	stream, err := conn.js.Stream(ctx, cf.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("audit stream %s does not exist on this server (is --stream or NATS_URL right?)", cf.stream)
	}
	if err != nil {
		return fmt.Errorf("audit stream %s: %w", cf.stream, err)
	}
	cons, err := stream.Consumer(ctx, tgt.consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("%s has no consumer %s on stream %s: a forwarder creates it when it runs the route (for a subscription, once its route is enabled); check the name, --consumer and --stream", tgt.desc, tgt.consumer, cf.stream)
	}
	if err != nil {
		return fmt.Errorf("consumer %s: %w", tgt.consumer, err)
	}
	info := cons.CachedInfo()
	unsettled := info.NumPending + uint64(info.NumAckPending)
	fromT, err := countFrom(ctx, stream, info.Config, at)
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "%s: consumer %s on stream %s\n", tgt.desc, tgt.consumer, cf.stream)
	fmt.Fprintf(stdout, "now: %s not yet delivered; from %s on: %s to deliver\n", eventsPlural(unsettled), replayTime(at), eventsPlural(fromT))
	if unsettled > fromT {
		fmt.Fprintf(stdout, "warning: %s is later than where the route is: at least %s not yet delivered would be skipped\n",
			replayTime(at), eventsPlural(unsettled-fromT))
	}
	if info.Paused {
		fmt.Fprintln(stdout, "note: the route is paused (its destination is failing); it delivers from there once it resumes.")
	}
	if dryRun {
		fmt.Fprintln(stdout, "dry run: nothing was changed")
		return nil
	}
	if !yes {
		ok, err := askYes(confirm, stdout, "Rewind? [y/N] ")
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(stdout, "nothing was changed")
			return nil
		}
	}

	got, err := rewindConsumer(ctx, stream, info.Config, at, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rewound %s to %s: %s pending\n", tgt.consumer, replayTime(at), eventsPlural(got.NumPending+uint64(got.NumAckPending)))
	return nil
}

// rewindArgs checks the route naming and --to, and resolves them.
func rewindArgs(cf routesConsumerFlags, sub, route, to string, now time.Time) (rewindTarget, time.Time, error) {
	var tgt rewindTarget
	switch {
	case sub != "" && route != "":
		return tgt, time.Time{}, cliflag.Usagef("routes rewind: name either a subscription (SUB) or a static route (--route), not both")
	case route == "global":
		tgt = rewindTarget{consumer: cf.consumer, desc: "the global route"}
	case route != "":
		if !audit.ValidSubjectToken(route) {
			return tgt, time.Time{}, cliflag.Usagef("--route %q is not a route name", route)
		}
		tgt = rewindTarget{consumer: cf.consumer + "_" + route, desc: "static route " + route}
	default:
		tgt = rewindTarget{consumer: routes.ConsumerName(cf.consumer, sub), desc: "the route of subscription " + sub}
	}
	if to == "" {
		return tgt, time.Time{}, cliflag.Usagef("routes rewind: --to is required: where to move the route back to (RFC 3339, or an age such as 6h or 7d)")
	}
	at, err := parseDLQTime(to, now)
	if err != nil {
		return tgt, time.Time{}, cliflag.Usagef("--to: %v", err)
	}
	if at.After(now) {
		return tgt, time.Time{}, cliflag.Usagef("--to %s is in the future: the route would skip every event until then", replayTime(at))
	}
	return tgt, at, nil
}

// countFrom counts the events of the consumer's filter stored at or after
// at, with an ephemeral consumer that nobody pulls.
func countFrom(ctx context.Context, stream jetstream.Stream, route jetstream.ConsumerConfig, at time.Time) (uint64, error) {
	c, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Description:       "EZSSH routes rewind: counting",
		FilterSubject:     route.FilterSubject,
		FilterSubjects:    route.FilterSubjects,
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &at,
		AckPolicy:         jetstream.AckNonePolicy,
		HeadersOnly:       true,
		MemoryStorage:     true,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return 0, fmt.Errorf("count the events since %s: %w", replayTime(at), err)
	}
	n := c.CachedInfo().NumPending
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// Left behind, it goes away on its own after InactiveThreshold.
	_ = stream.DeleteConsumer(dctx, c.CachedInfo().Name)
	return n, nil
}

// Metadata a rewind records on the consumer it creates.
const (
	metaRewoundTo = "ezssh_rewound_to"
	metaRewoundAt = "ezssh_rewound_at"
)

// rewindAttempts bounds the delete-and-create rounds lost to a forwarder that
// put its own consumer back in between.
const rewindAttempts = 5

// rewindConsumer deletes the consumer of cfg and creates it again, with the
// same settings, delivering from at. A forwarder that finds its consumer gone
// waits a moment and adopts the new one; one that was quicker and created
// its own is undone by deleting again. It returns the new consumer's info.
func rewindConsumer(ctx context.Context, stream jetstream.Stream, cfg jetstream.ConsumerConfig, at, now time.Time) (*jetstream.ConsumerInfo, error) {
	want := cfg
	want.DeliverPolicy, want.OptStartTime, want.OptStartSeq = jetstream.DeliverByStartTimePolicy, &at, 0
	if cfg.PauseUntil != nil && !cfg.PauseUntil.After(now) {
		want.PauseUntil = nil
	}
	want.Metadata = map[string]string{}
	for k, v := range cfg.Metadata {
		if !strings.HasPrefix(k, "_nats.") { // the server's own
			want.Metadata[k] = v
		}
	}
	want.Metadata[metaRewoundTo], want.Metadata[metaRewoundAt] = replayTime(at), replayTime(now)

	name := cfg.Durable
	for range rewindAttempts {
		if err := stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete consumer %s: %w", name, err)
		}
		c, err := createRetrying(ctx, stream, want)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			continue // someone put another one back first
		}
		if err != nil {
			return nil, fmt.Errorf("consumer %s was deleted but could not be created again at %s: %w; forwarders recreate it from the route's own start (for the global route, the start of the stream) unless you run this again",
				name, replayTime(at), err)
		}
		got := c.CachedInfo()
		if got.Config.DeliverPolicy == jetstream.DeliverByStartTimePolicy && got.Config.OptStartTime != nil && got.Config.OptStartTime.Equal(at) {
			return got, nil
		}
	}
	return nil, fmt.Errorf("consumer %s: a forwarder put its own consumer back %d times before the rewound one could be created; run this again", name, rewindAttempts)
}

// createRetrying creates the consumer, retrying errors other than a consumer
// already there for a short while: the route has no consumer meanwhile.
func createRetrying(ctx context.Context, stream jetstream.Stream, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond), backoff.WithMaxElapsedTime(30*time.Second))
	return backoff.RetryWithData(func() (jetstream.Consumer, error) {
		c, err := stream.CreateConsumer(ctx, cfg)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			return nil, backoff.Permanent(err)
		}
		return c, err
	}, backoff.WithContext(b, ctx))
}

// askYes asks question on out and reads the answer from in: true for y or
// yes.
func askYes(in io.Reader, out io.Writer, question string) (bool, error) {
	fmt.Fprint(out, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

func eventsPlural(n uint64) string {
	if n == 1 {
		return "1 event"
	}
	return fmt.Sprintf("%d events", n)
}
