package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"sync"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
	"github.com/ezssh/siem-forwarder/internal/routes"
	"github.com/ezssh/siem-forwarder/internal/telemetry"
)

const runIntro = `forwarder run: deliver EZSSH audit events from JetStream to a Huntress HEC.

With no NATS_URL an embedded JetStream server is started (data in
--embedded-dir, listening on --embedded-listen), so nothing else is needed.

Routes: the global route sends every event (ezssh.audit.>) to HUNTRESS_HEC_URL;
--routes-file adds static routes; every enabled entry of the KV bucket
EZSSH_SIEM (key = SubscriptionId, managed with "forwarder routes") sends that
subscription's events to its own HEC, applied live.`

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
	base := newLogger(stderr, f.logLevel, f.logFormat)
	log := base.With("component", "forwarder")
	table := newRouteTable()
	defer table.closeAll()
	static, err := f.staticRoutes(table)
	if err != nil {
		return err
	}
	var key []byte
	if f.secretKeyFile != "" {
		if key, err = routes.ReadKeyFile(f.secretKeyFile); err != nil {
			return cliflag.Usagef("--secret-key-file (%s): %v", routes.KeyFileEnv, err)
		}
	}

	conn, err := connect(ctx, f.nats, f.embeddedDir, f.embeddedAt, "ezssh-forwarder", log)
	if err != nil {
		return err
	}
	defer conn.close()
	f.stream.Name = f.pipe.Stream
	if _, err := audit.EnsureStream(ctx, conn.js, f.stream); err != nil {
		return err
	}
	kv, err := routes.EnsureBucket(ctx, conn.js, f.stream.Replicas)
	if err != nil {
		return err
	}
	f.pipe.Replicas = f.stream.Replicas
	tel, err := telemetry.Setup(ctx, "ezssh-forwarder", newInstanceID())
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	f.pipe.Meters, f.pipe.Tracers = tel.Meters, tel.Tracers
	fw, err := pipeline.New(conn.js, f.pipe, static, base)
	if err != nil {
		return err
	}
	stopHeartbeat, err := startHeartbeat(ctx, conn.js, fw, newInstanceID(), f.stream.Replicas, base)
	if err != nil {
		return err
	}
	defer stopHeartbeat()
	subs := &subscriptionRoutes{fw: fw, table: table, base: f.hec.base(), key: key, prefix: f.consumer, log: log}
	if f.httpAddr != "" {
		stop, err := serveHealth(f.httpAddr, func() bool { return fw.Ready() && subs.synced.Load() }, tel.MetricsHandler(), f.pprof, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	stopNotifier, err := startNotifier(ctx, f.notify, conn.js, f.pipe.DLQStream, f.stream.Replicas, table, base)
	if err != nil {
		return err
	}
	defer stopNotifier()

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { subs.run(ctx, kv) })
	log.Info("forwarder started", "stream", f.pipe.Stream, "static_routes", len(static), "subscription_routes", routes.Bucket)
	err = fw.Run(ctx)
	log.Info("forwarder stopped")
	return err
}

// staticRoutes are the global route (HUNTRESS_HEC_URL) and the routes of
// --routes-file, recorded in table with their admins.
func (f *runFlags) staticRoutes(table *routeTable) ([]pipeline.Route, error) {
	admins, err := f.notify.admins()
	if err != nil {
		return nil, &cliflag.UsageError{Msg: err.Error()}
	}
	var out []pipeline.Route
	add := func(name, consumer, filter string, cfg huntress.Config, admins []string) error {
		client, err := huntress.New(cfg)
		if err != nil {
			return &cliflag.UsageError{Msg: fmt.Sprintf("route %s: %v", name, err)}
		}
		dest := destination(client.URL())
		table.set(name, routeInfo{destination: dest, admins: admins, client: client})
		out = append(out, pipeline.Route{Name: name, Consumer: consumer, FilterSubject: filter, Destination: dest, Sink: wrapSink(client)})
		return nil
	}
	if f.hec.url != "" || f.hec.token != "" || f.hec.tokenFile != "" {
		cfg, err := f.hec.config()
		if err != nil {
			return nil, err
		}
		if err := add("global", f.consumer, audit.SubjectAll, cfg, admins); err != nil {
			return nil, err
		}
	}
	if f.routesFile != "" {
		static, err := routes.ReadStatic(f.routesFile)
		if err != nil {
			return nil, cliflag.Usagef("--routes-file (FORWARDER_ROUTES_FILE): %v", err)
		}
		for _, r := range static {
			if r.Name == "global" && f.hec.url != "" {
				return nil, cliflag.Usagef("--routes-file: route name %q is taken by the HUNTRESS_HEC_URL route", r.Name)
			}
			cfg, err := r.HECConfig(nil, f.hec.base())
			if err != nil {
				return nil, &cliflag.UsageError{Msg: err.Error()}
			}
			if err := add(r.Name, f.consumer+"_"+r.Name, r.Filter, cfg, r.AdminEmails); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// destination is a URL without credentials or query, safe to log and email.
func destination(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// serveHealth serves /metrics (Prometheus), /healthz (the process is up) and /readyz (connected and
// every consumer in place), and with withPprof Go's profiler under /debug/pprof/.
func serveHealth(addr string, ready func() bool, metrics http.Handler, withPprof bool, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
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
