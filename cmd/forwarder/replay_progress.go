package main

import "io"

// newReplayProgress is the replay's progress bar: dlqProgress with an ETA.
func newReplayProgress(w io.Writer, label string) *dlqProgress {
	p := newDLQProgress(w, label)
	p.eta = true
	return p
}
