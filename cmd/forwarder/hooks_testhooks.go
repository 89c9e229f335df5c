//go:build testhooks

package main

import (
	"bytes"
	"context"
	"os"

	"github.com/ezssh/siem-forwarder/internal/delivery"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// wrapSink, in builds with the testhooks tag only, kills the process the
// moment it is about to send an event whose body contains the text in
// FORWARDER_TEST_CRASH_ON: a poison message that crashes whoever holds it,
// for the crash-loop tests.
func wrapSink(s pipeline.Sink) pipeline.Sink {
	marker := os.Getenv("FORWARDER_TEST_CRASH_ON")
	if marker == "" {
		return s
	}
	return crashingSink{Sink: s, marker: []byte(marker)}
}

type crashingSink struct {
	pipeline.Sink
	marker []byte
}

func (c crashingSink) Send(ctx context.Context, events []delivery.Event) error {
	for _, ev := range events {
		if bytes.Contains(ev.Body, c.marker) {
			os.Exit(70)
		}
	}
	return c.Sink.Send(ctx, events)
}
