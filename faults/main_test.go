package faults

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/testbin"
)

// The binaries TestMain built.
var natsServerBin, forwarderBin, collectorBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

// testMain builds the three binaries once for every test. A build failure
// fails the package rather than skipping it: CI must not pass a suite that
// did not run.
func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "faults-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	var race []string
	if raceEnabled {
		race = []string{"-race"}
	}
	start := time.Now()
	bins, err := testbin.Build(dir,
		// nats-server is a dependency, not the code under test: no -race.
		testbin.Target{Name: "nats-server", Pkg: "github.com/nats-io/nats-server/v2"},
		testbin.Target{Name: "forwarder", Pkg: "./cmd/forwarder", Flags: race},
		testbin.Target{Name: "collector", Pkg: "./cmd/collector", Flags: race},
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "faults: built nats-server, forwarder and collector in %v\n", time.Since(start).Round(time.Millisecond))
	natsServerBin, forwarderBin, collectorBin = bins["nats-server"], bins["forwarder"], bins["collector"]
	return m.Run()
}
