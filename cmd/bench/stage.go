package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/embedded"
)

// stage is one phase's world: a fresh embedded nats-server, fsync-always as
// the product ships unless --fsync=false (or the second half of
// --fsync=both), with its store in its own folder, and the audit stream on
// it. A fresh server per phase gives every phase the same empty disk
// state, no consumer left over and no publish-dedup memory of the reused
// EventIds.
type stage struct {
	srv    *embedded.Server
	dir    string
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
}

// backlogStage starts phase's own server and publishes the backlog to it,
// returning how long the publish took. The caller closes the stage.
func (b *bench) backlogStage(ctx context.Context, phase string, fsync bool) (*stage, time.Duration, error) {
	st, err := newStage(ctx, b.root, phase, fsync)
	if err != nil {
		return nil, 0, err
	}
	b.logf("phase %s: publishing %d events (%s)", phase, len(b.bodies), mode(fsync))
	took, err := st.publish(ctx, b.bodies)
	if err != nil {
		st.close()
		return nil, 0, err
	}
	return st, took, nil
}

func newStage(ctx context.Context, root, name string, fsync bool) (*stage, error) {
	dir := filepath.Join(root, "nats-"+name)
	srv, err := embedded.Start(embedded.Config{StoreDir: dir, NoSync: !fsync})
	if err != nil {
		return nil, err
	}
	s := &stage{srv: srv, dir: dir}
	s.nc, err = nats.Connect(srv.URL(), nats.Name("ezssh-bench"))
	if err != nil {
		s.close()
		return nil, fmt.Errorf("connect to the embedded server: %w", err)
	}
	s.js, err = jetstream.New(s.nc)
	if err != nil {
		s.close()
		return nil, err
	}
	s.stream, err = audit.EnsureStream(ctx, s.js, audit.StreamOptions{})
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *stage) url() string { return s.srv.URL() }

// close stops the server and removes its store. It is safe on a partly
// built stage.
func (s *stage) close() {
	if s.nc != nil {
		s.nc.Close()
	}
	s.srv.Shutdown()
	os.RemoveAll(s.dir)
}

// publish stores bodies in the stream as the audit Publisher does (async,
// Nats-Msg-Id set), waits for every PubAck and checks the stream holds them
// all. It returns how long that took.
func (s *stage) publish(ctx context.Context, bodies [][]byte) (time.Duration, error) {
	return s.publishEach(ctx, len(bodies), func(i int) []byte { return bodies[i] })
}

// publishEach is publish of the n bodies body(0) … body(n-1), made as they
// are published, so that a large backlog need not be held in memory. The
// time of the calls to body counts.
func (s *stage) publishEach(ctx context.Context, n int, body func(i int) []byte) (time.Duration, error) {
	p := audit.NewPublisher(s.js, audit.PublisherOptions{})
	before, err := s.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for i := range n {
		if err := p.PublishRawAsync(ctx, body(i)); err != nil {
			return 0, fmt.Errorf("publish backlog: %w", err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		return 0, fmt.Errorf("publish backlog: %w", err)
	}
	took := time.Since(start)
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	if got := info.State.Msgs - before.State.Msgs; got != uint64(n) {
		return 0, fmt.Errorf("published %d events but the stream stored %d (deduplicated?)", n, got)
	}
	return took, nil
}

// waitDrained waits until the durable consumer has nothing pending and
// nothing unacknowledged, checking every 50ms until timeout.
func (s *stage) waitDrained(ctx context.Context, consumer string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var last *jetstream.ConsumerInfo
	for {
		c, err := s.js.Consumer(ctx, audit.StreamName, consumer)
		if err == nil {
			last, err = c.Info(ctx)
			if err == nil && last.NumPending == 0 && last.NumAckPending == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				return fmt.Errorf("consumer %s: no info within %v: %w", consumer, timeout, err)
			}
			return fmt.Errorf("consumer %s not drained within %v: %d pending, %d unacknowledged",
				consumer, timeout, last.NumPending, last.NumAckPending)
		case <-t.C:
		}
	}
}

// waitConsumer waits until the durable consumer exists: a forwarder that
// created it is about to pull.
func (s *stage) waitConsumer(ctx context.Context, consumer string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := s.js.Consumer(ctx, audit.StreamName, consumer); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumer %s not created within %v", consumer, timeout)
		case <-t.C:
		}
	}
}
