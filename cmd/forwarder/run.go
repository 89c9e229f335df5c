package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

const runIntro = `forwarder run: deliver EZSSH audit events from JetStream to a Huntress HEC.

With no NATS_URL an embedded JetStream server is started (data in
--embedded-dir, listening on --embedded-listen), so nothing else is needed.
The global route sends every event (ezssh.audit.>) to HUNTRESS_HEC_URL.`

func runForwarder(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f runFlags
	s := cliflag.New("forwarder run", runIntro, stdout)
	f.bind(s)
	if err := s.Parse(args); err != nil {
		if isHelp(err) {
			return nil
		}
		return err
	}
	if len(s.Args()) > 0 {
		return cliflag.Usagef("unexpected arguments %q", s.Args())
	}
	if err := f.validate(); err != nil {
		return err
	}
	hecCfg, err := f.hec.config()
	if err != nil {
		return err
	}
	base := newLogger(stderr, f.logLevel, f.logFormat)
	log := base.With("component", "forwarder")
	client, err := huntress.New(hecCfg)
	if err != nil {
		return &cliflag.UsageError{Msg: err.Error()}
	}
	defer client.CloseIdleConnections()

	conn, err := connect(ctx, f.nats, f.embeddedDir, f.embeddedAt, "ezssh-forwarder", log)
	if err != nil {
		return err
	}
	defer conn.close()
	f.stream.Name = f.pipe.Stream
	if _, err := audit.EnsureStream(ctx, conn.js, f.stream); err != nil {
		return err
	}
	routes := []pipeline.Route{{
		Name:        "global",
		Consumer:    f.consumer,
		Destination: destination(client.URL()),
		Sink:        wrapSink(client),
	}}
	fw, err := pipeline.New(conn.js, f.pipe, routes, base)
	if err != nil {
		return err
	}
	if f.httpAddr != "" {
		stop, err := serveHealth(f.httpAddr, fw, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	stopNotifier, err := startNotifier(ctx, f.notify, conn.js, f.pipe.DLQStream, f.stream.Replicas,
		notifyRoute{name: "global", destination: destination(client.URL())}, base)
	if err != nil {
		return err
	}
	defer stopNotifier()
	log.Info("forwarder started", "stream", f.pipe.Stream, "destination", destination(client.URL()))
	err = fw.Run(ctx)
	log.Info("forwarder stopped")
	return err
}

// destination is a URL without credentials or query, safe to log and email.
func destination(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// serveHealth serves /healthz (the process is up) and /readyz (connected and
// every consumer in place).
func serveHealth(addr string, fw *pipeline.Forwarder, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !fw.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &cliflag.UsageError{Msg: "--http-addr (FORWARDER_HTTP_ADDR): " + err.Error()}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server failed", "err", err)
		}
	}()
	log.Info("health endpoints listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}
