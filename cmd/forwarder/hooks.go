//go:build !testhooks

package main

import "github.com/ezssh/siem-forwarder/internal/pipeline"

// wrapSink is the identity in release builds; builds with the testhooks tag
// can make the process crash on chosen events (see hooks_testhooks.go).
func wrapSink(s pipeline.Sink) pipeline.Sink { return s }
