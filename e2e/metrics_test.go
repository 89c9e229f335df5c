package e2e

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// After a run with known outcomes (events delivered, one invalid event
// dead-lettered), /metrics counts exactly what happened.
func TestMetricsCountWhatHappened(t *testing.T) {
	ns := startNATS(t)
	h := startHEC(t, nil)
	env := runEnv(t, ns.url(), h.url(), "huntress")
	fw := startForwarder(t, "forwarder", env)
	ids := ns.publish(t, 200)
	if _, err := ns.js.Publish(t.Context(), "ezssh.audit.e2e-sub-0.ssh", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "all delivered and the invalid event dead-lettered", func() bool {
		fw.mustRun(t)
		return h.distinct() == len(ids) && dlqMessages(t, ns) >= 1
	})
	client := &http.Client{Timeout: 2 * time.Second}
	scrape := func() string {
		resp, err := client.Get("http://" + env["FORWARDER_HTTP_ADDR"] + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	value := func(text, pattern string) float64 {
		m := regexp.MustCompile(`(?m)^` + pattern + ` ([0-9.e+]+)$`).FindStringSubmatch(text)
		if m == nil {
			return -1
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	var text string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("metrics:\n%s", text)
		}
	})
	eventually(t, 10*time.Second, "metrics show the deliveries", func() bool {
		text = scrape()
		return value(text, `ezssh_forwarder_events_delivered(?:_total)?\{route="global"\}`) == float64(len(ids))
	})
	if v := value(text, `ezssh_forwarder_events_dead_lettered(?:_total)?\{reason="invalid",route="global"\}`); v != 1 {
		t.Errorf("dead_lettered{reason=invalid} = %v, want 1", v)
	}
	if v := value(text, `ezssh_forwarder_events_received(?:_total)?\{route="global"\}`); v != float64(len(ids)+1) {
		t.Errorf("received = %v, want %d", v, len(ids)+1)
	}
	if v := value(text, `ezssh_forwarder_breaker_state\{route="global"\}`); v != 0 {
		t.Errorf("breaker state = %v, want 0 (closed)", v)
	}
	if !regexp.MustCompile(`http_client_request_duration_seconds_count\{[^}]*http_response_status_code="200"[^}]*route="global"[^}]*\} [1-9]`).MatchString(text) {
		t.Errorf("no HEC request duration with status 200 in:\n%s", text)
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}
