package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/ezssh/siem-forwarder/internal/testbin"
)

// forwarderBin is the forwarder binary TestMain built; forwarderHooksBin is
// the same with the testhooks build tag.
var forwarderBin, forwarderHooksBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

// testMain builds the forwarder once for every test. A build failure fails the
// package rather than skipping it: these tests are the only ones that run the
// real binary.
func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "forwarder-e2e-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bins, err := testbin.Build(dir,
		testbin.Target{Name: "forwarder", Pkg: "./cmd/forwarder"},
		// The same forwarder with the test-only crash hook compiled in
		// (FORWARDER_TEST_CRASH_ON), for the crash-loop test.
		testbin.Target{Name: "forwarder-testhooks", Pkg: "./cmd/forwarder", Flags: []string{"-tags", "testhooks"}},
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	forwarderBin, forwarderHooksBin = bins["forwarder"], bins["forwarder-testhooks"]
	return m.Run()
}
