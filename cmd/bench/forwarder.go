package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// forwarderPkg is built when no --forwarder is given. A package path rather
// than ./cmd/forwarder, so the build works from any folder of the module
// (the test runs in cmd/bench).
const forwarderPkg = "github.com/ezssh/siem-forwarder/cmd/forwarder"

// consumerName is the durable consumer the forwarders share.
const consumerName = "huntress"

// stopTimeout is how long a forwarder gets to exit after SIGTERM before it is
// killed. Its own shutdown deadline is 10s.
const stopTimeout = 30 * time.Second

// buildForwarder builds the forwarder into dir and returns the binary's path.
func buildForwarder(ctx context.Context, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "forwarder")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, forwarderPkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s (run the bench from inside the module, or pass --forwarder): %w\n%s", forwarderPkg, err, out)
	}
	return bin, nil
}

// fleet is the forwarder processes of one phase. exited is closed as soon as
// any of them exits, which during a drain means something went wrong.
type fleet struct {
	procs  []*proc
	exited chan struct{}
	once   sync.Once
}

// proc is one `forwarder run` subprocess, its stderr in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once Wait returned; waitErr is then set
	waitErr error
	started time.Time
}

// procStats is what a forwarder used, from the kernel's accounting.
type procStats struct {
	CPU     time.Duration // user + system
	PeakRSS int64         // bytes
}

// startFleet starts n forwarders on the same consumer, pointed at natsURL
// and the collector at hecURL: their global route. An empty hecURL starts
// them without one, with only the subscription routes of the bucket
// EZSSH_SIEM. env adds settings (KEY=value) after those of --forwarder-env.
// Their logs go to the bench's log folder.
func (b *bench) startFleet(ctx context.Context, phase string, n int, natsURL, hecURL string, env ...string) (*fleet, error) {
	bin, logDir := b.bin, b.logDir
	env = append(slices.Clone(b.opts.forwarderEnv), env...)
	f := &fleet{exited: make(chan struct{})}
	for i := range n {
		name := fmt.Sprintf("forwarder-%s%d", phase, i+1)
		p, err := startProc(ctx, bin, filepath.Join(logDir, name+".log"), name, natsURL, hecURL, env, func() {
			f.once.Do(func() { close(f.exited) })
		})
		if err != nil {
			f.kill()
			return nil, err
		}
		f.procs = append(f.procs, p)
	}
	return f, nil
}

func startProc(ctx context.Context, bin, logPath, name, natsURL, hecURL string, env []string, onExit func()) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.CommandContext(ctx, bin, "run")
	cmd.Env = cleanEnv()
	if hecURL != "" {
		cmd.Env = append(cmd.Env, "HUNTRESS_HEC_URL="+hecURL, "HUNTRESS_HEC_TOKEN="+benchToken)
	}
	cmd.Env = append(cmd.Env,
		"NATS_URL="+natsURL,
		"FORWARDER_CONSUMER="+consumerName,
		"FORWARDER_HTTP_ADDR=127.0.0.1:0", // an empty value means "use the default", not "off"
		"FORWARDER_LOG_LEVEL=info",
		"FORWARDER_EMBEDDED_DIR="+filepath.Join(filepath.Dir(logPath), name+"-unused"),
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = stopTimeout
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { // owned by p: stop and kill wait for done
		p.waitErr = cmd.Wait()
		close(p.done)
		onExit()
	}()
	return p, nil
}

// cleanEnv is the bench's environment without settings of the forwarder, so
// an operator's own NATS_URL or FORWARDER_* cannot skew the run.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NATS_") || strings.HasPrefix(kv, "HUNTRESS_") || strings.HasPrefix(kv, "FORWARDER_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// stop sends SIGTERM to every forwarder and waits for them to exit, after
// reading their peak RSS while they still run. A forwarder that does not
// exit cleanly within stopTimeout is killed and reported.
func (f *fleet) stop() ([]procStats, error) {
	peaks := make([]int64, len(f.procs))
	for i, p := range f.procs {
		peaks[i] = peakRSS(p.cmd.Process.Pid)
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	stats := make([]procStats, len(f.procs))
	var errs []error
	for i, p := range f.procs {
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.done
			errs = append(errs, p.failure(fmt.Sprintf("did not exit within %v of SIGTERM; killed", stopTimeout)))
			continue
		}
		if p.waitErr != nil {
			errs = append(errs, p.failure(fmt.Sprintf("exited badly after SIGTERM: %v", p.waitErr)))
			continue
		}
		ps := p.cmd.ProcessState
		peak := peaks[i]
		if peak == 0 {
			// Only a fallback: on Linux ru_maxrss also counts the bench's own
			// memory, which the child shared between fork and exec.
			peak = rusageMaxRSS(ps)
		}
		stats[i] = procStats{CPU: ps.UserTime() + ps.SystemTime(), PeakRSS: peak}
	}
	return stats, errors.Join(errs...)
}

// kill ends every forwarder still running and waits for it. It is
// idempotent: deferred by every phase so that no forwarder outlives it.
func (f *fleet) kill() {
	for _, p := range f.procs {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// exitError describes why a drain was cut short by a forwarder exiting.
func (f *fleet) exitError() error {
	var errs []error
	for _, p := range f.procs {
		select {
		case <-p.done:
			errs = append(errs, p.failure(fmt.Sprintf("exited during the run: %v", p.waitErr)))
		default:
		}
	}
	return errors.Join(errs...)
}

// failure wraps msg with the tail of the forwarder's log.
func (p *proc) failure(msg string) error {
	return fmt.Errorf("%s %s; last lines of %s:\n%s", p.name, msg, p.logPath, tail(p.logPath, 20))
}

// explain adds to a failed wait the forwarders' side of the story: the exit
// status and log of one that exited, else every forwarder's log tail.
func (f *fleet) explain(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, errForwarderExited) {
		return fmt.Errorf("%w\n%w", err, f.exitError())
	}
	var b strings.Builder
	for _, p := range f.procs {
		fmt.Fprintf(&b, "\n--- last lines of %s:\n%s", p.logPath, tail(p.logPath, 20))
	}
	return fmt.Errorf("%w%s", err, b.String())
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
