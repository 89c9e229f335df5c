package faults

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// hecToken is the HEC token of every case. It is distinctive so that a
// forwarder echoing it would be noticed.
const hecToken = "faults-tok-5vQ8nR2wXk7LmZc3"

// collector is a collector process (cmd/collector) and what it accepted,
// read from its events file.
type collector struct {
	proc *proc
	url  string // the HEC URL
	base string // where /collector/stats and /collector/mode live
	out  string // the events file

	mu      sync.Mutex
	off     int64          // bytes of out read so far
	partial []byte         // a line not yet complete
	seen    map[string]int // EventId → times accepted
	events  int            // events read, duplicates included
	foreign int            // lines without an EventId
}

func startCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{out: filepath.Join(t.TempDir(), "events.ndjson"), seen: make(map[string]int)}
	c.proc = startProc(t, "collector", collectorBin, []string{"COLLECTOR_TOKEN=" + hecToken},
		"--addr", "127.0.0.1:0", "--out", c.out, "--allow-fault-injection", "--report-every", "0")
	re := regexp.MustCompile(`url=(http://\S+/services/collector)`)
	eventually(t, 20*time.Second, "the collector to listen", func() bool {
		c.proc.mustRun(t)
		m := re.FindStringSubmatch(c.proc.output())
		if m == nil {
			return false
		}
		c.url = m[1]
		c.base = strings.TrimSuffix(c.url, "/services/collector")
		return true
	})
	t.Cleanup(func() {
		if out := c.proc.output(); strings.Contains(out, hecToken) {
			t.Errorf("the collector's output shows the HEC token")
		}
	})
	return c
}

// refresh reads what the collector appended to its events file since the
// last call. A line being written is kept until it is complete.
func (c *collector) refresh(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.Open(c.out)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(c.off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	c.off += int64(len(b))
	b = append(c.partial, b...)
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		var e struct{ EventId string }
		if json.Unmarshal(b[:i], &e) != nil || e.EventId == "" {
			c.foreign++
		} else {
			c.seen[e.EventId]++
		}
		c.events++
		b = b[i+1:]
	}
	c.partial = append([]byte(nil), b...)
}

// distinct is how many of ids the collector accepted at least once, as of
// the last refresh.
func (c *collector) distinct(ids []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, id := range ids {
		if c.seen[id] > 0 {
			n++
		}
	}
	return n
}

// count is how many events the collector accepted, duplicates included, as
// of the last refresh.
func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events
}

// collectorStats is GET /collector/stats.
type collectorStats struct {
	Requests, Accepted, Events int64
	Mode                       string `json:"mode"`
}

func (c *collector) stats(t *testing.T) collectorStats {
	t.Helper()
	resp, err := http.Get(c.base + "/collector/stats")
	if err != nil {
		t.Fatalf("collector stats: %v", err)
	}
	defer resp.Body.Close()
	var s collectorStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("collector stats: %v", err)
	}
	return s
}

// setMode switches the collector to ok, unavailable or hang.
func (c *collector) setMode(t *testing.T, mode string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, c.base+"/collector/mode", strings.NewReader(mode))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("collector mode %s: %v", mode, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("collector mode %s: %s", mode, resp.Status)
	}
}

// complete reports whether the events file holds everything the collector
// says it accepted: the file is flushed after the reply is written, so a
// forwarder can ack a batch a moment before its events are in the file.
func (c *collector) complete(t *testing.T) bool {
	c.refresh(t)
	return int64(c.count()) == c.stats(t).Events
}
