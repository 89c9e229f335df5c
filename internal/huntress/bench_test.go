package huntress

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkSend measures a realistic batch (500 events of ~1.5 KB, gzip on)
// posted to a local server that discards it: envelope, gzip, HTTP.
func BenchmarkSend(b *testing.B) {
	for _, bc := range []struct {
		name  string
		level int
		gzip  bool
	}{
		{"gzip-BestSpeed", 0, true},
		{"gzip-Huffman", -2, true},
		{"plain", 0, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var wire int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, _ := io.Copy(io.Discard, r.Body)
				wire = n
				io.WriteString(w, `{"text":"Success","code":0}`)
			}))
			defer srv.Close()
			c := newClient(b, srv.URL, func(c *Config) {
				c.GzipLevel = bc.level
				if !bc.gzip {
					c.GzipThreshold = -1
				}
			})
			evs := sampleEvents(500)
			var raw int
			for _, ev := range evs {
				raw += len(ev.Body)
			}
			b.SetBytes(int64(raw))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Send(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
			b.ReportMetric(float64(wire)/float64(raw), "wire/raw")
		})
	}
}

// BenchmarkCollector measures the collector's parsing of a gzip'd batch of
// 500 events (the demo and the benchmarks need ~50k events/s).
func BenchmarkCollector(b *testing.B) {
	c := newClient(b, "https://hec.example.com")
	var body []byte
	for _, ev := range sampleEvents(500) {
		body = c.AppendEnvelope(body, ev)
	}
	zbody := gz(b, body)
	col := NewCollector(CollectorOptions{Keep: -1})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/services/collector", bytes.NewReader(zbody))
		r.Header.Set("Content-Encoding", "gzip")
		w := httptest.NewRecorder()
		col.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Body.String())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*500), "ns/event")
}
