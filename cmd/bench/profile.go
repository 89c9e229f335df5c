package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// profiler takes a CPU profile of one forwarder while it drains, through the
// forwarder's --pprof on an address picked for it. A nil *profiler (no
// --forwarder-cpuprofile) does nothing.
type profiler struct {
	path    string
	addr    string
	seconds int
	done    chan error
}

// newProfiler returns a profiler writing to path, or nil when path is "".
func newProfiler(path string, seconds int) (*profiler, error) {
	if path == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	return &profiler{path: path, addr: addr, seconds: seconds, done: make(chan error, 1)}, nil
}

// env are the forwarder settings that serve the profiler on p's address;
// they come after the bench's own FORWARDER_HTTP_ADDR, and the last one wins.
func (p *profiler) env() []string {
	if p == nil {
		return nil
	}
	return []string{"FORWARDER_PPROF=true", "FORWARDER_HTTP_ADDR=" + p.addr}
}

// start, in the background, waits for the forwarder to serve, then profiles
// its CPU for p.seconds, and then writes its allocations since start next to
// that, with the suffix .allocs.
func (p *profiler) start(ctx context.Context) {
	if p != nil {
		go func() { p.done <- p.profile(ctx) }() // finish waits for it
	}
}

// finish waits until the profile is written, or failed, and records a
// failure among res's warnings: a profile is an aid, not a result.
func (p *profiler) finish(res *Results, phase string) {
	if p == nil {
		return
	}
	if err := <-p.done; err != nil {
		res.Warnings = append(res.Warnings, "phase "+phase+": forwarder CPU profile: "+err.Error())
	}
}

func (p *profiler) profile(ctx context.Context) error {
	base := "http://" + p.addr
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := fetch(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, p.seconds), p.path); err != nil {
		return err
	}
	return fetch(base+"/debug/pprof/allocs", p.path+".allocs")
}

// fetch writes what GET url returns to path.
func fetch(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
