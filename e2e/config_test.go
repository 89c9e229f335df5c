package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/embedded"
	"github.com/ezssh/siem-forwarder/internal/embedded/embeddedtest"
)

// TestBadConfigExitsTwo checks that each bad setting stops the forwarder
// before it connects anywhere, with exit status 2 and a message on stderr that
// names the setting, and that no run echoes the token.
func TestBadConfigExitsTwo(t *testing.T) {
	const localHEC = "http://127.0.0.1:9/services/collector"
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of stderr
	}{{
		name: "flag value that does not parse",
		args: []string{"run", "--batch-events=abc"},
		env:  map[string]string{"HUNTRESS_HEC_URL": localHEC, "HUNTRESS_HEC_TOKEN": hecToken},
		want: []string{"batch-events", `"abc"`},
	}, {
		name: "HEC URL with a scheme other than http(s)",
		env:  map[string]string{"HUNTRESS_HEC_URL": "ftp://x", "HUNTRESS_HEC_TOKEN": hecToken},
		// The message names the setting, the value and the fix.
		want: []string{`"ftp://x"`, "https://", "HUNTRESS_HEC_URL"},
	}, {
		name: "no token",
		env:  map[string]string{"HUNTRESS_HEC_URL": localHEC},
		want: []string{"HUNTRESS_HEC_TOKEN"},
	}, {
		name: "plain http to a host that is not loopback",
		env:  map[string]string{"HUNTRESS_HEC_URL": "http://example.com/services/collector", "HUNTRESS_HEC_TOKEN": hecToken},
		want: []string{"allow-insecure-http", "example.com"},
	}, {
		name: "token with a trailing newline",
		env:  map[string]string{"HUNTRESS_HEC_URL": localHEC, "HUNTRESS_HEC_TOKEN": hecToken + "\n"},
		want: []string{"Token contains"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Should a bad setting slip through, the run fails to connect
			// (exit 1) instead of starting an embedded server.
			tt.env["NATS_URL"] = "nats://127.0.0.1:1"
			tt.env["FORWARDER_HTTP_ADDR"] = "127.0.0.1:0"
			code, stdout, stderr := runForwarder(t, tt.env, tt.args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not mention %q", w)
				}
			}
			if strings.Contains(stdout+stderr, hecToken) {
				t.Errorf("the HEC token appears in the output")
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
			}
		})
	}
}

// TestHealthEndpoints checks /healthz and /readyz, and that readiness follows
// the NATS connection: it drops while the server is down and returns once the
// forwarder has reconnected, while /healthz answers throughout.
func TestHealthEndpoints(t *testing.T) {
	ns := startNATS(t)
	h := startHEC(t, nil)
	env := runEnv(t, ns.url(), h.url(), "huntress")
	base := "http://" + env["FORWARDER_HTTP_ADDR"]
	fw := startForwarder(t, "forwarder", env)

	client := &http.Client{Timeout: 2 * time.Second}
	status := func(path string) int {
		resp, err := client.Get(base + path)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	eventually(t, 30*time.Second, "/healthz 200", func() bool {
		fw.mustRun(t)
		return status("/healthz") == http.StatusOK
	})
	eventually(t, 30*time.Second, "/readyz 200", func() bool {
		fw.mustRun(t)
		return status("/readyz") == http.StatusOK
	})

	// Take NATS away, then bring it back on the same port and store.
	port := ns.srv.Addr().(*net.TCPAddr).Port
	ns.nc.Close()
	ns.srv.Shutdown()
	eventually(t, 30*time.Second, "/readyz 503 with NATS down", func() bool {
		fw.mustRun(t)
		return status("/readyz") == http.StatusServiceUnavailable
	})
	if got := status("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz %d with NATS down, want 200: the process is up", got)
	}
	srv := embeddedtest.Start(t, embedded.Config{Port: port, StoreDir: ns.dir})
	eventually(t, 30*time.Second, "/readyz 200 after NATS came back", func() bool {
		fw.mustRun(t)
		return status("/readyz") == http.StatusOK
	})

	// Ready again means delivering again.
	back := connectNATS(t, srv, ns.dir)
	ids := back.publish(t, 100)
	logTallyOnFailure(t, ids, h)
	eventually(t, 30*time.Second, "events published after the reconnect at the HEC", func() bool {
		fw.mustRun(t)
		return countAll(ids, h).missing == 0
	})
}
