// Package embedded runs a JetStream-enabled nats-server inside the process: the
// forwarder's default when no NATS_URL is given, the demo, the benchmarks and
// the tests.
//
// The server fsyncs every write before it acknowledges it (sync_interval:
// always): audit events are not worth the risk of JetStream's default two-minute
// flush, which can lose acknowledged messages on power loss.
package embedded

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures the embedded server. The zero value listens on a random
// loopback port with its store in a fresh temporary folder.
type Config struct {
	// Host to listen on. Default 127.0.0.1.
	Host string
	// Port to listen on. 0 picks a random free port.
	Port int
	// StoreDir holds the JetStream data. Default: a new temporary folder,
	// removed by Shutdown.
	StoreDir string
	// NoSync turns off fsync-before-acknowledge. Only benchmarks that measure
	// its cost set it.
	NoSync bool
	// Logging sends the server's own log to stderr.
	Logging bool
}

// Server is a running embedded server.
type Server struct {
	*server.Server
	tempDir string
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := cfg.Port
	if port == 0 {
		port = -1
	}
	dir, temp := cfg.StoreDir, ""
	if dir == "" {
		d, err := os.MkdirTemp("", "ezssh-nats-*")
		if err != nil {
			return nil, fmt.Errorf("embedded: %w", err)
		}
		dir, temp = d, d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: store folder %s: %w", dir, err)
	}
	opts := &server.Options{
		ServerName: "ezssh-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: !cfg.NoSync,
		NoSigs:     true,
		NoLog:      !cfg.Logging,
		// Room for over-size events (the stream takes up to 2 MiB + 64 KiB) to
		// reach the forwarder and be dead-lettered as invalid.
		MaxPayload: 4 << 20,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	if cfg.Logging {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded: nats-server did not become ready in 10s (is the port in use?)")
	}
	return &Server{Server: s, tempDir: temp}, nil
}

// URL is the client URL of the server.
func (s *Server) URL() string { return s.ClientURL() }

// Shutdown stops the server, waits for it and removes a temporary store.
func (s *Server) Shutdown() {
	s.Server.Shutdown()
	s.WaitForShutdown()
	if s.tempDir != "" {
		os.RemoveAll(s.tempDir)
	}
}
