package huntress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
)

// CollectorOptions configure a Collector. The zero value accepts any token
// and keeps the last 10000 events.
type CollectorOptions struct {
	// Token is the HEC token the collector requires. Empty accepts any
	// request, with or without Authorization.
	Token string
	// AuthScheme, when set ("Splunk" or "Bearer"), is the only scheme
	// accepted; empty accepts both.
	AuthScheme string
	// OnEvent, when set, is called for every accepted event with its raw
	// "event" bytes (byte-identical to what was sent; the callee may keep
	// them but must not modify them) and the time its request was read.
	// Calls come from concurrent requests: it must be safe for concurrent
	// use, and it should be quick, since it delays the reply.
	OnEvent func(body []byte, receivedAt time.Time)
	// Fail, when set, is asked about every authorised request once its body
	// is read, before the collector judges it (events holds each envelope's
	// "event"; nil for an empty or malformed body, as sent by Probe). When it
	// returns ok, the collector answers status and reply instead, records
	// nothing, and sets Retry-After (see RetryAfter) for 429 and 503. For
	// fault injection.
	Fail func(r *http.Request, events [][]byte) (status int, reply string, ok bool)
	// RejectEvent, when set, makes the collector refuse a request that
	// contains an event for which it returns true, the way Splunk refuses a
	// malformed one: 400 {"text":"Invalid data format","code":6,
	// "invalid-event-number":<index of the first such event>}.
	RejectEvent func(body []byte) bool
	// RetryAfter is the Retry-After, in seconds, sent with a Fail reply of
	// 429 or 503. Zero sends none.
	RetryAfter int
	// Keep is how many of the most recent events Events returns. Zero means
	// 10000; negative keeps none.
	Keep int
	// MaxBodyBytes bounds a request body after gunzip; a larger one is
	// answered 413. Zero means 8 MiB.
	MaxBodyBytes int64
}

// CollectorStats counts what a Collector received.
type CollectorStats struct {
	Requests int64 // every request to a collector endpoint
	Accepted int64 // requests answered 200
	Events   int64 // events accepted
	Bytes    int64 // request body bytes accepted, after gunzip
}

// Collector is a local HEC-compatible collector: an http.Handler that
// accepts what a Splunk HEC accepts on /services/collector and
// /services/collector/event (concatenated JSON envelopes, optionally gzip'd)
// and answers as Splunk does. It serves the demo, the tests and the
// benchmarks. Unlike Splunk, it records nothing from a request it refuses.
// It is safe for concurrent use.
type Collector struct {
	opts     CollectorOptions
	requests atomic.Int64
	accepted atomic.Int64
	events   atomic.Int64
	bytes    atomic.Int64

	mu   sync.Mutex
	ring [][]byte // the last Keep events; ring[next] is the oldest once full
	next int
	full bool
}

// NewCollector returns a Collector with opts.
func NewCollector(opts CollectorOptions) *Collector {
	if opts.Keep == 0 {
		opts.Keep = 10000
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 8 << 20
	}
	return &Collector{opts: opts}
}

// Events returns the most recent accepted events (at most Keep), oldest
// first. The byte slices are shared: do not modify them.
func (c *Collector) Events() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.full {
		return append([][]byte(nil), c.ring...)
	}
	out := make([][]byte, 0, len(c.ring))
	out = append(out, c.ring[c.next:]...)
	return append(out, c.ring[:c.next]...)
}

// Stats returns the collector's counters.
func (c *Collector) Stats() CollectorStats {
	return CollectorStats{
		Requests: c.requests.Load(),
		Accepted: c.accepted.Load(),
		Events:   c.events.Load(),
		Bytes:    c.bytes.Load(),
	}
}

var gzipReaders sync.Pool // *gzip.Reader

// ServeHTTP implements http.Handler.
func (c *Collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/services/collector/health", "/services/collector/health/1.0":
		reply(w, http.StatusOK, `{"text":"HEC is healthy","code":17}`)
		return
	case "/services/collector", "/services/collector/event", "/services/collector/event/1.0":
	default:
		reply(w, http.StatusNotFound, `{"text":"The requested URL was not found on this server.","code":404}`)
		return
	}
	c.requests.Add(1)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, `{"text":"Method not allowed"}`)
		return
	}
	if status, msg, ok := c.authorize(r); !ok {
		reply(w, status, msg)
		return
	}

	body, err := c.readBody(r)
	switch {
	case errors.Is(err, errBodyTooLarge):
		reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(`{"text":"Content too large (maximum is %d)"}`, c.opts.MaxBodyBytes))
		return
	case err != nil:
		reply(w, http.StatusBadRequest, `{"text":"Invalid data format","code":6}`)
		return
	}
	receivedAt := time.Now()
	events, bad, code := parseEnvelopes(body)
	if c.opts.Fail != nil {
		if status, msg, ok := c.opts.Fail(r, events); ok {
			if c.opts.RetryAfter > 0 && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
				w.Header().Set("Retry-After", strconv.Itoa(c.opts.RetryAfter))
			}
			reply(w, status, msg)
			return
		}
	}
	if code != codeSuccess {
		msg := `{"text":"` + codeTexts[code] + `","code":` + strconv.Itoa(code)
		if code != codeNoData {
			msg += `,"invalid-event-number":` + strconv.Itoa(bad)
		}
		reply(w, http.StatusBadRequest, msg+"}")
		return
	}
	if c.opts.RejectEvent != nil {
		for i, ev := range events {
			if c.opts.RejectEvent(ev) {
				reply(w, http.StatusBadRequest, `{"text":"Invalid data format","code":6,"invalid-event-number":`+strconv.Itoa(i)+`}`)
				return
			}
		}
	}

	c.record(events)
	if c.opts.OnEvent != nil {
		for _, ev := range events {
			c.opts.OnEvent(ev, receivedAt)
		}
	}
	c.accepted.Add(1)
	c.events.Add(int64(len(events)))
	c.bytes.Add(int64(len(body)))
	reply(w, http.StatusOK, `{"text":"Success","code":0}`)
}

// authorize checks the Authorization header the way Splunk does.
func (c *Collector) authorize(r *http.Request) (status int, msg string, ok bool) {
	if c.opts.Token == "" {
		return 0, "", true
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return http.StatusUnauthorized, `{"text":"Token is required","code":2}`, false
	}
	scheme, token, found := strings.Cut(h, " ")
	schemeOK := strings.EqualFold(scheme, SchemeSplunk) || strings.EqualFold(scheme, SchemeBearer)
	if c.opts.AuthScheme != "" {
		schemeOK = strings.EqualFold(scheme, c.opts.AuthScheme)
	}
	if !found || !schemeOK {
		return http.StatusUnauthorized, `{"text":"Invalid authorization","code":3}`, false
	}
	if token != c.opts.Token {
		return http.StatusForbidden, `{"text":"Invalid token","code":4}`, false
	}
	return 0, "", true
}

var errBodyTooLarge = errors.New("huntress: collector: body too large")

// readBody reads the request body, gunzipping it if needed, up to
// MaxBodyBytes.
func (c *Collector) readBody(r *http.Request) ([]byte, error) {
	var src io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(r.Body)
		} else {
			err = zr.Reset(r.Body)
		}
		if err != nil {
			if errors.Is(err, io.EOF) { // a gzip'd nothing: Splunk says "No data"
				return nil, nil
			}
			return nil, err
		}
		defer gzipReaders.Put(zr)
		src = zr
	}
	var buf bytes.Buffer
	if size := r.ContentLength; size > 0 {
		if src != r.Body {
			size *= 2 // audit events gunzip to about 1.7 times their size
		}
		buf.Grow(int(min(size, c.opts.MaxBodyBytes) + bytes.MinRead))
	}
	n, err := buf.ReadFrom(io.LimitReader(src, c.opts.MaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if n > c.opts.MaxBodyBytes {
		return nil, errBodyTooLarge
	}
	return buf.Bytes(), nil
}

// codeTexts are the texts of the codes the collector answers with.
var codeTexts = map[int]string{
	codeNoData:            "No data",
	codeInvalidDataFormat: "Invalid data format",
	codeEventRequired:     "Event field is required",
	codeEventBlank:        "Event field cannot be blank",
}

func (c *Collector) record(events [][]byte) {
	if c.opts.Keep < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range events {
		if !c.full {
			c.ring = append(c.ring, ev)
			if len(c.ring) == c.opts.Keep {
				c.full = true
			}
			continue
		}
		c.ring[c.next] = ev
		c.next = (c.next + 1) % len(c.ring)
	}
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// RunningCollector is a Collector served on a local address.
type RunningCollector struct {
	*Collector
	ln       net.Listener
	srv      *http.Server
	done     chan struct{}
	once     sync.Once
	serveErr error
	closeErr error
}

// StartCollector serves a new Collector on addr ("" means 127.0.0.1:0, a
// free loopback port) over plain HTTP until Close.
func StartCollector(addr string, opts CollectorOptions) (*RunningCollector, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("huntress: collector: %w", err)
	}
	rc := &RunningCollector{
		Collector: NewCollector(opts),
		ln:        ln,
		done:      make(chan struct{}),
	}
	rc.srv = &http.Server{Handler: rc.Collector, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(rc.done)
		if err := rc.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			rc.serveErr = err
		}
	}()
	return rc, nil
}

// URL returns the collector's HEC URL, http://<addr>/services/collector.
func (rc *RunningCollector) URL() string {
	return "http://" + rc.ln.Addr().String() + "/services/collector"
}

// Addr returns the address the collector listens on.
func (rc *RunningCollector) Addr() net.Addr { return rc.ln.Addr() }

// Done is closed when the collector has stopped serving.
func (rc *RunningCollector) Done() <-chan struct{} { return rc.done }

// Close stops the collector, letting requests in flight finish for up to 5
// seconds, and returns once it has stopped. It is idempotent.
func (rc *RunningCollector) Close() error {
	rc.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rc.srv.Shutdown(ctx); err != nil {
			rc.closeErr = errors.Join(err, rc.srv.Close())
		}
		<-rc.done
		if rc.closeErr == nil {
			rc.closeErr = rc.serveErr
		}
	})
	return rc.closeErr
}
