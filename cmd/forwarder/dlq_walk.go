package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// deadLetter is one message of the dead-letter stream.
type deadLetter struct {
	Seq     uint64
	Time    time.Time // when the stream stored it
	Subject string    // ezssh.dlq.<route>.<subscription>.<kind>
	Header  nats.Header
	Data    []byte // nil when walked headers-only
}

// token returns the i-th token after ezssh.dlq (0 route, 1 subscription,
// 2 kind).
func (d *deadLetter) token(i int) string {
	rest, ok := strings.CutPrefix(d.Subject, pipeline.DLQSubjectPrefix+".")
	if !ok {
		return ""
	}
	parts := strings.SplitN(rest, ".", 3)
	if i >= len(parts) {
		return ""
	}
	return parts[i]
}

func (d *deadLetter) route() string {
	if r := d.Header.Get(pipeline.HeaderRoute); r != "" {
		return r
	}
	return d.token(0)
}

func (d *deadLetter) subscription() string { return d.token(1) }
func (d *deadLetter) kind() string         { return d.token(2) }

// dlqWalkOptions tune walkDeadLetters.
type dlqWalkOptions struct {
	// headersOnly skips the bodies: enough for listing and purging.
	headersOnly bool
	// progress, when set, gets the number of dead letters to examine and
	// counts each one examined.
	progress *dlqProgress
}

// walkDeadLetters calls fn, in stream order, for every dead letter matching f
// that was stored before the walk began: letters added meanwhile (a redriven
// event dead-lettered again, say) are left for the next run, so a walk always
// ends. It reads the stream through one ordered consumer filtered on the
// subject, so a large stream costs one pass, not a request per message. An
// error from fn stops the walk and is returned.
func walkDeadLetters(ctx context.Context, s jetstream.Stream, f *dlqFilter, o dlqWalkOptions, fn func(*deadLetter) error) error {
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("dead-letter stream: %w", err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{f.subject()},
		HeadersOnly:       o.headersOnly,
		InactiveThreshold: time.Minute,
	}
	if !f.since.IsZero() {
		since := f.since
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("dead-letter stream: consumer: %w", err)
	}
	var opt jetstream.PullMessagesOpt = jetstream.PullMaxMessages(1000)
	if !o.headersOnly {
		// Bodies can be up to 2 MiB: bound the buffer in bytes.
		opt = jetstream.PullMaxBytes(16 << 20)
	}
	it, err := cons.Messages(opt)
	if err != nil {
		return fmt.Errorf("dead-letter stream: read: %w", err)
	}
	defer it.Stop()
	pending := uint64(0)
	if ci := cons.CachedInfo(); ci != nil {
		pending = ci.NumPending
	}
	if o.progress != nil {
		o.progress.setTotal(pending)
	}
	if pending == 0 {
		return nil
	}
	for {
		m, err := walkNext(ctx, it, cons, "dead-letter stream")
		if err != nil || m == nil {
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("dead-letter stream: %w", err)
		}
		if md.Sequence.Stream > last {
			return nil
		}
		if !f.until.IsZero() && md.Timestamp.After(f.until) {
			// Stored times follow sequence order: nothing later matches.
			return nil
		}
		d := &deadLetter{Seq: md.Sequence.Stream, Time: md.Timestamp, Subject: m.Subject(), Header: m.Headers()}
		if d.Header == nil {
			d.Header = nats.Header{}
		}
		if !o.headersOnly {
			d.Data = m.Data()
		}
		if f.match(d) {
			if err := fn(d); err != nil {
				return err
			}
		}
		if o.progress != nil {
			o.progress.add(1)
		}
		if md.NumPending == 0 || md.Sequence.Stream == last {
			return nil
		}
	}
}

// dlqWalkIdle is how long a walk waits for the next message before it asks the
// server whether any is left: letters counted as pending when the walk began
// may have been deleted meanwhile (by another dlq run, or aged out).
const dlqWalkIdle = 3 * time.Second

// walkNext returns the next message of a walk over a stream (named in
// errors by what), or nil when none is left to deliver.
func walkNext(ctx context.Context, it jetstream.MessagesContext, cons jetstream.Consumer, what string) (jetstream.Msg, error) {
	for {
		nctx, cancel := context.WithTimeout(ctx, dlqWalkIdle)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err == nil {
			return m, nil
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s: read: %w", what, err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: read: %w", what, err)
		}
		if info.NumPending == 0 {
			return nil, nil
		}
	}
}

// getDeadLetter reads one dead letter by sequence; a sequence that holds a
// route state change, or nothing, is an error.
func getDeadLetter(ctx context.Context, s jetstream.Stream, seq uint64) (*deadLetter, error) {
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("no dead letter at sequence %d (deleted, purged or aged out?)", seq)
		}
		return nil, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	if !strings.HasPrefix(m.Subject, pipeline.DLQSubjectPrefix+".") {
		return nil, fmt.Errorf("sequence %d is not a dead letter (subject %s)", seq, m.Subject)
	}
	h := m.Header
	if h == nil {
		h = nats.Header{}
	}
	return &deadLetter{Seq: m.Sequence, Time: m.Time, Subject: m.Subject, Header: h, Data: m.Data}, nil
}

// dlqForEach walks the matching dead letters with walk and runs do on
// each in up to n goroutines. The first error of do stops the walk; it is
// returned once every goroutine has finished.
func dlqForEach(ctx context.Context, n int, walk func(context.Context, func(*deadLetter) error) error, do func(context.Context, *deadLetter) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan *deadLetter, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for d := range work {
				if ctx.Err() != nil {
					continue // drain: the walk is stopping
				}
				if err := do(ctx, d); err != nil {
					cancel(err)
				}
			}
		})
	}
	err := walk(ctx, func(d *deadLetter) error {
		select {
		case work <- d:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(work)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return err
}

// dlqTally counts dead letters by route and reason, for dry runs and summaries.
type dlqTally struct {
	n                 int
	byRoute, byReason map[string]int
}

func (t *dlqTally) add(d *deadLetter) {
	if t.byRoute == nil {
		t.byRoute, t.byReason = map[string]int{}, map[string]int{}
	}
	t.n++
	t.byRoute[d.route()]++
	t.byReason[dlqOrDash(d.Header.Get(pipeline.HeaderReason))]++
}

// write prints the counts as two indented lines.
func (t *dlqTally) write(w io.Writer) {
	if t.n == 0 {
		return
	}
	fmt.Fprintf(w, "  by route:  %s\n", dlqJoinCounts(t.byRoute))
	fmt.Fprintf(w, "  by reason: %s\n", dlqJoinCounts(t.byReason))
}

func dlqJoinCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// dlqPlural is "1 dead letter" or "n dead letters".
func dlqPlural(n int) string {
	if n == 1 {
		return "1 dead letter"
	}
	return fmt.Sprintf("%d dead letters", n)
}
