package main

import (
	"net"
	"os"
	"strings"
	"time"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
)

const intro = `Usage: collector [flags]

Serves a local HEC-compatible collector on /services/collector (the Splunk HEC
protocol, gzip accepted), for trying the forwarder without a real Huntress and
for fault tests. GET /collector/stats answers its counters as JSON; with
--allow-fault-injection, PUT /collector/mode with a body of "ok",
"unavailable" (503) or "hang" (accept, never answer) switches how it replies.`

// config is the collector's settings.
type config struct {
	Addr        string
	Token       string
	TokenFile   string
	Out         string
	Faults      bool
	ReportEvery time.Duration
}

func parseConfig(args []string, s *cliflag.Set) (config, error) {
	var c config
	s.String(&c.Addr, "addr", "COLLECTOR_ADDR", "127.0.0.1:8088", "address to listen on")
	s.String(&c.Token, "token", "COLLECTOR_TOKEN", "", "HEC token to require (prefer the environment variable); empty accepts any request")
	s.String(&c.TokenFile, "token-file", "COLLECTOR_TOKEN_FILE", "", "file holding the HEC token to require")
	s.String(&c.Out, "out", "COLLECTOR_OUT", "", "file to append every accepted event to, one JSON object per line; empty keeps none")
	s.Bool(&c.Faults, "allow-fault-injection", "COLLECTOR_ALLOW_FAULT_INJECTION", false, "accept PUT /collector/mode to make the collector fail on purpose")
	s.Duration(&c.ReportEvery, "report-every", "COLLECTOR_REPORT_EVERY", 10*time.Second, "how often to log the counters when they changed; 0 never")
	if err := s.Parse(args); err != nil {
		return c, err
	}
	if len(s.Args()) > 0 {
		return c, cliflag.Usagef("unexpected argument %q (collector takes only flags)", s.Args()[0])
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return c, cliflag.Usagef("--addr (COLLECTOR_ADDR) %q is not host:port: %v", c.Addr, err)
	}
	if c.TokenFile != "" {
		if c.Token != "" {
			return c, cliflag.Usagef("give either --token (COLLECTOR_TOKEN) or --token-file (COLLECTOR_TOKEN_FILE), not both")
		}
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return c, cliflag.Usagef("--token-file (COLLECTOR_TOKEN_FILE): %v", err)
		}
		c.Token = strings.TrimSpace(string(b))
		if c.Token == "" {
			return c, cliflag.Usagef("--token-file (COLLECTOR_TOKEN_FILE) %s is empty", c.TokenFile)
		}
	}
	if c.ReportEvery < 0 {
		return c, cliflag.Usagef("--report-every (COLLECTOR_REPORT_EVERY) must not be negative")
	}
	return c, nil
}
