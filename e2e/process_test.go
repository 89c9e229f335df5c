package e2e

import (
	"bytes"
	"context"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hecToken is the HEC token every test uses. It is distinctive so that a
// test can prove it never reaches the output.
const hecToken = "e2e-tok-7Q2XkV9mZcRw4LpT"

// process is one forwarder subprocess and its captured output.
type process struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{} // closed once the process has exited
	exitedAt       time.Time     // set before done is closed
}

// startForwarder starts the forwarder binary with args and, on top of the
// test process's environment minus every NATS_*, HUNTRESS_* and FORWARDER_*
// variable, env. When the test ends the process is killed if still running,
// its output is checked for the token and, if the test failed, logged.
func startForwarder(t *testing.T, name string, env map[string]string, args ...string) *process {
	t.Helper()
	return startBinary(t, forwarderBin, name, env, args...)
}

// startBinary is startForwarder for a given build of the forwarder.
func startBinary(t *testing.T, bin, name string, env map[string]string, args ...string) *process {
	t.Helper()
	p := &process{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = forwarderEnv(env)
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.exitedAt = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if out := p.output(); strings.Contains(out, hecToken) {
			t.Errorf("%s: the HEC token appears in the output", name)
		}
		if t.Failed() {
			t.Logf("%s %s: %s\n%s", name, strings.Join(args, " "), p.status(), p.output())
		}
	})
	return p
}

// forwarderEnv is the test process's environment without the forwarder's own
// settings, plus env.
func forwarderEnv(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "NATS_") || strings.HasPrefix(k, "HUNTRESS_") || strings.HasPrefix(k, "FORWARDER_") {
			continue
		}
		out = append(out, kv)
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// runEnv is the environment of a forwarder that consumes natsURL's stream as
// consumer and posts to hecURL. The health server listens on a free port, so
// several processes can run side by side and be probed.
func runEnv(t *testing.T, natsURL, hecURL, consumer string) map[string]string {
	return map[string]string{
		"NATS_URL":            natsURL,
		"HUNTRESS_HEC_URL":    hecURL,
		"HUNTRESS_HEC_TOKEN":  hecToken,
		"FORWARDER_CONSUMER":  consumer,
		"FORWARDER_HTTP_ADDR": "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"FORWARDER_LOG_LEVEL": "debug",
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// mustRun fails the test at once if the process has exited: a condition it was
// supposed to bring about will never come.
func (p *process) mustRun(t *testing.T) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s exited unexpectedly (%s)", p.name, p.status())
	}
}

func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: send %v: %v", p.name, sig, err)
	}
}

// kill SIGKILLs the process if it still runs and waits for it.
func (p *process) kill(t *testing.T) {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not exit within 10s of SIGKILL", p.name)
	}
}

// wait waits up to timeout for the process to exit and returns its exit code
// (-1 when a signal ended it).
func (p *process) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("%s still running after %v", p.name, timeout)
		return 0
	}
}

func (p *process) status() string {
	if !p.exited() {
		return "still running"
	}
	return p.cmd.ProcessState.String()
}

func (p *process) output() string {
	return "--- stdout ---\n" + p.stdout.String() + "--- stderr ---\n" + p.stderr.String()
}

// runForwarder runs the forwarder to completion (at most a minute) and returns
// its exit code, stdout and stderr.
func runForwarder(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, forwarderBin, args...)
	cmd.Env = forwarderEnv(env)
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run forwarder: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// eventually polls cond every 10 ms until it holds, and fails the test if it
// does not within timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
