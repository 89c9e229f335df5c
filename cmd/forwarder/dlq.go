package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

const dlqUsage = `forwarder dlq: inspect and act on dead letters, the events the forwarder gave
up on (stream EZSSH_AUDIT_DLQ, subjects ezssh.dlq.<route>.<subscription>.<kind>).

Usage:
  forwarder dlq list [filters] [--json] [--limit N]   list dead letters
  forwarder dlq show SEQ [--json]                     one dead letter: headers and body
  forwarder dlq redrive [filters] [--dry-run] [--keep]
                        republish each to its original subject, then delete it
  forwarder dlq purge [filters] [--dry-run] [--all]   delete dead letters

Filters (all optional, combined with AND):
  --route NAME  --subscription ID  --reason invalid|rejected|undeliverable
  --since T  --until T   T is RFC 3339 (2026-01-02T15:04:05Z) or an age such as
                         90m, 6h or 7d ("that long ago"); compared with the time
                         the dead letter was stored

The commands connect to NATS_URL (default nats://127.0.0.1:4222, the embedded
server of a forwarder running on this machine); they never start a server.
Run "forwarder dlq COMMAND --help" for a command's flags.
`

// Dead-letter reasons, as written by the pipeline in pipeline.HeaderReason.
var dlqReasons = []string{"invalid", "rejected", "undeliverable"}

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return cliflag.Usagef("dlq: name a command: list, show, redrive or purge")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "list":
		return runDLQList(ctx, args, stdout, stderr)
	case "show":
		return runDLQShow(ctx, args, stdout, stderr)
	case "redrive":
		return runDLQRedrive(ctx, args, stdout, stderr)
	case "purge":
		return runDLQPurge(ctx, args, stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, dlqUsage)
		return nil
	}
	fmt.Fprint(stderr, dlqUsage)
	return cliflag.Usagef("dlq: unknown command %q (want list, show, redrive or purge)", cmd)
}

// dlqConn are the connection settings every dlq command takes.
type dlqConn struct {
	adminConn
	stream string
}

func (c *dlqConn) bind(s *cliflag.Set) {
	c.adminConn.bind(s)
	s.String(&c.stream, "dlq-stream", "FORWARDER_DLQ_STREAM", "EZSSH_AUDIT_DLQ", "JetStream stream of dead letters")
}

func (c *dlqConn) validate() error {
	if c.stream == "" {
		return cliflag.Usagef("--dlq-stream (FORWARDER_DLQ_STREAM) must not be empty")
	}
	return c.adminConn.validate()
}

// open connects and looks up the dead-letter stream. The caller closes the
// connection.
func (c *dlqConn) open(ctx context.Context, stderr io.Writer) (*connection, jetstream.Stream, error) {
	conn, err := c.connect(ctx, stderr, "dlq")
	if err != nil {
		return nil, nil, err
	}
	s, err := conn.js.Stream(ctx, c.stream)
	if err != nil {
		conn.close()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, nil, fmt.Errorf("dead-letter stream %s does not exist on this server (is --dlq-stream or NATS_URL right? the forwarder creates it at start)", c.stream)
		}
		return nil, nil, fmt.Errorf("dead-letter stream %s: %w", c.stream, err)
	}
	return conn, s, nil
}

// dlqFilter selects dead letters. The zero value selects all of them.
type dlqFilter struct {
	route, subscription, reason string
	sinceArg, untilArg          string
	since, until                time.Time // zero: unbounded
}

func (f *dlqFilter) bind(s *cliflag.Set) {
	s.String(&f.route, "route", "", "", "only dead letters of this route")
	s.String(&f.subscription, "subscription", "", "", "only dead letters of this EZSSH subscription (SubscriptionId)")
	s.String(&f.reason, "reason", "", "", "only this reason: invalid, rejected or undeliverable")
	s.String(&f.sinceArg, "since", "", "", "only dead letters stored at or after this time: RFC 3339, or an age such as 6h or 7d")
	s.String(&f.untilArg, "until", "", "", "only dead letters stored at or before this time: RFC 3339, or an age such as 6h or 7d")
}

// parse checks the filter flags and resolves --since and --until against now.
func (f *dlqFilter) parse(now time.Time) error {
	var errs []error
	if f.route != "" && !audit.ValidSubjectToken(f.route) {
		errs = append(errs, fmt.Errorf("--route %q is not a route name (one subject token: no '.', '*', '>' or spaces)", f.route))
	}
	if f.subscription != "" && !audit.ValidSubjectToken(f.subscription) {
		errs = append(errs, fmt.Errorf("--subscription %q is not a SubscriptionId (one subject token: no '.', '*', '>' or spaces)", f.subscription))
	}
	if f.reason != "" && !validDLQReason(f.reason) {
		errs = append(errs, fmt.Errorf("--reason %q must be one of %s", f.reason, strings.Join(dlqReasons, ", ")))
	}
	var err error
	if f.since, err = parseDLQTime(f.sinceArg, now); err != nil {
		errs = append(errs, fmt.Errorf("--since: %w", err))
	}
	if f.until, err = parseDLQTime(f.untilArg, now); err != nil {
		errs = append(errs, fmt.Errorf("--until: %w", err))
	}
	if !f.since.IsZero() && !f.until.IsZero() && f.until.Before(f.since) {
		errs = append(errs, fmt.Errorf("--until %s is before --since %s", f.untilArg, f.sinceArg))
	}
	if err := errors.Join(errs...); err != nil {
		return &cliflag.UsageError{Msg: err.Error()}
	}
	return nil
}

func validDLQReason(r string) bool {
	for _, v := range dlqReasons {
		if r == v {
			return true
		}
	}
	return false
}

// parseDLQTime reads an RFC 3339 time or an age ("6h", "90m", "7d", "1d12h")
// meaning that long before now. Empty is the zero time.
func parseDLQTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := parseDLQAge(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor an age such as 6h or 7d", s)
	}
	return now.Add(-d), nil
}

// parseDLQAge is time.ParseDuration that also takes a leading number of days.
func parseDLQAge(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 {
			return 0, errors.New("bad days")
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("bad duration")
	}
	return days + d, nil
}

// subject is the stream filter of the route and subscription filters. Route
// state changes (ezssh.route.>) share the stream and never match it.
func (f *dlqFilter) subject() string {
	if f.route == "" && f.subscription == "" {
		return pipeline.DLQSubjectPrefix + ".>"
	}
	tok := func(s string) string {
		if s == "" {
			return "*"
		}
		return s
	}
	return pipeline.DLQSubjectPrefix + "." + tok(f.route) + "." + tok(f.subscription) + ".>"
}

// none reports whether no filter was given.
func (f *dlqFilter) none() bool {
	return f.route == "" && f.subscription == "" && f.reason == "" && f.sinceArg == "" && f.untilArg == ""
}

// subjectOnly reports whether the subject filter alone selects the matches.
func (f *dlqFilter) subjectOnly() bool {
	return f.reason == "" && f.sinceArg == "" && f.untilArg == ""
}

// match applies the filters the subject cannot express.
func (f *dlqFilter) match(d *deadLetter) bool {
	if f.reason != "" && d.Header.Get(pipeline.HeaderReason) != f.reason {
		return false
	}
	if !f.since.IsZero() && d.Time.Before(f.since) {
		return false
	}
	if !f.until.IsZero() && d.Time.After(f.until) {
		return false
	}
	return true
}

// parseDLQFlags parses a dlq command's flags; help is true after --help was
// printed.
func parseDLQFlags(s *cliflag.Set, args []string, c *dlqConn, f *dlqFilter) (help bool, err error) {
	if err := s.Parse(args); err != nil {
		if isHelp(err) {
			return true, nil
		}
		return false, err
	}
	if err := c.validate(); err != nil {
		return false, err
	}
	if f != nil {
		if err := f.parse(time.Now()); err != nil {
			return false, err
		}
		if len(s.Args()) > 0 {
			return false, cliflag.Usagef("unexpected argument %q (see --help)", s.Args()[0])
		}
	}
	return false, nil
}
