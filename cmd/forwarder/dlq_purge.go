package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
)

const dlqPurgeIntro = `forwarder dlq purge: delete dead letters for good. Name which with the
filters, or pass --all to delete every dead letter (route state changes,
kept in the same stream for the notifier, are never touched). Dead letters
stored after the run began are kept.`

func runDLQPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c        dlqConn
		f        dlqFilter
		dryRun   bool
		all      bool
		parallel int
		s        = cliflag.New("forwarder dlq purge", dlqPurgeIntro, stdout)
	)
	c.bind(s)
	f.bind(s)
	s.Bool(&dryRun, "dry-run", "", false, "only count what would be deleted")
	s.Bool(&all, "all", "", false, "with no filter, delete every dead letter")
	s.Int(&parallel, "parallel", "FORWARDER_DLQ_PARALLEL", 8, "dead letters deleted at once (when --reason, --since or --until is given)")
	if help, err := parseDLQFlags(s, args, &c, &f); help || err != nil {
		return err
	}
	if f.none() && !all {
		return cliflag.Usagef("dlq purge with no filter would delete every dead letter: name which with --route, --subscription, --reason, --since or --until, or pass --all")
	}
	if parallel <= 0 {
		return cliflag.Usagef("--parallel (FORWARDER_DLQ_PARALLEL) must be positive")
	}
	conn, dlq, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer conn.close()

	if dryRun {
		var t dlqTally
		err := walkDeadLetters(ctx, dlq, &f, dlqWalkOptions{headersOnly: true}, func(d *deadLetter) error {
			t.add(d)
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "dry run: %s would be deleted; nothing was changed\n", dlqPlural(t.n))
		t.write(stdout)
		return nil
	}

	if f.subjectOnly() {
		// One server-side purge of the subject, bounded to what is there now.
		n, err := dlqPurgeSubject(ctx, dlq, f.subject())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s (%s)\n", dlqPlural(n), f.subject())
		return nil
	}

	var deleted atomic.Int64
	prog := newDLQProgress(stderr, "purge")
	prog.start()
	err = dlqForEach(ctx, parallel,
		func(ctx context.Context, fn func(*deadLetter) error) error {
			return walkDeadLetters(ctx, dlq, &f, dlqWalkOptions{headersOnly: true, progress: prog}, fn)
		},
		func(ctx context.Context, d *deadLetter) error {
			err := dlq.DeleteMsg(ctx, d.Seq)
			if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("delete dead letter %d: %w", d.Seq, err)
			}
			deleted.Add(1)
			return nil
		})
	prog.stop()
	fmt.Fprintf(stdout, "deleted %s\n", dlqPlural(int(deleted.Load())))
	if err != nil {
		return fmt.Errorf("purge stopped: %w", err)
	}
	return nil
}

// dlqPurgeSubject deletes every message on subject stored so far and returns
// how many there were.
func dlqPurgeSubject(ctx context.Context, dlq jetstream.Stream, subject string) (int, error) {
	info, err := dlq.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("dead-letter stream: %w", err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	if n == 0 {
		return 0, nil
	}
	if err := dlq.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(info.State.LastSeq+1)); err != nil {
		return 0, fmt.Errorf("purge %s: %w", subject, err)
	}
	return int(n), nil
}
