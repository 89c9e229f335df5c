// Package huntress delivers EZSSH audit events to a Huntress SIEM "Generic
// HEC" source, or to any other Splunk HTTP Event Collector: it wraps each event
// in a HEC envelope around its raw bytes, batches and gzips the envelopes into
// one POST, and classifies the reply into the delivery classes the pipeline
// acts on (retry, misconfigured, rejected, too large). It also diagnoses a
// destination for Test Connection, and provides a local HEC-compatible
// collector for the demo, the tests and the benchmarks.
//
// The package knows nothing of NATS; it speaks net/http and the vocabulary of
// internal/delivery.
package huntress

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// Client sends batches of events to one HEC. It is safe for concurrent use;
// create one per destination and reuse it, so that connections are reused.
type Client struct {
	url       string
	host      string
	auth      string // "<scheme> <token>"
	userAgent string
	threshold int // gzip from this body size; <0: never
	maxReply  int64
	env       envelope
	scrub     *scrubber
	hc        *http.Client
	gzipPool  sync.Pool // *gzip.Writer at the configured level
}

// New returns a Client for cfg, or the error of cfg.Validate.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.URL) // resolve parsed it already

	var tlsCfg *tls.Config
	if cfg.TLS != nil {
		tlsCfg = cfg.TLS.Clone()
	} else {
		tlsCfg = &tls.Config{}
	}
	if tlsCfg.MinVersion == 0 {
		tlsCfg.MinVersion = tls.VersionTLS12
	}
	if tlsCfg.GetClientCertificate == nil {
		tlsCfg.GetClientCertificate = clientCertificate(tlsCfg.Certificates)
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   cfg.ConnectTimeout,
		ResponseHeaderTimeout: cfg.Timeout,
		// A HEC's reply headers are a few hundred bytes; the default
		// allows 10 MB.
		MaxResponseHeaderBytes: maxReplyHeaderBytes,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        90 * time.Second,
		ForceAttemptHTTP2:      true,
		// Replies are small; asking for gzip'd ones only costs CPU.
		DisableCompression: true,
	}

	level := cfg.GzipLevel
	c := &Client{
		url:       u.String(),
		host:      u.Host,
		auth:      cfg.AuthScheme + " " + cfg.Token,
		userAgent: cfg.UserAgent,
		threshold: cfg.GzipThreshold,
		maxReply:  cfg.MaxResponseBytes,
		env:       newEnvelope(cfg.Host, cfg.Source, cfg.SourceType, cfg.Index),
		scrub:     newScrubber(cfg.Token),
		hc: &http.Client{
			Transport: transport,
			Timeout:   cfg.Timeout,
			// A redirect means the URL is wrong; following it would
			// re-send the batch (and the token) somewhere unconfigured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	c.gzipPool.New = func() any {
		w, _ := gzip.NewWriterLevel(nil, level) // level checked by resolve
		return w
	}
	return c, nil
}

// Host returns the destination's host[:port], for logs and emails.
func (c *Client) Host() string { return c.host }

// URL returns the normalised HEC URL the client posts to. It holds no token.
func (c *Client) URL() string { return c.url }

// String describes the client without its token.
func (c *Client) String() string { return "huntress.Client(" + c.url + ")" }

// CloseIdleConnections closes the client's idle connections, for a
// destination that is removed or changed.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// AppendEnvelope appends ev's HEC envelope to dst and returns the extended
// slice:
//
//	{"time":1732680000.123,"host":"…","source":"…","sourcetype":"…"[,"index":"…"],"event":<ev.Body>}
//
// ev.Body is copied byte for byte and must be one JSON value; a zero ev.Time
// means now. It allocates only if dst must grow.
func (c *Client) AppendEnvelope(dst []byte, ev delivery.Event) []byte {
	return c.env.append(dst, ev)
}

// Send delivers events in one HEC request and returns nil once the HEC
// accepted them (2xx). Any other outcome is an *Error whose class
// (delivery.ClassOf) says what to do: Retry, Misconfigured, Rejected (with
// an EventIndex hint when the HEC named the event) or TooLarge. Sending no
// events is a no-op. Send honours ctx and Config.Timeout.
func (c *Client) Send(ctx context.Context, events []delivery.Event) error {
	if len(events) == 0 {
		return nil
	}
	raw := getBuffer()
	size := 0
	for _, ev := range events {
		size += c.env.size(ev.Body)
	}
	raw.b = slices.Grow(raw.b, size) // one allocation at most, not a series of doublings
	for _, ev := range events {
		raw.b = c.env.append(raw.b, ev)
	}
	body, gzipped := raw, false
	if c.threshold >= 0 && len(raw.b) >= c.threshold {
		body, gzipped = c.compress(raw), true
		putBuffer(raw)
	}
	return c.post(ctx, newPayload(body), gzipped, len(events), false)
}

// Probe checks the destination without delivering an event: it posts an
// empty body. A healthy HEC with a valid token answers 400 code 5 "No data"
// (some answer 2xx); Probe returns nil for both, and otherwise the *Error Send
// would return (401/403 → Misconfigured, 5xx → Retry, …).
func (c *Client) Probe(ctx context.Context) error {
	return c.post(ctx, nil, false, 0, true)
}

// compress returns a pooled buffer holding raw gzip'd.
func (c *Client) compress(raw *buffer) *buffer {
	out := getBuffer()
	// Audit events shrink to about 60%; a body that shrinks less grows out
	// once more.
	out.b = slices.Grow(out.b, len(raw.b)*5/8+gzipHeadroom)
	zw := c.gzipPool.Get().(*gzip.Writer)
	zw.Reset(out)
	// Writes to a buffer cannot fail.
	_, _ = zw.Write(raw.b)
	_ = zw.Close()
	zw.Reset(nil) // do not keep out alive through the pool
	c.gzipPool.Put(zw)
	return out
}

// maxReplyHeaderBytes bounds the headers of a HEC reply.
const maxReplyHeaderBytes = 64 << 10

// hecReply is the JSON body of a HEC reply.
type hecReply struct {
	Text         string `json:"text"`
	Code         *int   `json:"code"`
	InvalidEvent *int   `json:"invalid-event-number"`
}

// post sends body (nil: an empty body) and classifies the reply. n is the
// number of events in body, to bound the invalid-event hint.
func (c *Client) post(ctx context.Context, body *payload, gzipped bool, n int, probe bool) error {
	var asked atomic.Bool // the HEC asked for a client certificate in a handshake of this request
	req, err := http.NewRequestWithContext(context.WithValue(ctx, certAskedKey{}, &asked), http.MethodPost, c.url, http.NoBody)
	if err != nil {
		if body != nil {
			body.release()
		}
		return &Error{Class: delivery.Misconfigured, InvalidEvent: -1, Err: err, scrub: c.scrub}
	}
	if body != nil {
		req.Body = body.reader()
		req.GetBody = func() (io.ReadCloser, error) { return body.reader(), nil }
		req.ContentLength = int64(len(body.buf.b))
	}
	h := req.Header
	h["Authorization"] = []string{c.auth}
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{c.userAgent}
	if gzipped {
		h["Content-Encoding"] = []string{"gzip"}
	}

	resp, err := c.hc.Do(req)
	if body != nil {
		body.release() // the transport holds its own references while it reads
	}
	if err != nil {
		if asked.Load() && brokenConn(err) {
			err = &certRefusedError{err: err}
		}
		return &Error{Class: classifyNetErr(err), InvalidEvent: -1, Err: err, scrub: c.scrub}
	}
	defer resp.Body.Close()

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Drain (bounded) so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, c.maxReply)
		return nil
	}

	data, truncated := readReply(resp.Body, c.maxReply)
	e := replyError(c.scrub, resp.StatusCode, resp.Header.Get("Retry-After"), data, truncated, n, time.Now())
	if probe && e.Status == http.StatusBadRequest && e.HasCode && e.Code == codeNoData {
		return nil
	}
	return e
}

// readReply reads at most limit bytes of a reply body, and drains at most
// limit more so that a short overrun still lets the connection be reused: a
// HEC (or a proxy in front of it) that answers with an endless body costs at
// most 2×limit bytes read and limit+1 held. truncated says the body was
// longer than limit.
func readReply(body io.Reader, limit int64) (data []byte, truncated bool) {
	data, _ = io.ReadAll(io.LimitReader(body, limit+1))
	if int64(len(data)) > limit {
		_, _ = io.CopyN(io.Discard, body, limit)
		return data[:limit], true
	}
	return data, false
}

// replyError is the *Error of a reply other than 2xx: its status, the
// Retry-After header, and the body read by readReply. The HEC's JSON
// {"text","code","invalid-event-number"} is used only when the body was read
// whole; the index only when it names one of the n events sent. Every text
// is scrubbed of the token.
func replyError(scrub *scrubber, status int, retryAfter string, data []byte, truncated bool, n int, now time.Time) *Error {
	e := &Error{
		Status:        status,
		InvalidEvent:  -1,
		RetryAfterDur: parseRetryAfter(retryAfter, now),
		Excerpt:       scrub.excerpt(data, truncated),
		scrub:         scrub,
	}
	var r hecReply
	if !truncated && json.Unmarshal(bytes.TrimSpace(data), &r) == nil {
		e.Text = scrub.scrub(r.Text)
		if r.Code != nil {
			e.Code, e.HasCode = *r.Code, true
		}
		if r.InvalidEvent != nil && *r.InvalidEvent >= 0 && *r.InvalidEvent < n {
			e.InvalidEvent = *r.InvalidEvent
		}
	}
	e.Class = classify(e.Status, e.Code, e.HasCode)
	return e
}

// buffer is a growable byte slice that gzip can write to. Buffers are pooled
// so that a batch costs no allocation once the pool is warm.
type buffer struct{ b []byte }

func (b *buffer) Write(p []byte) (int, error) {
	b.b = append(b.b, p...)
	return len(p), nil
}

var bufferPool = sync.Pool{New: func() any { return &buffer{b: make([]byte, 0, 64<<10)} }}

// gzipHeadroom covers gzip's header, trailer and block overhead.
const gzipHeadroom = 4 << 10

// maxPooledBuffer keeps one oversized batch from pinning its memory.
const maxPooledBuffer = 8 << 20

func getBuffer() *buffer { return bufferPool.Get().(*buffer) }

func putBuffer(b *buffer) {
	if cap(b.b) > maxPooledBuffer {
		return
	}
	b.b = b.b[:0]
	bufferPool.Put(b)
}

// payload is a request body backed by a pooled buffer. The transport may read
// (and re-read, through GetBody) the body after Do has returned, so the
// buffer goes back to the pool only when every reader is closed and the
// sender has let go.
type payload struct {
	buf  *buffer
	refs atomic.Int32
}

func newPayload(b *buffer) *payload {
	p := &payload{buf: b}
	p.refs.Store(1) // the sender's
	return p
}

func (p *payload) reader() io.ReadCloser {
	p.refs.Add(1)
	r := &payloadReader{p: p}
	r.r.Reset(p.buf.b)
	return r
}

func (p *payload) release() {
	if p.refs.Add(-1) == 0 {
		putBuffer(p.buf)
	}
}

// payloadReader reads a payload. Read and Close are serialised: the
// transport may close a body from another goroutine while a write is in
// progress, and a closed reader must never touch a buffer that is back in the
// pool.
type payloadReader struct {
	mu     sync.Mutex
	r      bytes.Reader
	p      *payload
	closed bool
}

func (r *payloadReader) Read(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, io.EOF
	}
	return r.r.Read(b)
}

func (r *payloadReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.r.Reset(nil)
		r.p.release()
	}
	return nil
}
