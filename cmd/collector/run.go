package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/huntress"
)

// run serves the collector until ctx is done. Usage errors satisfy
// cliflag.IsUsage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, cliflag.New("collector", intro, stdout))
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "collector")

	var sink *eventFile
	if cfg.Out != "" {
		if sink, err = openEventFile(cfg.Out); err != nil {
			return err
		}
		defer sink.Close()
	}
	m := newModes()
	opts := huntress.CollectorOptions{Token: cfg.Token, Keep: -1, Fail: m.fail}
	if sink != nil {
		opts.OnEvent = sink.write
	}
	coll := huntress.NewCollector(opts)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /collector/stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(statsReply{CollectorStats: coll.Stats(), Mode: m.current()})
	})
	mux.HandleFunc("PUT /collector/mode", func(w http.ResponseWriter, r *http.Request) {
		if !cfg.Faults {
			http.Error(w, "fault injection is off (start with --allow-fault-injection)", http.StatusForbidden)
			return
		}
		b, _ := io.ReadAll(io.LimitReader(r.Body, 64))
		mode := strings.TrimSpace(string(b))
		if err := m.set(mode); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		log.Info("mode changed", "mode", mode)
		fmt.Fprintln(w, mode)
	})
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		coll.ServeHTTP(w, r)
		if sink != nil {
			if err := sink.flush(); err != nil {
				log.Error("writing the events file", "err", err)
			}
		}
	}))

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("listening", "url", "http://"+ln.Addr().String()+"/services/collector", "token_required", cfg.Token != "", "out", cfg.Out)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	var tick <-chan time.Time
	if cfg.ReportEvery > 0 {
		t := time.NewTicker(cfg.ReportEvery)
		defer t.Stop()
		tick = t.C
	}
	var last huntress.CollectorStats
	for {
		select {
		case err := <-serveErr:
			return err
		case <-tick:
			if s := coll.Stats(); s != last {
				last = s
				log.Info("received", "requests", s.Requests, "accepted", s.Accepted, "events", s.Events)
			}
		case <-ctx.Done():
			m.stop() // release hung requests so shutdown can finish
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := srv.Shutdown(sctx)
			s := coll.Stats()
			log.Info("stopped", "requests", s.Requests, "accepted", s.Accepted, "events", s.Events)
			return err
		}
	}
}

type statsReply struct {
	huntress.CollectorStats
	Mode string `json:"mode"`
}

// modes is the collector's fault mode, switched at run time.
type modes struct {
	mu      sync.Mutex
	mode    string
	changed chan struct{} // closed when mode changes
}

func newModes() *modes { return &modes{mode: "ok", changed: make(chan struct{})} }

func (m *modes) current() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mode
}

func (m *modes) set(mode string) error {
	switch mode {
	case "ok", "unavailable", "hang":
	default:
		return fmt.Errorf("unknown mode %q (modes: ok, unavailable, hang)", mode)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mode = mode
	close(m.changed)
	m.changed = make(chan struct{})
	return nil
}

// stop ends hanging for good: the collector is shutting down.
func (m *modes) stop() { _ = m.set("unavailable") }

// fail is the collector's Fail hook: in "hang" it holds the request, having
// read it, until the mode changes or the client gives up.
func (m *modes) fail(r *http.Request, _ [][]byte) (int, string, bool) {
	for {
		m.mu.Lock()
		mode, changed := m.mode, m.changed
		m.mu.Unlock()
		switch mode {
		case "unavailable":
			return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
		case "hang":
			select {
			case <-changed:
				continue
			case <-r.Context().Done():
				return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`, true
			}
		default:
			return 0, "", false
		}
	}
}

// eventFile appends accepted events to a file, one per line.
type eventFile struct {
	mu  sync.Mutex
	f   *os.File
	w   *bufio.Writer
	err error
}

func openEventFile(path string) (*eventFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, cliflag.Usagef("--out (COLLECTOR_OUT): %v", err)
	}
	return &eventFile{f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

// write appends one event; a body that spans lines is compacted first.
func (e *eventFile) write(body []byte, _ time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if bytes.ContainsAny(body, "\r\n") {
		var b bytes.Buffer
		if json.Compact(&b, body) == nil {
			body = b.Bytes()
		}
	}
	_, _ = e.w.Write(body)
	_ = e.w.WriteByte('\n')
}

func (e *eventFile) flush() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.w.Flush(); err != nil && e.err == nil {
		e.err = err
	}
	return e.err
}

func (e *eventFile) Close() error {
	return errors.Join(e.flush(), e.f.Close())
}
