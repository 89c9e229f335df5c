package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/generate"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// BenchmarkDrain measures the pipeline draining a backlog of realistic events
// into a HEC that reads and discards each request (gzip on). The embedded
// server and the HEC run in the same process, so read it with a CPU profile
// (-cpuprofile) to see the forwarder's own share; cmd/bench measures the
// forwarder as a separate process.
func BenchmarkDrain(b *testing.B) {
	js := startJetStream(b)
	ctx := context.Background()
	gen := generate.New(generate.Options{Subscriptions: 5})
	hec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"text":"Success","code":0}`)
	}))
	defer hec.Close()
	client, err := huntress.New(huntress.Config{URL: hec.URL, Token: testToken})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		const n = 20_000
		p := audit.NewPublisher(js, audit.PublisherOptions{})
		for range n {
			body, _ := gen.NextBody()
			if err := p.PublishRawAsync(ctx, body); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		f, err := pipeline.New(js, pipeline.Config{}, []pipeline.Route{{Name: fmt.Sprintf("bench%d", i), Sink: client}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { f.Run(rctx); close(done) }()
		for f.Stats() == nil || f.Stats()[0].Delivered < n {
			time.Sleep(time.Millisecond)
		}
		cancel()
		<-done
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*20_000), "ns/event")
}
