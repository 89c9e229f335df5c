package faults

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// proc is one subprocess. Its stdout and stderr go to a file, so a long run's
// logs cost the test no memory; a failing test logs the end of that file.
type proc struct {
	name    string
	args    []string
	cmd     *exec.Cmd
	log     string        // stdout and stderr
	done    chan struct{} // closed once the process has exited
	stopped atomic.Bool   // the test signalled it to end
}

// startProc starts bin with args in a folder of its own, with the test's
// environment minus the settings of this repository's commands, plus env
// ("KEY=value"). When the test ends the process is killed if still running
// and, if the test failed, the end of its output is logged.
func startProc(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{name: name, args: args, log: filepath.Join(dir, "output.log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(baseEnv(), env...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = f, f
	err = p.cmd.Start()
	f.Close() // the child has its own descriptor
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		out := p.output()
		if strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector reported a data race", name)
		}
		if t.Failed() {
			t.Logf("%s %s (%s); end of its output:\n%s", name, strings.Join(args, " "), p.status(), tail(out, 12<<10))
		}
	})
	return p
}

// baseEnv is the test process's environment without the variables that
// configure this repository's commands or export their telemetry.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "NATS_"), strings.HasPrefix(k, "HUNTRESS_"), strings.HasPrefix(k, "FORWARDER_"),
			strings.HasPrefix(k, "COLLECTOR_"), strings.HasPrefix(k, "SMTP_"), strings.HasPrefix(k, "OTEL_"),
			k == "FAULTS_REPORT":
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// crashed reports whether the process ended without the test asking it to.
func (p *proc) crashed() bool { return p.exited() && !p.stopped.Load() }

// mustRun fails the test at once if the process ended by itself.
func (p *proc) mustRun(t *testing.T) {
	t.Helper()
	if p.crashed() {
		t.Fatalf("%s exited by itself (%s); end of its output:\n%s", p.name, p.status(), tail(p.output(), 12<<10))
	}
}

// kill SIGKILLs the process if it still runs and waits for it to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.stop(t, syscall.SIGKILL, 10*time.Second)
}

// stop sends sig and waits up to timeout for the process to exit; if it does
// not, the test fails and the process is killed.
func (p *proc) stop(t *testing.T, sig syscall.Signal, timeout time.Duration) {
	t.Helper()
	if p.exited() {
		return
	}
	p.stopped.Store(true)
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(timeout):
	}
	t.Errorf("%s still running %v after %v", p.name, timeout, sig)
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) status() string {
	if !p.exited() {
		return "still running"
	}
	return p.cmd.ProcessState.String()
}

// output is everything the process wrote so far.
func (p *proc) output() string {
	f, err := os.Open(p.log)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// tail is the last n bytes of s, from a line start when it can.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "…\n" + s
}

// poll checks cond every interval until it holds or timeout passes, and
// reports whether it held.
func poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// eventually is poll that fails the test at once on timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(timeout, 20*time.Millisecond, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}
