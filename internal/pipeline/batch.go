package pipeline

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// envelopeOverhead approximates the bytes a destination wraps around each event
// (the HEC envelope), so that MaxBatchBytes bounds the request body.
const envelopeOverhead = 160

// batch is messages in hand and the events they carry, index for index.
type batch struct {
	msgs  []jetstream.Msg
	evs   []delivery.Event
	bytes int
	// touched is when the messages' redelivery timers were last reset: by the
	// batch loop until a sender takes the batch, then by the keeper under
	// heldSet's lock.
	touched time.Time
}

func newBatch(capacity int) *batch {
	return &batch{
		msgs:    make([]jetstream.Msg, 0, capacity),
		evs:     make([]delivery.Event, 0, capacity),
		touched: time.Now(),
	}
}

// keepAlive resets the redelivery timers of the batch's messages if they were
// last reset at least every ago.
func (b *batch) keepAlive(now time.Time, every time.Duration) {
	if now.Sub(b.touched) < every {
		return
	}
	b.touched = now
	for _, m := range b.msgs {
		// A message already settled ignores this; one whose InProgress is
		// lost is at worst delivered twice.
		_ = m.InProgress()
	}
}

func (b *batch) add(m jetstream.Msg, ev delivery.Event) {
	b.msgs = append(b.msgs, m)
	b.evs = append(b.evs, ev)
	b.bytes += len(ev.Body) + envelopeOverhead
}

// batchLoop turns the route's messages into batches for the senders.
//
// Batching adapts to load: a batch that is not full is offered to the senders
// at once (or after Linger), and a sender that is free takes it. Under light
// load every event goes as soon as it arrives; under heavy load all senders are
// busy, so events accumulate into full batches while they work. A full batch
// blocks the loop until a sender takes it, which is the route's backpressure.
//
// While a full batch waits for a sender, or an event for memory budget, the
// loop still takes what the pull loop has in hand, up to the prefetch, into a
// backlog whose messages it keeps alive like the batch's: during an outage
// longer than the ack wait, nothing pulled expires and comes back to be sent
// twice. When the breaker opens, or such a wait lasts a keepalive period
// (see stall), the pull loop stops pulling, so the backlog ends at what was
// already buffered.
//
// When in is closed (the route stops pulling), the batch in hand is still
// offered until hard is done, then NAKed. batchLoop closes r.batches on return.
func (r *runner) batchLoop(hard context.Context, in <-chan jetstream.Msg) {
	defer close(r.batches)
	defer close(r.quarantine)
	var (
		cur      *batch
		lingerC  <-chan time.Time
		lingered bool
		timer    *time.Timer
		backlog  waiting
		inOpen   = true
	)
	defer backlog.nak() // only at shutdown, when nothing takes them any more
	every := r.cfg.AckWait / 3
	keepalive := time.NewTicker(every)
	defer keepalive.Stop()
	maxBacklog := r.prefetch + cap(in)
	// waitIn is what a wait of the loop (st) takes from the pull loop: up to
	// the cap while the route is healthy and still pulling; once its
	// breaker opened, or the wait stalled the pulling, it pulls no more, and
	// all that was buffered is taken. nil when nothing is to be taken.
	waitIn := func(st *stall) <-chan jetstream.Msg {
		if inOpen && (st.holding || backlog.len() < maxBacklog || !r.breaker.isHealthy()) {
			return in
		}
		return nil
	}
	// takeIn puts what a wait took from the pull loop into the backlog.
	takeIn := func(st *stall, m jetstream.Msg, ok bool) {
		if !ok {
			inOpen = false
			return
		}
		st.took(m)
		backlog.add(m)
	}
	// handOff blocks until a sender takes the batch being filled. held, when
	// not nil, is a message in hand outside any batch, kept alive too.
	handOff := func(held jetstream.Msg) {
		b := cur
		cur, lingerC, lingered = nil, nil, false
		if timer != nil {
			timer.Stop()
		}
		st := stall{r: r}
		defer st.end()
		for {
			select {
			case r.batches <- b:
				return
			case m, ok := <-waitIn(&st):
				takeIn(&st, m, ok)
			case now := <-keepalive.C:
				b.keepAlive(now, every)
				backlog.keepAlive()
				if held != nil {
					_ = held.InProgress()
				}
				st.tick()
			case <-hard.Done():
				r.settleNak(b.msgs)
				return
			}
		}
	}
	// waitBudget waits for the budget of an event of n bytes, m in hand, and
	// reports whether it came (false: hard is done). Other routes' batches
	// hold the budget, maybe for long if their destinations are down; the
	// wait keeps m and the backlog alive, and stalls like handOff's.
	waitBudget := func(m jetstream.Msg, n int) bool {
		got := make(chan error, 1)
		go func() { got <- r.budget.acquire(hard, n) }() // ends with hard at the latest
		st := stall{r: r}
		defer st.end()
		for {
			select {
			case err := <-got:
				return err == nil
			case m, ok := <-waitIn(&st):
				takeIn(&st, m, ok)
			case <-keepalive.C:
				_ = m.InProgress()
				backlog.keepAlive()
				st.tick()
			}
		}
	}
	// add admits m and adds it to the batch being filled, handing the batch
	// off when it is full.
	add := func(m jetstream.Msg) {
		ev, md, ok := r.admit(hard, m)
		if !ok {
			return
		}
		if !r.budget.tryAcquire(len(ev.Body)) {
			// Do not sit on a partial batch while waiting for budget:
			// send it, so that it can be settled and give budget back.
			if cur != nil {
				handOff(m)
			}
			if !waitBudget(m, len(ev.Body)) {
				_ = m.Nak()
				return
			}
		}
		if md != nil && md.NumDelivered > suspectAfter {
			select {
			case r.quarantine <- suspect{msg: m, ev: ev, seq: md.Sequence.Stream, delivered: md.NumDelivered}:
			case <-hard.Done():
				r.settleNak([]jetstream.Msg{m})
			}
			return
		}
		if cur != nil && cur.bytes+len(ev.Body)+envelopeOverhead > r.cfg.MaxBatchBytes {
			handOff(m)
		}
		if cur == nil {
			cur = newBatch(r.cfg.MaxBatchEvents)
			if r.cfg.Linger > 0 {
				if timer == nil {
					timer = time.NewTimer(r.cfg.Linger)
				} else {
					timer.Reset(r.cfg.Linger)
				}
				lingerC = timer.C
			}
		}
		cur.add(m, ev)
		if len(cur.evs) >= r.cfg.MaxBatchEvents {
			handOff(nil)
		}
	}
	for {
		if m, ok := backlog.pop(); ok {
			add(m)
			continue
		}
		var out chan<- *batch
		if cur != nil && (r.cfg.Linger <= 0 || lingered) {
			out = r.batches
		}
		select {
		case m, ok := <-in:
			if !ok {
				if cur != nil {
					handOff(nil)
				}
				if backlog.len() > 0 { // taken while that last batch waited
					continue
				}
				return
			}
			add(m)
		case out <- cur:
			cur, lingerC, lingered = nil, nil, false
		case now := <-keepalive.C:
			// The batch being filled can wait long when every sender is
			// busy retrying: keep its messages from being redelivered.
			if cur != nil {
				cur.keepAlive(now, every)
			}
		case <-lingerC:
			lingered, lingerC = true, nil
		}
	}
}

// stall is a wait of the batch loop, for a sender to take a full batch or for
// memory budget. Messages it has not taken yet wait in the pull loop and the
// client's buffer, where nothing keeps them alive; so once the wait has
// lasted a whole keepalive period (its second tick), it stops the pulling
// until the wait ends. The batch loop then takes all that was buffered into
// its backlog, and each message is kept alive as it comes, since it may
// have waited unseen for most of that time.
type stall struct {
	r       *runner
	ticks   int
	holding bool
}

func (s *stall) tick() {
	s.ticks++
	if s.ticks >= 2 && !s.holding {
		s.holding = true
		s.r.stats.stalls.Add(1)
		s.r.in.stalls.Add(context.Background(), 1, s.r.addAttrs...)
		s.r.log.Debug("batch loop stalled (senders busy, or memory budget spent); pulling stopped meanwhile")
		s.r.pull.hold(true)
	}
}

// took is told about each message taken during the wait.
func (s *stall) took(m jetstream.Msg) {
	if s.holding {
		_ = m.InProgress()
	}
}

func (s *stall) end() {
	if s.holding {
		s.r.pull.hold(false)
	}
}

// waiting is the batch loop's backlog: messages taken from the pull loop
// while a full batch waited for a sender, in the order they came. They are
// not admitted yet, so they hold no budget; the prefetch bounds them.
type waiting struct {
	msgs []jetstream.Msg
	next int // msgs[next:] are still waiting
}

func (w *waiting) len() int { return len(w.msgs) - w.next }

func (w *waiting) add(m jetstream.Msg) {
	if w.len() == 0 {
		w.msgs, w.next = w.msgs[:0], 0
	}
	w.msgs = append(w.msgs, m)
}

func (w *waiting) pop() (jetstream.Msg, bool) {
	if w.len() == 0 {
		return nil, false
	}
	m := w.msgs[w.next]
	w.msgs[w.next] = nil
	w.next++
	return m, true
}

// keepAlive resets the redelivery timers of the waiting messages. It runs
// every third of the ack wait, whenever each of them arrived: a message may
// have waited in the client's buffer before it was taken.
func (w *waiting) keepAlive() {
	for _, m := range w.msgs[w.next:] {
		_ = m.InProgress()
	}
}

// nak returns the waiting messages to the stream.
func (w *waiting) nak() {
	for m, ok := w.pop(); ok; m, ok = w.pop() {
		_ = m.Nak()
	}
}

// admit checks a message before it joins a batch. A message that is not a
// valid event, or that came back more than MaxDeliveries times, is
// dead-lettered here and admit returns ok false. md is the message's metadata
// when it came back at least once (nil on a first delivery, the common case).
func (r *runner) admit(ctx context.Context, m jetstream.Msg) (ev delivery.Event, md *jetstream.MsgMetadata, ok bool) {
	if delivered, seq, ok := ackInfo(m.Reply()); ok && delivered <= 1 && (r.route.UntilSeq == 0 || seq <= r.route.UntilSeq) {
		// A first delivery within range, the common case: no metadata to
		// decode.
		return r.admitEvent(ctx, m, nil)
	}
	meta, err := m.Metadata()
	if err == nil && r.route.UntilSeq > 0 && meta.Sequence.Stream > r.route.UntilSeq {
		// Past the end of a replay: not ours to deliver.
		_ = m.Nak()
		if !r.stats.ended.Swap(true) {
			r.pull.drain(true)
		}
		return delivery.Event{}, nil, false
	}
	if err == nil && meta.NumDelivered > 1 {
		if meta.NumDelivered > uint64(r.cfg.MaxDeliveries) {
			r.countReceived(ctx)
			r.deadLetter(ctx, m, reasonUndeliverable, errUndeliverable(meta.NumDelivered))
			return delivery.Event{}, nil, false
		}
		md = meta
	}
	return r.admitEvent(ctx, m, md)
}

func (r *runner) countReceived(ctx context.Context) {
	r.stats.received.Add(1)
	r.in.received.Add(ctx, 1, r.addAttrs...)
}

// admitEvent is the rest of admit, for a message in range and under its
// delivery limit; md is its metadata when it came back at least once.
func (r *runner) admitEvent(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata) (delivery.Event, *jetstream.MsgMetadata, bool) {
	r.countReceived(ctx)
	if r.limiter != nil {
		if err := r.limiter.Wait(ctx); err != nil {
			_ = m.Nak()
			return delivery.Event{}, nil, false
		}
	}
	fields, err := audit.Inspect(m.Data())
	if err != nil {
		r.deadLetter(ctx, m, reasonInvalid, err)
		return delivery.Event{}, nil, false
	}
	return delivery.Event{Time: fields.RequestDate, Body: m.Data()}, md, true
}
