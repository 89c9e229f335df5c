package generate

import "time"

// Options configure a Generator. The zero value means the documented defaults.
type Options struct {
	// Subscriptions is how many subscriptions the events are spread over.
	// Default 5.
	Subscriptions int
	// Seed makes keys, certificates, subscriptions and the sequence of choices
	// reproducible (EventId and RequestDate still differ run to run). Any
	// value, 0 included, is a seed.
	Seed int64
	// TestEvery makes every TestEvery-th event a Test Connection. Default
	// 200; negative means never.
	TestEvery int
	// Now is the clock for RequestDate. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Subscriptions <= 0 {
		o.Subscriptions = 5
	}
	if o.TestEvery == 0 {
		o.TestEvery = 200
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
