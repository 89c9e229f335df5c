package pipeline

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a Forwarder. The zero value means the documented defaults;
// Validate reports values that cannot work.
type Config struct {
	// Stream is the audit stream. Default "EZSSH_AUDIT".
	Stream string
	// DLQStream is the dead-letter stream. Default "EZSSH_AUDIT_DLQ".
	DLQStream string
	// DLQMaxAge is how long dead letters are kept. Default 30 days.
	DLQMaxAge time.Duration
	// Replicas of the dead-letter stream and the forwarder's KV buckets.
	// Default 1; use the audit stream's replicas.
	Replicas int

	// MaxBatchEvents closes a batch at this many events. Default 500.
	MaxBatchEvents int
	// MaxBatchBytes closes a batch before its event bodies pass this many bytes
	// (uncompressed). Default 1 MiB.
	MaxBatchBytes int
	// MaxInFlight is the number of batches a route sends at once. Default 4.
	MaxInFlight int
	// Linger, when positive, holds a batch that is not full for up to this long
	// even when a send slot is free, trading latency for fewer requests.
	// Default 0: what is waiting goes as soon as a slot is free.
	Linger time.Duration
	// Prefetch bounds the messages the client buffers per route ahead of the
	// batcher. Default MaxBatchEvents*2. With many routes each gets less (see
	// MemoryBudget), but never fewer than 64.
	Prefetch int
	// MemoryBudget bounds the bytes of events held in hand by all routes
	// together; a route that finds it spent waits, and its events stay in the
	// stream. Default 64 MiB.
	MemoryBudget int64

	// AckWait is the consumer's redelivery timeout. Messages in hand are kept
	// alive with InProgress every AckWait/3. Default 60s.
	AckWait time.Duration
	// MaxAckPending bounds unacknowledged messages per route across the fleet.
	// Default 20,000 (room for several instances' prefetch and in-flight
	// batches).
	MaxAckPending int
	// MaxDeliveries dead-letters a message as undeliverable when it arrives for
	// the (MaxDeliveries+1)th time without ever having been settled, whatever
	// the reason: the last bound on a crash loop. Default 10.
	MaxDeliveries int

	// MaxCrashes dead-letters a message suspected of crashing the forwarder
	// (it came back more than twice) once it was sent alone this many times
	// without the process surviving to settle it. Default 3.
	MaxCrashes int
	// SuspectBucket is the KV bucket that records those solo attempts.
	// Default "EZSSH_FORWARDER_SUSPECTS".
	SuspectBucket string

	// RetryInitial is the first retry delay of a failed send. Default 250ms.
	RetryInitial time.Duration
	// RetryMax caps a retry delay, Retry-After included. Default 30s.
	RetryMax time.Duration

	// BreakerFailures opens a route's breaker after this many consecutive
	// retryable failures. A misconfigured destination opens it at once.
	// Default 5.
	BreakerFailures int
	// PauseMin is the first pause of a route whose breaker opened. Default 5s.
	PauseMin time.Duration
	// PauseMax caps the pause, which doubles after every failed probe.
	// Default 5m.
	PauseMax time.Duration
	// ProbeTimeout bounds one probe of a paused destination. Default 10s.
	ProbeTimeout time.Duration

	// AgingWarning: while a route is paused, its admins are warned when its
	// oldest held event would age out of the stream (MaxAge) within this
	// long. Default 24h.
	AgingWarning time.Duration

	// PendingInterval is how often each route's consumer is asked how many
	// events wait, for the consumer.pending metric. Default 15s.
	PendingInterval time.Duration

	// Meters and Tracers receive the pipeline's metrics and spans. Default:
	// OpenTelemetry's global providers.
	Meters  metric.MeterProvider
	Tracers trace.TracerProvider

	// ShutdownTimeout bounds how long the batches in hand may take to finish
	// after a stop; what is not delivered by then is NAKed. Default 10s.
	ShutdownTimeout time.Duration
}

func (c Config) withDefaults() Config {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defd := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	if c.Stream == "" {
		c.Stream = "EZSSH_AUDIT"
	}
	if c.DLQStream == "" {
		c.DLQStream = "EZSSH_AUDIT_DLQ"
	}
	defd(&c.DLQMaxAge, 30*24*time.Hour)
	def(&c.Replicas, 1)
	def(&c.MaxBatchEvents, 500)
	def(&c.MaxBatchBytes, 1<<20)
	def(&c.MaxInFlight, 4)
	def(&c.Prefetch, 2*c.MaxBatchEvents)
	if c.MemoryBudget <= 0 {
		c.MemoryBudget = 64 << 20
	}
	defd(&c.AckWait, 60*time.Second)
	def(&c.MaxAckPending, 20_000)
	def(&c.MaxDeliveries, 10)
	def(&c.MaxCrashes, 3)
	if c.SuspectBucket == "" {
		c.SuspectBucket = "EZSSH_FORWARDER_SUSPECTS"
	}
	defd(&c.RetryInitial, 250*time.Millisecond)
	defd(&c.RetryMax, 30*time.Second)
	def(&c.BreakerFailures, 5)
	defd(&c.PauseMin, 5*time.Second)
	defd(&c.PauseMax, 5*time.Minute)
	defd(&c.ProbeTimeout, 10*time.Second)
	defd(&c.AgingWarning, 24*time.Hour)
	defd(&c.ShutdownTimeout, 10*time.Second)
	defd(&c.PendingInterval, 15*time.Second)
	return c
}

// Validate reports settings that cannot work together, naming the setting.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("ack wait %v is under 1s: messages would be redelivered while in hand", c.AckWait))
	}
	if c.MaxAckPending < c.Prefetch+c.MaxBatchEvents*c.MaxInFlight {
		errs = append(errs, fmt.Errorf("max ack pending %d is below prefetch + batch size × in flight (%d): the consumer would starve its own batches",
			c.MaxAckPending, c.Prefetch+c.MaxBatchEvents*c.MaxInFlight))
	}
	if c.PauseMax < c.PauseMin {
		errs = append(errs, fmt.Errorf("pause max %v is below pause min %v", c.PauseMax, c.PauseMin))
	}
	if c.RetryMax < c.RetryInitial {
		errs = append(errs, fmt.Errorf("retry max %v is below retry initial %v", c.RetryMax, c.RetryInitial))
	}
	return errors.Join(errs...)
}
