package faults

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// outcome is what a case's collector accepted of what it published.
type outcome struct {
	name       string
	published  int
	delivered  int // distinct published events accepted
	lost       int // published events never accepted
	duplicates int // acceptances beyond the first of each event
	foreign    int // accepted events that were not published by the case
}

func (o outcome) String() string {
	return fmt.Sprintf("case=%s published=%d delivered=%d lost=%d duplicates=%d", o.name, o.published, o.delivered, o.lost, o.duplicates)
}

// tally compares the collector's events file with the published ids.
func tally(t *testing.T, name string, ids []string, c *collector) outcome {
	t.Helper()
	c.refresh(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	o := outcome{name: name, published: len(ids), foreign: c.foreign}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
		if c.seen[id] > 0 {
			o.delivered++
		} else {
			o.lost++
		}
	}
	for id, n := range c.seen {
		if !want[id] {
			o.foreign += n
			continue
		}
		o.duplicates += n - 1
	}
	return o
}

// report logs the case's line and appends it to the file FAULTS_REPORT
// names, if any. It fails the test if anything was lost or if the collector
// accepted events nobody published.
func report(t *testing.T, o outcome) {
	t.Helper()
	t.Log(o)
	if path := os.Getenv("FAULTS_REPORT"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Errorf("FAULTS_REPORT: %v", err)
		} else {
			if _, err := fmt.Fprintln(f, o); err != nil {
				t.Errorf("FAULTS_REPORT: %v", err)
			}
			f.Close()
		}
	}
	if o.lost > 0 {
		t.Errorf("%s: %d of %d published events never reached the HEC", o.name, o.lost, o.published)
	}
	if o.foreign > 0 {
		t.Errorf("%s: the HEC accepted %d events that were not published", o.name, o.foreign)
	}
}

// settle waits until the consumer has nothing left to deliver or to have
// acknowledged and the collector's events file holds all it accepted: the
// tally is final then, as an acknowledged message is never delivered again.
// It fails the test (without stopping it) on timeout, and returns the case's
// outcome either way. Call it once every id was published.
func settle(t *testing.T, name string, cl *client, consumer string, c *collector, ids []string, timeout time.Duration, procs func() []*proc) outcome {
	t.Helper()
	start := time.Now()
	var crashed *proc
	ok := poll(timeout, 100*time.Millisecond, func() bool {
		for _, p := range procs() {
			if p.crashed() {
				crashed = p
				return true
			}
		}
		return cl.settled(t, consumer) && c.complete(t)
	})
	o := tally(t, name, ids, c)
	switch {
	case crashed != nil:
		t.Errorf("%s exited by itself (%s)", crashed.name, crashed.status())
	case !ok:
		info := cl.consumer(t, consumer)
		t.Errorf("not settled after %v: %d of %d events accepted; consumer %s: %+v; dead letters: %d",
			timeout, o.delivered, o.published, consumer, info, cl.deadLetters(t))
	default:
		t.Logf("settled %v after the wait began", time.Since(start).Round(time.Millisecond))
	}
	return o
}
