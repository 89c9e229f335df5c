package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// dlqProgress draws a progress bar on a terminal, or a plain line every few
// seconds elsewhere, for runs that last longer than a second:
//
//	redrive 1234/5000 [=====>              ] 410/s
//	replay 3f2a9c1b7d04 1234/5000 [====>               ] 410/s ETA 9s
//
// With eta set it also shows the time left; the rate counts only what was
// done in this run (above base). The counts are safe for concurrent use;
// start and stop are not.
type dlqProgress struct {
	w     io.Writer
	label string
	tty   bool
	// after is how long a run lasts before anything is drawn; every is the
	// least interval between draws. Defaults: 1s, and 200ms on a terminal
	// or 5s elsewhere.
	after, every time.Duration

	eta bool

	total, done atomic.Uint64
	base        atomic.Uint64 // done before this run
	began       time.Time
	drawn       bool
	quit        chan struct{}
	finished    chan struct{}
	once        sync.Once
}

func newDLQProgress(w io.Writer, label string) *dlqProgress {
	p := &dlqProgress{w: w, label: label, after: time.Second, every: 5 * time.Second}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.every = true, 200*time.Millisecond
		}
	}
	return p
}

func (p *dlqProgress) setTotal(n uint64) { p.total.Store(n) }
func (p *dlqProgress) add(n uint64)      { p.done.Add(n) }

// set records done of total, of which base were done before this run.
func (p *dlqProgress) set(done, total, base uint64) {
	p.done.Store(done)
	p.total.Store(total)
	p.base.Store(base)
}

// setDone records done.
func (p *dlqProgress) setDone(done uint64) { p.done.Store(done) }

// start begins drawing; stop must follow.
func (p *dlqProgress) start() {
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

// stop stops drawing and, if a bar was drawn, ends its line. It is
// idempotent.
func (p *dlqProgress) stop() {
	p.once.Do(func() {
		if p.quit == nil {
			return // never started
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

func (p *dlqProgress) draw() {
	p.drawn = true
	fmt.Fprint(p.w, p.line(time.Since(p.began)))
}

// line renders the progress after elapsed of this run.
func (p *dlqProgress) line(elapsed time.Duration) string {
	done, base := p.done.Load(), p.base.Load()
	total := max(p.total.Load(), done)
	rate := float64(done-min(base, done)) / max(elapsed.Seconds(), 0.001)
	s := fmt.Sprintf("%s %d/%d %s %.0f/s", p.label, done, total, dlqBar(done, total, 20), rate)
	if p.eta {
		switch {
		case done >= total:
			s += " ETA 0s"
		case rate > 0:
			s += " ETA " + time.Duration(float64(total-done)/rate*float64(time.Second)).Round(time.Second).String()
		default:
			s += " ETA -"
		}
	}
	if p.tty {
		return "\r" + s + "\x1b[K"
	}
	return s + "\n"
}

// dlqBar renders done/total as [=====>    ] of width cells.
func dlqBar(done, total uint64, width int) string {
	n := width
	if total > 0 {
		n = int(done * uint64(width) / total)
	}
	switch {
	case n >= width:
		return "[" + strings.Repeat("=", width) + "]"
	case n <= 0:
		return "[>" + strings.Repeat(" ", width-1) + "]"
	}
	return "[" + strings.Repeat("=", n) + ">" + strings.Repeat(" ", width-n-1) + "]"
}
