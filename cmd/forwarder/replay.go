package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

const replayIntro = `forwarder replay: send the audit events stored in a time window again, to a
route's destination, through the same sender as forwarder run (batching,
breaker, bisection, dead letters), with a progress bar and an optional rate.

  forwarder replay [--subscription SUB | --route NAME] --since T [--until T]
                   [--type EZSSH_GIT] [--rate N/s] [--dry-run] [--resume ID]

Destination: with --subscription, that subscription's route in EZSSH_SIEM;
with --route NAME, the static route NAME of --routes-file, or "global" (the
HUNTRESS_HEC_URL route); with neither, the global route. --subscription with
--route sends one subscription's events to that route. --type keeps one event
type (EZSSH_SSH, EZSSH_GIT, ...).

T is RFC 3339 (2026-01-02T15:04:05Z) or an age such as 90m, 6h or 7d ("that
long ago"), compared with the time the stream stored each event: the window is
[--since, --until), and --until defaults to the moment the replay starts.

The replay has its own durable consumer, replay-<ID>, so the route's live
consumer is never touched. Interrupted (Ctrl-C), it keeps its place: run the
same command again, or forwarder replay --resume ID, to send the rest. When it
finishes, its consumer is deleted. Events the HEC refuses are dead-lettered
under the route name replay-<ID>. --dry-run sends nothing: it counts the
window's events per type.

It connects to NATS_URL (default nats://127.0.0.1:4222, the embedded server of
a forwarder running on this machine) and never starts a server.`

// replayFlags are the settings of `forwarder replay`.
type replayFlags struct {
	conn          routesConn
	hec           hecFlags
	stream        string
	dlqStream     string
	routesFile    string
	secretKeyFile string

	subscription, route, eventType string
	sinceArg, untilArg             string
	rateArg                        string
	dryRun                         bool
	resume                         string

	batchEvents, batchBytes, inFlight int
	shutdownTimeout                   time.Duration
	logLevel, logFormat               string

	// Resolved by validate.
	kind         string // subject kind of --type; empty for every type
	since, until time.Time
	rate         float64 // events a second; 0 is unlimited
}

func (f *replayFlags) bind(s *cliflag.Set) {
	f.conn.bind(s)
	f.hec.bind(s)
	s.String(&f.stream, "stream", "FORWARDER_STREAM", audit.StreamName, "JetStream stream of audit events")
	s.String(&f.dlqStream, "dlq-stream", "FORWARDER_DLQ_STREAM", "EZSSH_AUDIT_DLQ", "JetStream stream of dead letters")
	s.String(&f.routesFile, "routes-file", "FORWARDER_ROUTES_FILE", "", "JSON or YAML file of static routes, for --route")
	s.String(&f.secretKeyFile, "secret-key-file", routes.KeyFileEnv, "", "key that opens HEC tokens sealed in EZSSH_SIEM (32 bytes: raw, hex or base64)")
	s.String(&f.subscription, "subscription", "", "", "replay this subscription's events (SubscriptionId); without --route, to its own route")
	s.String(&f.route, "route", "", "", `send to this static route of --routes-file, or "global" (HUNTRESS_HEC_URL)`)
	s.String(&f.eventType, "type", "", "", "replay only this event type, such as EZSSH_SSH or EZSSH_GIT")
	s.String(&f.sinceArg, "since", "", "", "start of the window (required): RFC 3339, or an age such as 6h or 7d")
	s.String(&f.untilArg, "until", "", "", "end of the window, exclusive: RFC 3339, or an age (default: now)")
	s.String(&f.rateArg, "rate", "", "", "at most this many events a second, such as 500 or 500/s (also /m, /h); default unlimited")
	s.Bool(&f.dryRun, "dry-run", "", false, "send nothing: count the window's events per type")
	s.String(&f.resume, "resume", "", "", "continue the interrupted replay ID (its window, filter and route are stored with it)")
	s.Int(&f.batchEvents, "batch-events", "FORWARDER_BATCH_EVENTS", 500, "a batch closes at this many events")
	s.Int(&f.batchBytes, "batch-bytes", "FORWARDER_BATCH_BYTES", 1<<20, "a batch closes before this many bytes (uncompressed)")
	s.Int(&f.inFlight, "in-flight", "FORWARDER_IN_FLIGHT", 4, "batches sent at once")
	s.Duration(&f.shutdownTimeout, "shutdown-timeout", "FORWARDER_SHUTDOWN_TIMEOUT", 10*time.Second, "time the batches in hand get to finish on Ctrl-C before they are returned to the stream")
	s.String(&f.logLevel, "log-level", "FORWARDER_LOG_LEVEL", "warn", "debug, info, warn or error")
	s.String(&f.logFormat, "log-format", "FORWARDER_LOG_FORMAT", "text", "text or json")
}

// validate checks the flags and resolves the times against now.
func (f *replayFlags) validate(now time.Time) error {
	var errs []error
	if err := f.conn.validate(); err != nil {
		errs = append(errs, err)
	}
	if f.stream == "" || f.dlqStream == "" {
		errs = append(errs, errors.New("--stream (FORWARDER_STREAM) and --dlq-stream (FORWARDER_DLQ_STREAM) must not be empty"))
	}
	if f.subscription != "" && !routes.ValidSubscription(f.subscription) {
		errs = append(errs, fmt.Errorf("--subscription %q is not a SubscriptionId: ASCII letters, digits, '-', '_' and '=', at most 128", f.subscription))
	}
	if f.route != "" && !audit.ValidSubjectToken(f.route) {
		errs = append(errs, fmt.Errorf("--route %q is not a route name", f.route))
	}
	if f.eventType != "" {
		f.kind = audit.KindOf(f.eventType)
		if !audit.ValidSubjectToken(f.kind) {
			errs = append(errs, fmt.Errorf("--type %q is not an event type such as EZSSH_SSH or EZSSH_GIT", f.eventType))
		}
	}
	if f.resume != "" {
		if f.subscription != "" || f.route != "" || f.eventType != "" || f.sinceArg != "" || f.untilArg != "" {
			errs = append(errs, errors.New("--resume takes the window, filter and route stored with the replay: give no --subscription, --route, --type, --since or --until with it"))
		}
		if !validReplayID(f.resume) {
			errs = append(errs, fmt.Errorf("--resume %q is not a replay ID (%d hexadecimal digits, as printed by an interrupted replay)", f.resume, replayIDLen))
		}
	} else {
		var err error
		switch {
		case f.sinceArg == "":
			errs = append(errs, errors.New("--since is required: the start of the window (RFC 3339, or an age such as 6h or 7d)"))
		default:
			if f.since, err = parseDLQTime(f.sinceArg, now); err != nil {
				errs = append(errs, fmt.Errorf("--since: %w", err))
			}
		}
		f.until = now
		if f.untilArg != "" {
			if f.until, err = parseDLQTime(f.untilArg, now); err != nil {
				errs = append(errs, fmt.Errorf("--until: %w", err))
			}
		}
		if !f.since.IsZero() && !f.until.IsZero() && !f.since.Before(f.until) {
			errs = append(errs, fmt.Errorf("--since (%s) must be before --until (%s)", replayTime(f.since), replayTime(f.until)))
		}
		if f.until.After(now) {
			errs = append(errs, fmt.Errorf("--until (%s) is in the future", replayTime(f.until)))
		}
	}
	if f.rateArg != "" {
		r, err := parseReplayRate(f.rateArg)
		if err != nil {
			errs = append(errs, fmt.Errorf("--rate: %w", err))
		}
		f.rate = r
	}
	if f.batchEvents <= 0 || f.batchBytes <= 0 || f.inFlight <= 0 {
		errs = append(errs, errors.New("--batch-events, --batch-bytes and --in-flight must be positive"))
	}
	if err := f.hec.tls.check(); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseLevel(f.logLevel); err != nil {
		errs = append(errs, err)
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format (FORWARDER_LOG_FORMAT) %q must be text or json", f.logFormat))
	}
	if err := errors.Join(errs...); err != nil {
		return &cliflag.UsageError{Msg: err.Error()}
	}
	return nil
}

// parseReplayRate reads "500", "500/s", "600/m" or "3600/h" as events a
// second.
func parseReplayRate(s string) (float64, error) {
	num, unit, _ := strings.Cut(s, "/")
	per := 1.0
	switch unit {
	case "", "s":
	case "m":
		per = 60
	case "h":
		per = 3600
	default:
		return 0, fmt.Errorf("%q: want N, N/s, N/m or N/h", s)
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a positive number of events, such as 500/s", s)
	}
	return n / per, nil
}

// replayTime formats a window bound for people and for the consumer's
// metadata.
func replayTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// errReplayInterrupted is returned by a replay stopped before it finished;
// its consumer is kept so that it can resume.
var errReplayInterrupted = errors.New("replay interrupted")

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f replayFlags
	s := cliflag.New("forwarder replay", replayIntro, stdout)
	f.bind(s)
	if err := s.Parse(args); err != nil {
		if isHelp(err) {
			return nil
		}
		return err
	}
	if len(s.Args()) > 0 {
		return cliflag.Usagef("unexpected argument %q (see --help)", s.Args()[0])
	}
	if err := f.validate(time.Now()); err != nil {
		return err
	}
	var key []byte
	if f.secretKeyFile != "" {
		var err error
		if key, err = routes.ReadKeyFile(f.secretKeyFile); err != nil {
			return cliflag.Usagef("--secret-key-file (%s): %v", routes.KeyFileEnv, err)
		}
	}
	// A target that cannot be resolved is a usage error: find it before
	// connecting when the flags alone can.
	var tgt replayTarget
	if f.resume == "" {
		var err error
		if tgt, err = f.target(); err != nil {
			return err
		}
	}
	log := newLogger(stderr, f.logLevel, f.logFormat).With("component", "replay")
	conn, err := f.conn.connectLog(ctx, log, "replay")
	if err != nil {
		return err
	}
	defer conn.close()
	stream, err := conn.js.Stream(ctx, f.stream)
	if err != nil {
		return fmt.Errorf("audit stream %s: %w", f.stream, err)
	}

	r := &replayer{f: &f, js: conn.js, stream: stream, key: key, log: log, stdout: stdout, stderr: stderr}
	if f.resume != "" {
		if err := r.load(ctx, f.resume); err != nil {
			return err
		}
	} else if err := r.plan(ctx, tgt); err != nil {
		return err
	}
	if f.dryRun {
		return r.dryRun(ctx)
	}
	return r.run(ctx)
}
