package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	bin := filepath.Join(dir, "forwarder")
	build := exec.Command("go", "build", "-o", bin, "./cmd/forwarder")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/forwarder failed: %v\n%s", err, out)
		return 1
	}
	forwarderBin = bin
	// The same forwarder with the test-only crash hook compiled in
	// (FORWARDER_TEST_CRASH_ON), for the crash-loop test.
	hooks := filepath.Join(dir, "forwarder-testhooks")
	build = exec.Command("go", "build", "-tags", "testhooks", "-o", hooks, "./cmd/forwarder")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build -tags testhooks ./cmd/forwarder failed: %v\n%s", err, out)
		return 1
	}
	forwarderHooksBin = hooks
	return m.Run()
}

// moduleRoot is the folder of the go.mod this package belongs to.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}
