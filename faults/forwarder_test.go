package faults

import (
	"strings"
	"testing"
)

// consumerName is the durable consumer of the forwarders' global route (the
// forwarder's --consumer default).
const consumerName = "huntress"

// startForwarder runs `forwarder run` against the NATS servers natsURL (a
// comma-separated list) and the HEC hecURL, with extra flags. The health
// server is off, so any number can run side by side.
func startForwarder(t *testing.T, name, natsURL, hecURL string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"run", "--nats-url", natsURL, "--hec-url", hecURL, "--http-addr=", "--log-level", "info"}, extra...)
	p := startProc(t, name, forwarderBin, []string{"HUNTRESS_HEC_TOKEN=" + hecToken}, args...)
	t.Cleanup(func() {
		if strings.Contains(p.output(), hecToken) {
			t.Errorf("%s: the HEC token appears in its output", name)
		}
	})
	return p
}
