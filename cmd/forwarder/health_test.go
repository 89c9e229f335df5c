package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
)

func TestHealthServesProfilerOnlyWhenAsked(t *testing.T) {
	for _, withPprof := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		stop, err := serveHealth(addr, func() bool { return true }, http.NotFoundHandler(), withPprof, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]int{
			"/healthz":                  http.StatusOK,
			"/readyz":                   http.StatusOK,
			"/debug/pprof/":             map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[withPprof],
			"/debug/pprof/heap?debug=1": map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[withPprof],
		} {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("pprof=%v: GET %s = %d, want %d", withPprof, path, resp.StatusCode, want)
			}
		}
		stop()
	}
}
