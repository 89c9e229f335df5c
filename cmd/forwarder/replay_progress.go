package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// replayProgress draws the replay's progress, like dlqProgress (whose bar it
// uses) with an ETA, and a rate that counts this run only:
//
//	replay 3f2a9c1b7d04 1234/5000 [====>               ] 410/s ETA 9s
//
// set is safe for concurrent use; start and stop are not.
type replayProgress struct {
	w     io.Writer
	label string
	tty   bool
	// after is how long a run lasts before anything is drawn; every is the
	// least interval between draws (as for dlqProgress).
	after, every time.Duration

	done, total, base atomic.Uint64 // base: done before this run
	began             time.Time
	drawn             bool
	quit, finished    chan struct{}
	once              sync.Once
}

func newReplayProgress(w io.Writer, label string) *replayProgress {
	d := newDLQProgress(w, label) // the same terminal detection and pacing
	return &replayProgress{w: w, label: label, tty: d.tty, after: d.after, every: d.every}
}

// set records done of total events, of which base were done before this run.
func (p *replayProgress) set(done, total, base uint64) {
	p.done.Store(done)
	p.total.Store(total)
	p.base.Store(base)
}

// setDone records done events.
func (p *replayProgress) setDone(done uint64) { p.done.Store(done) }

// start begins drawing; stop must follow.
func (p *replayProgress) start() {
	p.began = time.Now()
	p.quit, p.finished = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.finished)
		t := time.NewTicker(min(p.every, 100*time.Millisecond))
		defer t.Stop()
		var last time.Time
		for {
			select {
			case <-p.quit:
				return
			case now := <-t.C:
				if now.Sub(p.began) >= p.after && now.Sub(last) >= p.every {
					p.draw()
					last = now
				}
			}
		}
	}()
}

// stop stops drawing and, if a bar was drawn, draws it a last time and ends
// its line. It is idempotent.
func (p *replayProgress) stop() {
	p.once.Do(func() {
		if p.quit == nil {
			return
		}
		close(p.quit)
		<-p.finished
		if p.drawn {
			p.draw()
			if p.tty {
				fmt.Fprintln(p.w)
			}
		}
	})
}

func (p *replayProgress) draw() {
	p.drawn = true
	fmt.Fprint(p.w, p.line(time.Since(p.began)))
}

// line renders the progress after elapsed of this run.
func (p *replayProgress) line(elapsed time.Duration) string {
	done, total, base := p.done.Load(), p.total.Load(), p.base.Load()
	shown := min(done, total)
	rate := float64(done-min(base, done)) / max(elapsed.Seconds(), 0.001)
	eta := "ETA -"
	switch {
	case shown >= total:
		eta = "ETA 0s"
	case rate > 0:
		eta = "ETA " + time.Duration(float64(total-shown)/rate*float64(time.Second)).Round(time.Second).String()
	}
	s := fmt.Sprintf("%s %d/%d %s %.0f/s %s", p.label, shown, total, dlqBar(shown, total, 20), rate, eta)
	if p.tty {
		return "\r" + s + "\x1b[K"
	}
	return s + "\n"
}
