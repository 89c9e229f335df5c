package faults

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	var race []string
	if raceEnabled {
		race = []string{"-race"}
	}
	for _, b := range []struct {
		bin  *string
		name string
		pkg  string
		race []string
	}{
		// nats-server is a dependency, not the code under test.
		{&natsServerBin, "nats-server", "github.com/nats-io/nats-server/v2", nil},
		{&forwarderBin, "forwarder", "./cmd/forwarder", race},
		{&collectorBin, "collector", "./cmd/collector", race},
	} {
		out := filepath.Join(dir, b.name)
		args := append(append([]string{"build"}, b.race...), "-o", out, b.pkg)
		start := time.Now()
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "faults: go %s: %v\n%s", strings.Join(args, " "), err, msg)
			return 1
		}
		fmt.Fprintf(os.Stderr, "faults: built %s in %v\n", b.name, time.Since(start).Round(time.Millisecond))
		*b.bin = out
	}
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
