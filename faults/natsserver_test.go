package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
)

// natsNode is one nats-server process with JetStream and a store of its own,
// which survives restarts.
type natsNode struct {
	name    string
	dir     string   // config, store and ports files
	cluster string   // its cluster listen address; empty when standalone
	routes  []string // the cluster's route URLs
	port    int      // client port, fixed by the first start
	// syncAlways makes the server fsync every write before acknowledging
	// it, as DESIGN.md requires of every server that holds audit events:
	// without it a killed server can lose acknowledged events, and the test
	// would blame the forwarder. It caps publishing at one event per fsync
	// (about a millisecond here), so a case that never kills the server may
	// go without.
	syncAlways bool
	proc       *proc
}

// newNATSNode prepares a standalone node.
func newNATSNode(t *testing.T, name string, syncAlways bool) *natsNode {
	return &natsNode{name: name, dir: t.TempDir(), syncAlways: syncAlways}
}

// config is the node's configuration. The first start lets the server pick
// its client port (written to the ports file); a restart reuses it, so that
// clients reconnect to the same URL.
func (n *natsNode) config() string {
	port := -1
	if n.port != 0 {
		port = n.port
	}
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\nhost: \"127.0.0.1\"\nport: %d\n", n.name, port)
	fmt.Fprintf(&b, "ports_file_dir: %q\n", filepath.Join(n.dir, "ports"))
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n", filepath.Join(n.dir, "store"))
	if n.syncAlways {
		b.WriteString("  sync_interval: always\n")
	}
	b.WriteString("}\n")
	if n.cluster != "" {
		quoted := make([]string, len(n.routes))
		for i, r := range n.routes {
			quoted[i] = strconv.Quote(r)
		}
		fmt.Fprintf(&b, "cluster {\n  name: \"faults\"\n  listen: %q\n  routes: [%s]\n}\n", n.cluster, strings.Join(quoted, ", "))
	}
	return b.String()
}

// start starts the node and waits until it listens for clients.
func (n *natsNode) start(t *testing.T) {
	t.Helper()
	conf := filepath.Join(n.dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(n.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	ports := filepath.Join(n.dir, "ports")
	if err := os.RemoveAll(ports); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(ports, 0o755); err != nil {
		t.Fatal(err)
	}
	n.proc = startProc(t, "nats-server "+n.name, natsServerBin, nil, "-c", conf)
	file := filepath.Join(ports, fmt.Sprintf("nats-server_%d.ports", n.proc.cmd.Process.Pid))
	eventually(t, 30*time.Second, n.name+" to listen", func() bool {
		n.proc.mustRun(t)
		b, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		var p struct{ Nats []string }
		if json.Unmarshal(b, &p) != nil || len(p.Nats) == 0 {
			return false // not written yet, or half written
		}
		_, portStr, err := net.SplitHostPort(strings.TrimPrefix(p.Nats[0], "nats://"))
		if err != nil {
			t.Fatalf("%s ports file: %v", n.name, err)
		}
		n.port, _ = strconv.Atoi(portStr)
		return true
	})
}

// stop ends the node with sig (SIGTERM: a clean shutdown; SIGKILL: a crash).
func (n *natsNode) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	n.proc.stop(t, sig, 30*time.Second)
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// startCluster starts a JetStream cluster of size nodes on loopback. Cluster
// ports must be known before any node starts (each node's routes name them
// all), so they are picked free first; client ports are chosen by the
// servers.
func startCluster(t *testing.T, size int) []*natsNode {
	t.Helper()
	addrs := freeAddrs(t, size)
	routes := make([]string, size)
	for i, a := range addrs {
		routes[i] = "nats-route://" + a
	}
	nodes := make([]*natsNode, size)
	for i := range nodes {
		nodes[i] = &natsNode{name: fmt.Sprintf("n%d", i+1), dir: t.TempDir(), cluster: addrs[i], routes: routes, syncAlways: true}
		nodes[i].start(t)
	}
	return nodes
}

// freeAddrs returns n distinct loopback addresses that were free a moment
// ago: all are held open together, so none is handed out twice.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

func urls(nodes ...*natsNode) string {
	u := make([]string, len(nodes))
	for i, n := range nodes {
		u[i] = n.url()
	}
	return strings.Join(u, ",")
}

// client is the test's own connection, which reconnects forever.
type client struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func connect(t *testing.T, url string) *client {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("faults-test"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &client{nc: nc, js: js}
}

// ensureStream creates the audit stream with replicas, retrying while the
// servers are still electing their leaders.
func (c *client) ensureStream(t *testing.T, replicas int) {
	t.Helper()
	var last error
	ok := poll(60*time.Second, 250*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		s, err := audit.EnsureStream(ctx, c.js, audit.StreamOptions{Replicas: replicas})
		if err != nil {
			last = err
			return false
		}
		info, err := s.Info(ctx)
		if err != nil {
			last = err
			return false
		}
		if replicas > 1 {
			// Every replica caught up, so losing one leaves a quorum.
			cl := info.Cluster
			if cl == nil || cl.Leader == "" || len(cl.Replicas) != replicas-1 {
				last = fmt.Errorf("stream cluster %+v", cl)
				return false
			}
			for _, p := range cl.Replicas {
				if !p.Current || p.Offline {
					last = fmt.Errorf("replica %s not current", p.Name)
					return false
				}
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("audit stream with %d replicas not ready: %v", replicas, last)
	}
}

// consumer returns the durable consumer's state, or nil while it cannot be
// read (it does not exist yet, or the servers are electing a leader).
func (c *client) consumer(t *testing.T, name string) *jetstream.ConsumerInfo {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	cons, err := c.js.Consumer(ctx, audit.StreamName, name)
	if err != nil {
		return nil
	}
	return cons.CachedInfo()
}

// settled reports whether consumer name has delivered and had acknowledged
// every message of the stream: nothing more can reach the HEC after that.
func (c *client) settled(t *testing.T, name string) bool {
	info := c.consumer(t, name)
	return info != nil && info.NumPending == 0 && info.NumAckPending == 0
}

// deadLetters is how many dead letters the dead-letter stream holds (route
// state changes, which share it, not counted), -1 when unknown.
func (c *client) deadLetters(t *testing.T) int {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	s, err := c.js.Stream(ctx, "EZSSH_AUDIT_DLQ")
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("ezssh.dlq.>"))
	if err != nil {
		return -1
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}
