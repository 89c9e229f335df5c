package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

const dlqRedriveIntro = `forwarder dlq redrive: republish dead letters to their original subject
(header Ezssh-Dlq-Subject) in the audit stream, body byte for byte, so every
route delivers them again; then delete each dead letter once the audit stream
acknowledged it (--keep leaves them). Fix the cause first: an event the HEC
still refuses, or an invalid one, is dead-lettered again.

Each republished message gets Nats-Msg-Id <EventId>-redrive-<SEQ>: new, so the
audit stream's duplicate window does not drop it as the original, and the
same for the same dead letter, so an interrupted redrive run again within the
window does not publish it twice. Dead letters stored after the run began are
left for the next run.`

// headerRedrivenFrom marks a republished event with the dead letter it came
// from: <dlq stream>/<seq>.
const headerRedrivenFrom = "Ezssh-Redriven-From"

type dlqRedriveFlags struct {
	conn     dlqConn
	filter   dlqFilter
	stream   string
	dryRun   bool
	keep     bool
	parallel int
}

func runDLQRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f dlqRedriveFlags
	s := cliflag.New("forwarder dlq redrive", dlqRedriveIntro, stdout)
	f.conn.bind(s)
	f.filter.bind(s)
	s.String(&f.stream, "stream", "FORWARDER_STREAM", audit.StreamName, "the audit stream the events are republished to")
	s.Bool(&f.dryRun, "dry-run", "", false, "only count what would be redriven")
	s.Bool(&f.keep, "keep", "", false, "keep the dead letters after republishing them")
	s.Int(&f.parallel, "parallel", "FORWARDER_DLQ_PARALLEL", 8, "dead letters republished at once")
	if help, err := parseDLQFlags(s, args, &f.conn, &f.filter); help || err != nil {
		return err
	}
	if f.stream == "" {
		return cliflag.Usagef("--stream (FORWARDER_STREAM) must not be empty")
	}
	if f.parallel <= 0 {
		return cliflag.Usagef("--parallel (FORWARDER_DLQ_PARALLEL) must be positive")
	}
	conn, dlq, err := f.conn.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer conn.close()

	if f.dryRun {
		var t dlqTally
		skip := 0
		err := walkDeadLetters(ctx, dlq, &f.filter, dlqWalkOptions{headersOnly: true}, func(d *deadLetter) error {
			if _, ok := dlqOriginalSubject(d); !ok {
				skip++
				return nil
			}
			t.add(d)
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "dry run: %s would be republished to %s; nothing was changed\n", dlqPlural(t.n), f.stream)
		t.write(stdout)
		if skip > 0 {
			fmt.Fprintf(stdout, "%s would be skipped: no valid original subject (%s)\n", dlqPlural(skip), pipeline.HeaderSubject)
		}
		return nil
	}

	var (
		redriven, dups, skipped atomic.Int64
		mu                      sync.Mutex
		skippedSeqs             []uint64 // the first few, for the summary
	)
	prog := newDLQProgress(stderr, "redrive")
	prog.start()
	err = dlqForEach(ctx, f.parallel,
		func(ctx context.Context, fn func(*deadLetter) error) error {
			return walkDeadLetters(ctx, dlq, &f.filter, dlqWalkOptions{progress: prog}, fn)
		},
		func(ctx context.Context, d *deadLetter) error {
			dup, err := redriveOne(ctx, conn.js, dlq, d, f.stream, f.conn.stream, f.keep)
			switch {
			case errors.Is(err, errDLQNoOriginal):
				if skipped.Add(1) <= dlqMaxSkippedShown {
					mu.Lock()
					skippedSeqs = append(skippedSeqs, d.Seq)
					mu.Unlock()
				}
				return nil
			case err != nil:
				return err
			}
			redriven.Add(1)
			if dup {
				dups.Add(1)
			}
			return nil
		})
	prog.stop()

	n := int(redriven.Load())
	switch {
	case f.keep:
		fmt.Fprintf(stdout, "redrove %s to %s (kept in %s: --keep)\n", dlqPlural(n), f.stream, f.conn.stream)
	default:
		fmt.Fprintf(stdout, "redrove %s to %s (deleted from %s)\n", dlqPlural(n), f.stream, f.conn.stream)
	}
	if d := dups.Load(); d > 0 {
		fmt.Fprintf(stdout, "%s had already been republished by an earlier run (deduplicated by the audit stream)\n", dlqPlural(int(d)))
	}
	if sk := skipped.Load(); sk > 0 {
		slices.Sort(skippedSeqs)
		seqs := fmt.Sprint(skippedSeqs)
		if sk > dlqMaxSkippedShown {
			seqs = strings.TrimSuffix(seqs, "]") + " …]"
		}
		fmt.Fprintf(stdout, "skipped %s with no valid original subject (%s), left in place: %s\n",
			dlqPlural(int(sk)), pipeline.HeaderSubject, seqs)
	}
	if err != nil {
		return fmt.Errorf("redrive stopped: %w", err)
	}
	return nil
}

var errDLQNoOriginal = errors.New("no valid original subject")

// dlqMaxSkippedShown bounds the skipped sequences the summary lists.
const dlqMaxSkippedShown = 10

// redriveOne republishes d to its original subject, waits for the audit stream's
// PubAck, then deletes d unless keep. dup reports that the audit stream
// already had it (an earlier, interrupted run).
func redriveOne(ctx context.Context, js jetstream.JetStream, dlq jetstream.Stream, d *deadLetter, stream, dlqStream string, keep bool) (dup bool, err error) {
	subj, ok := dlqOriginalSubject(d)
	if !ok {
		return false, fmt.Errorf("%w: %s is %q", errDLQNoOriginal, pipeline.HeaderSubject, d.Header.Get(pipeline.HeaderSubject))
	}
	m := nats.NewMsg(subj)
	m.Data = d.Data
	m.Header.Set(jetstream.MsgIDHeader, dlqRedriveMsgID(d, dlqStream))
	m.Header.Set(headerRedrivenFrom, dlqStream+"/"+strconv.FormatUint(d.Seq, 10))
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ack, err := js.PublishMsg(pctx, m, jetstream.WithExpectStream(stream))
	cancel()
	if err != nil {
		return false, fmt.Errorf("republish dead letter %d to %s: %w", d.Seq, subj, err)
	}
	if keep {
		return ack.Duplicate, nil
	}
	if err := dlq.DeleteMsg(ctx, d.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, fmt.Errorf("dead letter %d was republished (%s seq %d) but not deleted: %w; running redrive again within 2 minutes will not publish it twice",
			d.Seq, stream, ack.Sequence, err)
	}
	return ack.Duplicate, nil
}

// dlqOriginalSubject is the dead letter's original audit subject,
// ezssh.audit.<subscription>.<kind>, if it has a valid one.
func dlqOriginalSubject(d *deadLetter) (string, bool) {
	s := d.Header.Get(pipeline.HeaderSubject)
	rest, ok := strings.CutPrefix(s, audit.SubjectPrefix+".")
	if !ok {
		return "", false
	}
	toks := strings.Split(rest, ".")
	if len(toks) != 2 {
		return "", false
	}
	for _, t := range toks {
		if !audit.ValidSubjectToken(t) {
			return "", false
		}
	}
	return s, true
}

// dlqRedriveMsgID is the Nats-Msg-Id of a redriven dead letter:
// <EventId>-redrive-<seq>, or redrive-<dlq stream>-<seq> when the body has no
// usable EventId. It differs from the original's (the EventId) and is the
// same every time the same dead letter is redriven.
func dlqRedriveMsgID(d *deadLetter, dlqStream string) string {
	id := ""
	if f, err := audit.Inspect(d.Data); err == nil {
		id = f.EventId
	} else {
		var v struct{ EventId string }
		if json.Unmarshal(d.Data, &v) == nil {
			id = v.EventId
		}
	}
	seq := strconv.FormatUint(d.Seq, 10)
	if !dlqUsableID(id) {
		return "redrive-" + dlqStream + "-" + seq
	}
	return id + "-redrive-" + seq
}

// dlqUsableID reports whether id can go in a header as it is.
func dlqUsableID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c == 0x7f {
			return false
		}
	}
	return true
}
