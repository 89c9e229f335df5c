package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/natsconn"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

// hecFlags are the HEC destination settings shared by run and test-connection.
type hecFlags struct {
	url, token, tokenFile, scheme string
	host, source, sourceType      string
	index                         string
	gzipThreshold, gzipLevel      int
	timeout                       time.Duration
	allowInsecureHTTP             bool
	tls                           hecTLSFlags
}

func (h *hecFlags) bind(s *cliflag.Set) {
	s.String(&h.url, "hec-url", "HUNTRESS_HEC_URL", "", "Huntress HEC URL (Huntress → SIEM → Source Management → Generic HEC: \"HTTP Event Collector URL\")")
	s.String(&h.token, "hec-token", "HUNTRESS_HEC_TOKEN", "", "HEC token; prefer the environment variable or --hec-token-file so it stays out of the process list")
	s.String(&h.tokenFile, "hec-token-file", "HUNTRESS_HEC_TOKEN_FILE", "", "file holding the HEC token")
	s.String(&h.scheme, "hec-auth-scheme", "HUNTRESS_HEC_AUTH_SCHEME", "Splunk", "Authorization scheme: Splunk or Bearer")
	s.String(&h.host, "hec-host", "HUNTRESS_HEC_HOST", "", "envelope host field (default: this machine's hostname)")
	s.String(&h.source, "hec-source", "HUNTRESS_HEC_SOURCE", huntress.DefaultSource, "envelope source field")
	s.String(&h.sourceType, "hec-sourcetype", "HUNTRESS_HEC_SOURCETYPE", huntress.DefaultSourceType, "envelope sourcetype field")
	s.String(&h.index, "hec-index", "HUNTRESS_HEC_INDEX", "", "envelope index field (default: the token's index)")
	s.Int(&h.gzipThreshold, "hec-gzip-threshold", "HUNTRESS_HEC_GZIP_THRESHOLD", huntress.DefaultGzipThreshold, "gzip request bodies of at least this many bytes; negative disables gzip")
	s.Int(&h.gzipLevel, "hec-gzip-level", "HUNTRESS_HEC_GZIP_LEVEL", huntress.DefaultGzipLevel, "gzip level: 1 (fastest) to 9 (smallest), or -2 for Huffman-only (less CPU here, nearly twice the bytes on the wire)")
	s.Duration(&h.timeout, "hec-timeout", "HUNTRESS_HEC_TIMEOUT", huntress.DefaultTimeout, "timeout of one HEC request")
	s.Bool(&h.allowInsecureHTTP, "allow-insecure-http", "FORWARDER_ALLOW_INSECURE_HTTP", false, "allow http:// HEC URLs to hosts other than loopback")
	h.tls.bind(s)
}

// hecTLSFlags name the PEM files of the HEC connections' TLS settings. They
// apply to every route's HEC: the global route, static routes and
// subscription routes.
type hecTLSFlags struct {
	caFile, certFile, keyFile string
}

func (t *hecTLSFlags) bind(s *cliflag.Set) {
	s.String(&t.caFile, "hec-ca-file", "HUNTRESS_HEC_CA_FILE", "", "PEM file of the CA(s) that issued the HEC's certificate (a private CA or a self-signed HEC), trusted in addition to the system's CAs")
	s.String(&t.certFile, "hec-cert-file", "HUNTRESS_HEC_CERT_FILE", "", "PEM client certificate for a HEC that requires mutual TLS (with --hec-key-file)")
	s.String(&t.keyFile, "hec-key-file", "HUNTRESS_HEC_KEY_FILE", "", "PEM private key of --hec-cert-file")
}

// apply sets the files in cfg.
func (t *hecTLSFlags) apply(cfg huntress.Config) huntress.Config {
	cfg.CAFile, cfg.CertFile, cfg.KeyFile = t.caFile, t.certFile, t.keyFile
	return cfg
}

// check reads the files, so that a bad one stops the command at start with
// a usage error naming its flag rather than failing each route later.
func (t *hecTLSFlags) check() error {
	var errs []error
	if t.caFile != "" {
		if err := (huntress.Config{CAFile: t.caFile}).ValidateTLS(); err != nil {
			errs = append(errs, fmt.Errorf("--hec-ca-file (HUNTRESS_HEC_CA_FILE): %w", err))
		}
	}
	if t.certFile != "" || t.keyFile != "" {
		if err := (huntress.Config{CertFile: t.certFile, KeyFile: t.keyFile}).ValidateTLS(); err != nil {
			errs = append(errs, fmt.Errorf("--hec-cert-file (HUNTRESS_HEC_CERT_FILE) and --hec-key-file (HUNTRESS_HEC_KEY_FILE): %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &cliflag.UsageError{Msg: err.Error()}
	}
	return nil
}

// base returns the settings every route shares (envelope fields, gzip,
// timeouts, TLS files), without a URL or token.
func (h *hecFlags) base() huntress.Config {
	return h.tls.apply(huntress.Config{
		Host:          h.host,
		Source:        h.source,
		SourceType:    h.sourceType,
		Index:         h.index,
		GzipThreshold: h.gzipThreshold,
		GzipLevel:     h.gzipLevel,
		Timeout:       h.timeout,
	})
}

// config returns the HEC client settings, reading the token file if given.
func (h *hecFlags) config() (huntress.Config, error) {
	if h.url == "" {
		return huntress.Config{}, cliflag.Usagef("no HEC URL: set HUNTRESS_HEC_URL (or --hec-url) to your Huntress Generic HEC source's \"HTTP Event Collector URL\"")
	}
	if err := h.tls.check(); err != nil {
		return huntress.Config{}, err
	}
	token := h.token
	if h.tokenFile != "" {
		if token != "" {
			return huntress.Config{}, cliflag.Usagef("give the HEC token once: either HUNTRESS_HEC_TOKEN (--hec-token) or HUNTRESS_HEC_TOKEN_FILE (--hec-token-file)")
		}
		b, err := os.ReadFile(h.tokenFile)
		if err != nil {
			return huntress.Config{}, cliflag.Usagef("cannot read the HEC token file: %v", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return huntress.Config{}, cliflag.Usagef("no HEC token: set HUNTRESS_HEC_TOKEN or HUNTRESS_HEC_TOKEN_FILE to your Huntress Generic HEC source's \"HTTP Event Collector Token\"")
	}
	cfg := h.base()
	cfg.URL, cfg.Token, cfg.AuthScheme, cfg.AllowInsecureHTTP = h.url, token, h.scheme, h.allowInsecureHTTP
	if err := cfg.Validate(); err != nil {
		return huntress.Config{}, &cliflag.UsageError{Msg: "HEC settings (HUNTRESS_HEC_URL --hec-url, HUNTRESS_HEC_TOKEN --hec-token, HUNTRESS_HEC_AUTH_SCHEME --hec-auth-scheme): " + err.Error()}
	}
	return cfg, nil
}

// runFlags are the settings of `forwarder run`.
type runFlags struct {
	nats          natsconn.Options
	hec           hecFlags
	notify        notifyFlags
	embeddedDir   string
	embeddedAt    string
	consumer      string
	routesFile    string
	secretKeyFile string
	httpAddr      string
	pprof         bool
	stream        audit.StreamOptions
	pipe          pipeline.Config
	logLevel      string
	logFormat     string
}

func (f *runFlags) bind(s *cliflag.Set) {
	f.nats.Bind(s)
	f.hec.bind(s)
	f.notify.bind(s)
	s.String(&f.embeddedDir, "embedded-dir", "FORWARDER_EMBEDDED_DIR", "forwarder-data", "data folder of the embedded NATS server (used when NATS_URL is empty)")
	s.String(&f.embeddedAt, "embedded-listen", "FORWARDER_EMBEDDED_LISTEN", "127.0.0.1:4222", "address of the embedded NATS server, for producers to connect to")
	s.String(&f.pipe.Stream, "stream", "FORWARDER_STREAM", audit.StreamName, "JetStream stream of audit events (created if missing)")
	s.String(&f.pipe.DLQStream, "dlq-stream", "FORWARDER_DLQ_STREAM", "EZSSH_AUDIT_DLQ", "JetStream stream of dead letters (created if missing)")
	s.String(&f.consumer, "consumer", "FORWARDER_CONSUMER", "huntress", "durable consumer of the global route, and prefix of the others' (huntress-<SubscriptionId>, huntress_<static route>)")
	s.String(&f.routesFile, "routes-file", "FORWARDER_ROUTES_FILE", "", "JSON or YAML file of static routes (see docs/routes.md)")
	s.String(&f.secretKeyFile, "secret-key-file", routes.KeyFileEnv, "", "key that opens HEC tokens sealed in EZSSH_SIEM (32 bytes: raw, hex or base64)")
	s.String(&f.httpAddr, "http-addr", "FORWARDER_HTTP_ADDR", "127.0.0.1:8080", "address of /metrics, /healthz and /readyz; empty disables")
	s.Bool(&f.pprof, "pprof", "FORWARDER_PPROF", false, "also serve Go's profiler under /debug/pprof/ on --http-addr (keep that address private)")
	s.Duration(&f.stream.MaxAge, "stream-max-age", "FORWARDER_STREAM_MAX_AGE", 30*24*time.Hour, "how long the stream keeps events (the longest outage that loses nothing)")
	s.Int64(&f.stream.MaxBytes, "stream-max-bytes", "FORWARDER_STREAM_MAX_BYTES", 0, "stream size cap in bytes; 0 is unlimited")
	s.Int(&f.stream.Replicas, "stream-replicas", "FORWARDER_STREAM_REPLICAS", 1, "stream replicas (3 in a cluster)")
	s.Int(&f.pipe.MaxBatchEvents, "batch-events", "FORWARDER_BATCH_EVENTS", 500, "a batch closes at this many events")
	s.Int(&f.pipe.MaxBatchBytes, "batch-bytes", "FORWARDER_BATCH_BYTES", 1<<20, "a batch closes before this many bytes (uncompressed)")
	s.Int(&f.pipe.MaxInFlight, "in-flight", "FORWARDER_IN_FLIGHT", 4, "batches a route sends at once")
	s.Duration(&f.pipe.Linger, "linger", "FORWARDER_LINGER", 0, "wait up to this long to fill a batch even when a send slot is free (0: send at once)")
	s.Int(&f.pipe.Prefetch, "prefetch", "FORWARDER_PREFETCH", 1000, "messages buffered per route ahead of batching")
	s.Duration(&f.pipe.AckWait, "ack-wait", "FORWARDER_ACK_WAIT", 60*time.Second, "consumer ack wait; messages in hand are kept alive every third of it")
	s.Int(&f.pipe.MaxAckPending, "max-ack-pending", "FORWARDER_MAX_ACK_PENDING", 20000, "unacknowledged messages per route across the fleet")
	s.Int(&f.pipe.MaxDeliveries, "max-deliveries", "FORWARDER_MAX_DELIVERIES", 10, "dead-letter a message as undeliverable after this many deliveries that never settled it")
	s.Int(&f.pipe.MaxCrashes, "max-crashes", "FORWARDER_MAX_CRASHES", 3, "dead-letter a message suspected of crashing the forwarder after this many solo attempts that never settled it")
	s.Duration(&f.pipe.DLQMaxAge, "dlq-max-age", "FORWARDER_DLQ_MAX_AGE", 30*24*time.Hour, "how long dead letters are kept")
	s.Duration(&f.pipe.AgingWarning, "aging-warning", "FORWARDER_AGING_WARNING", 24*time.Hour, "warn the admins of a paused route this long before its oldest held event ages out of the stream")
	s.Int64(&f.pipe.MemoryBudget, "memory-budget", "FORWARDER_MEMORY_BUDGET", 64<<20, "bytes of events all routes together may hold in hand")
	s.Int(&f.pipe.BreakerFailures, "breaker-failures", "FORWARDER_BREAKER_FAILURES", 5, "consecutive failed sends that open a route's breaker")
	s.Duration(&f.pipe.PauseMin, "pause-min", "FORWARDER_PAUSE_MIN", 5*time.Second, "first pause of a route whose breaker opened")
	s.Duration(&f.pipe.PauseMax, "pause-max", "FORWARDER_PAUSE_MAX", 5*time.Minute, "longest pause between probes of a failing destination")
	s.Duration(&f.pipe.RetryMax, "retry-max", "FORWARDER_RETRY_MAX", 30*time.Second, "longest wait between retries of a batch")
	s.Duration(&f.pipe.ShutdownTimeout, "shutdown-timeout", "FORWARDER_SHUTDOWN_TIMEOUT", 10*time.Second, "time the batches in hand get to finish on SIGTERM before they are returned to the stream")
	s.String(&f.logLevel, "log-level", "FORWARDER_LOG_LEVEL", "info", "debug, info, warn or error")
	s.String(&f.logFormat, "log-format", "FORWARDER_LOG_FORMAT", "text", "text or json")
}

// validate reports every bad setting at once.
func (f *runFlags) validate() error {
	var errs []error
	if err := f.nats.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !audit.ValidSubjectToken(f.consumer) {
		errs = append(errs, fmt.Errorf("--consumer (FORWARDER_CONSUMER) %q must be a single subject token: letters, digits, '-' or '_'", f.consumer))
	}
	if f.pprof && f.httpAddr == "" {
		errs = append(errs, fmt.Errorf("--pprof (FORWARDER_PPROF) needs --http-addr (FORWARDER_HTTP_ADDR) to serve on"))
	}
	if f.httpAddr != "" {
		if _, _, err := net.SplitHostPort(f.httpAddr); err != nil {
			errs = append(errs, fmt.Errorf("--http-addr (FORWARDER_HTTP_ADDR) %q is not host:port", f.httpAddr))
		}
	}
	if f.nats.URL == "" {
		if _, _, err := net.SplitHostPort(f.embeddedAt); err != nil {
			errs = append(errs, fmt.Errorf("--embedded-listen (FORWARDER_EMBEDDED_LISTEN) %q is not host:port", f.embeddedAt))
		}
	}
	if f.pipe.MaxBatchEvents <= 0 || f.pipe.MaxBatchBytes <= 0 || f.pipe.MaxInFlight <= 0 || f.pipe.Prefetch <= 0 {
		errs = append(errs, errors.New("--batch-events, --batch-bytes, --in-flight and --prefetch must be positive"))
	}
	if err := f.pipe.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := f.hec.tls.check(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, f.notify.validate()...)
	if _, err := parseLevel(f.logLevel); err != nil {
		errs = append(errs, err)
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format (FORWARDER_LOG_FORMAT) %q must be text or json", f.logFormat))
	}
	if err := errors.Join(errs...); err != nil {
		return &cliflag.UsageError{Msg: err.Error()}
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level (FORWARDER_LOG_LEVEL) %q must be debug, info, warn or error", s)
	}
	return l, nil
}
