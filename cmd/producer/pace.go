package main

import (
	"context"
	"time"
)

// pacer holds a publisher to a rate: event n is due n/rate seconds after the
// start. A ticker wakes the loop a few times per due event at most, and every
// event already due is released at once, so high rates cost no timer per event.
type pacer struct {
	rate   float64
	start  time.Time
	ticker *time.Ticker
}

// newPacer returns a pacer for rate events per second; 0 means no limit.
func newPacer(rate float64, start time.Time) *pacer {
	p := &pacer{rate: rate, start: start}
	if rate > 0 {
		tick := time.Duration(float64(time.Second) / rate)
		tick = max(tick, 5*time.Millisecond)
		tick = min(tick, 100*time.Millisecond)
		p.ticker = time.NewTicker(tick)
	}
	return p
}

// wait blocks until event n (counted from 0) is due, or ctx ends.
func (p *pacer) wait(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.ticker == nil {
		return nil
	}
	for float64(n) > p.rate*time.Since(p.start).Seconds() {
		select {
		case <-p.ticker.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (p *pacer) stop() {
	if p.ticker != nil {
		p.ticker.Stop()
	}
}
