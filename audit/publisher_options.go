package audit

import "time"

// PublisherOptions configure a Publisher. The zero value means the documented
// defaults.
type PublisherOptions struct {
	// MaxInFlight bounds the PublishAsync calls whose PubAck has not arrived
	// yet; PublishAsync blocks while the window is full. Default 1024. The
	// JetStream context's own jetstream.WithPublishAsyncMaxPending (default
	// 4000) must not be smaller, or publishes stall inside nats.go instead.
	MaxInFlight int
	// Now is the clock used for an empty RequestDate. Default time.Now.
	Now func() time.Time
	// MaxErrors is how many async publish errors Flush keeps in full; more
	// failures are only counted. Default 10.
	MaxErrors int
}

func (o PublisherOptions) withDefaults() PublisherOptions {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1024
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxErrors <= 0 {
		o.MaxErrors = 10
	}
	return o
}
