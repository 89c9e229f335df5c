package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/embedded/embeddedtest"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// The secrets of TestSecretsNeverLeak. Each is distinctive down to its first
// and last eight characters, and none is hexadecimal, so that neither a
// trace id nor a hash in the output can hold a fragment of one by chance.
const (
	leakHECToken   = "Qv7kTzRw-mP4x-4Nh8-Ky2J-Ls9FdGbHcWq" // the global route's, UUID-shaped
	leakRouteToken = "Rz8WqsXm-Yj3p-4Lk7-Tz1N-Mg6HvKdNpZs" // a subscription route's, sealed in EZSSH_SIEM
	leakSMTPPass   = "Jx7WqLzR-smtp-Kn5VtYcPgHm"
	leakNATSPass   = "Hq6TwZrK-nats-Pm3XkWdBfJs"
	leakSealKey    = "Kq4Lz8Wm-forwarder-key-Tx5Rv9Yn2" // 32 bytes: FORWARDER_SECRET_KEY_FILE

	leakSMTPUser = "alerts@example.com"
	leakNATSUser = "forwarder"
	leakSub      = "sec-sub" // the subscription whose route has leakRouteToken
)

// Markers in events that the test HECs refuse, as Splunk does (400 code 6
// with invalid-event-number), or as an OpenTelemetry-style HEC does (400
// code 6 without it, the text echoing the token).
const (
	poisonNumbered = "POISON-NUMBERED"
	poisonEcho     = "POISON-ECHO"
)

// secretForms is every form in which a secret must not appear: as is, its
// first and last 8 characters (a partial leak; masks show at most 4 and 4),
// base64 and hex of it, and the AUTH PLAIN response that carries the SMTP
// password.
func secretForms() []namedBytes {
	var out []namedBytes
	seen := map[string]bool{}
	add := func(name, v string) {
		if !seen[v] {
			seen[v] = true
			out = append(out, namedBytes{name, []byte(v)})
		}
	}
	for _, s := range []struct{ name, value string }{
		{"the HEC token", leakHECToken},
		{"the route token", leakRouteToken},
		{"the SMTP password", leakSMTPPass},
		{"the NATS password", leakNATSPass},
		{"the secret key", leakSealKey},
	} {
		add(s.name, s.value)
		add(s.name+" (first 8 characters)", s.value[:8])
		add(s.name+" (last 8 characters)", s.value[len(s.value)-8:])
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			add(s.name+" (base64)", enc.EncodeToString([]byte(s.value)))
		}
		add(s.name+" (hex)", hex.EncodeToString([]byte(s.value)))
	}
	add("the SMTP AUTH PLAIN response", base64.StdEncoding.EncodeToString([]byte("\x00"+leakSMTPUser+"\x00"+leakSMTPPass)))
	return out
}

// namedBytes is a piece of output, or a secret form, and what it is.
type namedBytes struct {
	name string
	data []byte
}

// evidence is every byte the forwarder's processes wrote or made others
// write during a session. It is safe for concurrent use.
type evidence struct {
	mu     sync.Mutex
	pieces []namedBytes
}

func (e *evidence) add(name string, b []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pieces = append(e.pieces, namedBytes{name, bytes.Clone(b)})
}

// check fails the test for every secret form found in any piece, showing
// where with the secret itself cut out.
func (e *evidence) check(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	forms := secretForms()
	total := 0
	for _, p := range e.pieces {
		total += len(p.data)
		for _, f := range forms {
			i := bytes.Index(p.data, f.data)
			if i < 0 {
				continue
			}
			before := p.data[max(0, i-80):i]
			after := p.data[i+len(f.data) : min(len(p.data), i+len(f.data)+80)]
			t.Errorf("%s holds %s: …%s«SECRET»%s…", p.name, f.name, before, after)
		}
	}
	t.Logf("searched %d pieces, %d bytes, for %d forms of the secrets", len(e.pieces), total, len(forms))
}

// TestSecretsNeverLeak runs whole sessions of the forwarder with every
// secret it knows (the HEC token, a route token sealed in EZSSH_SIEM, the
// key that opens it, the SMTP and NATS passwords), against HECs that fail
// in every way (a 401 that echoes the token, 403 code 4, 503, a hang, 400
// rejects with and without invalid-event-number) and an SMTP server that
// echoes the AUTH exchange in its refusals, then rejects recipients, then
// accepts; it runs every other command against the same state. No byte the
// processes wrote (stdout, stderr, /metrics, /healthz, /readyz, the emails,
// every message of every stream and bucket, --help) may hold any form of a
// secret. Once with text logs and secrets from files, once with JSON logs
// and secrets from variables and URLs.
func TestSecretsNeverLeak(t *testing.T) {
	passwordFile := natsPasswordFileSupported(t)
	if !passwordFile {
		t.Log("this forwarder has no NATS_PASSWORD_FILE: the NATS password comes from NATS_PASSWORD")
	}
	t.Run("bad settings", func(t *testing.T) { testSecretsBadSettings(t, passwordFile) })
	t.Run("text logs, secrets from files", func(t *testing.T) {
		t.Parallel()
		secretsSession(t, false, passwordFile)
	})
	t.Run("json logs, secrets from variables and URLs", func(t *testing.T) {
		t.Parallel()
		secretsSession(t, true, passwordFile)
	})
}

// natsPasswordFileSupported reports whether this forwarder reads the NATS
// password from NATS_PASSWORD_FILE.
func natsPasswordFileSupported(t *testing.T) bool {
	_, stdout, _ := runForwarder(t, nil, "run", "--help")
	return strings.Contains(stdout, "NATS_PASSWORD_FILE")
}

// secretsSession is one whole session; jsonEnv selects JSON logs and secrets
// from variables and URLs instead of text logs and secrets from files.
func secretsSession(t *testing.T, jsonEnv, natsPasswordFile bool) {
	ev := &evidence{}
	defer ev.check(t)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	ns, natsURL := startNATSWithPassword(t)
	hecA := startLeakyHEC(t, leakHECToken, http.StatusUnauthorized) // the global route's
	hecB := startLeakyHEC(t, leakRouteToken, http.StatusForbidden)  // the subscription route's
	mail := startSMTPFront(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))

	// The commands' environment: every secret, and NATS credentials as
	// variables. The forwarder's own takes some of them from elsewhere.
	cmdEnv := map[string]string{
		"NATS_URL":                  natsURL,
		"NATS_USER":                 leakNATSUser,
		"NATS_PASSWORD":             leakNATSPass,
		"HUNTRESS_HEC_URL":          hecA.url(),
		"HUNTRESS_HEC_TOKEN":        leakHECToken,
		"HUNTRESS_HEC_TIMEOUT":      "1s",
		"FORWARDER_SECRET_KEY_FILE": file("seal.key", base64.StdEncoding.EncodeToString([]byte(leakSealKey))),
		"SMTP_HOST":                 "127.0.0.1",
		"SMTP_PORT":                 strconv.Itoa(mail.port()),
		"SMTP_USER":                 leakSMTPUser,
		"SMTP_PASSWORD":             leakSMTPPass,
	}
	env := map[string]string{
		"FORWARDER_HTTP_ADDR":        addr,
		"FORWARDER_LOG_LEVEL":        "debug",
		"FORWARDER_LOG_FORMAT":       "text",
		"FORWARDER_PAUSE_MIN":        "200ms",
		"FORWARDER_PAUSE_MAX":        "1s",
		"FORWARDER_RETRY_MAX":        "500ms",
		"FORWARDER_BREAKER_FAILURES": "2",
		"FORWARDER_ADMIN_EMAILS":     "secops@example.com",
		"FORWARDER_NOTIFY_WINDOW":    "1s",
		"HUNTRESS_HEC_URL":           hecA.url(),
		"HUNTRESS_HEC_TIMEOUT":       "1s",
		"FORWARDER_SECRET_KEY_FILE":  cmdEnv["FORWARDER_SECRET_KEY_FILE"],
	}
	if jsonEnv {
		env["FORWARDER_LOG_FORMAT"] = "json"
		u, _ := url.Parse(natsURL)
		u.User = url.UserPassword(leakNATSUser, leakNATSPass)
		env["NATS_URL"] = u.String()
		env["HUNTRESS_HEC_TOKEN"] = leakHECToken
		env["SMTP_URL"] = (&url.URL{Scheme: "smtp", User: url.UserPassword(leakSMTPUser, leakSMTPPass), Host: "127.0.0.1:" + cmdEnv["SMTP_PORT"]}).String()
	} else {
		env["NATS_URL"] = natsURL
		env["NATS_USER"] = leakNATSUser
		if natsPasswordFile {
			env["NATS_PASSWORD_FILE"] = file("nats.password", leakNATSPass)
		} else {
			env["NATS_PASSWORD"] = leakNATSPass
		}
		env["HUNTRESS_HEC_TOKEN_FILE"] = file("hec.token", leakHECToken)
		env["SMTP_HOST"] = "127.0.0.1"
		env["SMTP_PORT"] = cmdEnv["SMTP_PORT"]
		env["SMTP_USER"] = leakSMTPUser
		env["SMTP_PASSWORD_FILE"] = file("smtp.password", leakSMTPPass)
	}
	// command runs a forwarder command, which must exit with want, and
	// returns its stdout.
	command := func(want int, args ...string) string {
		t.Helper()
		name := "forwarder " + strings.Join(args, " ")
		code, stdout, stderr := runForwarder(t, cmdEnv, args...)
		ev.add(name+" stdout", []byte(stdout))
		ev.add(name+" stderr", []byte(stderr))
		if code != want {
			t.Errorf("%s: exit status %d, want %d\n%s%s", name, code, want, stdout, stderr)
		}
		return stdout
	}
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"run", "--help"}, {"test-connection", "--help"}, {"routes", "--help"},
		{"routes", "set", "--help"}, {"dlq", "list", "--help"}, {"status", "--help"}, {"replay", "--help"},
	} {
		command(0, args...)
	}

	// The subscription route, its token sealed with the key.
	routeEnv := map[string]string{"NATS_URL": natsURL, "NATS_USER": leakNATSUser, "NATS_PASSWORD": leakNATSPass,
		"FORWARDER_SECRET_KEY_FILE": cmdEnv["FORWARDER_SECRET_KEY_FILE"]}
	setArgs := []string{"routes", "set", leakSub, "--hec-url", hecB.url(), "--admin-emails", "admin@" + leakSub + ".example"}
	if jsonEnv {
		routeEnv["HUNTRESS_HEC_TOKEN"] = leakRouteToken
	} else {
		setArgs = append(setArgs, "--hec-token-file", file("route.token", leakRouteToken))
	}
	code, stdout, stderr := runForwarder(t, routeEnv, setArgs...)
	ev.add("forwarder routes set stdout", []byte(stdout))
	ev.add("forwarder routes set stderr", []byte(stderr))
	if code != 0 {
		t.Fatalf("routes set: exit %d\n%s%s", code, stdout, stderr)
	}

	// Phase 1: both HECs refuse the token, echoing it; the mail server
	// echoes the AUTH exchange in a temporary, then a permanent refusal.
	// The notifier's consumer takes only alerts stored after it exists: let
	// it start before anything fails.
	fw := startForwarder(t, "forwarder", env)
	eventually(t, 20*time.Second, "the admin email notifier started", func() bool {
		fw.mustRun(t)
		return strings.Contains(fw.output(), "admin email notifier started")
	})
	hecA.setMode(hecBadToken)
	hecB.setMode(hecBadToken)
	good := ns.publishMarked(t, 40, "")
	eventually(t, 20*time.Second, "both HECs refused the token and the admin emails were dropped", func() bool {
		fw.mustRun(t)
		return hecA.served(hecBadToken) > 0 && hecB.served(hecBadToken) > 0 && mail.auths.Load() >= 2 &&
			strings.Count(fw.output(), "admin email dropped") >= 2
	})
	command(1, "test-connection")
	command(1, "routes", "test", leakSub)

	// Phase 2: the global HEC is busy, then hangs, then recovers, and so does
	// the route's; the mail server takes the password and refuses every
	// recipient.
	mail.setMode(smtpReject)
	hecA.setMode(hec503)
	hecB.setMode(hecAccept)
	eventually(t, 20*time.Second, "the global HEC answered 503", func() bool { fw.mustRun(t); return hecA.served(hec503) >= 2 })
	command(1, "test-connection")
	hecA.setMode(hecHang)
	eventually(t, 20*time.Second, "a request to the hanging HEC timed out", func() bool { fw.mustRun(t); return hecA.hangsEnded.Load() >= 1 })
	command(1, "test-connection")
	hecA.setMode(hecAccept)
	eventually(t, 30*time.Second, "both routes delivered and the recovery emails were refused", func() bool {
		fw.mustRun(t)
		return hecA.delivered(good) && hecB.delivered(good) && mail.rejected.Load() >= 2 &&
			strings.Count(fw.output(), "admin email dropped") >= 4
	})
	recovered := time.Now()

	// Phase 3: the mail server accepts. Events both HECs refuse, and one
	// that is not JSON, are dead-lettered on both routes.
	mail.setMode(smtpAccept)
	ns.publishMarked(t, 2, poisonNumbered)
	ns.publishMarked(t, 2, poisonEcho)
	if _, err := ns.js.Publish(t.Context(), "ezssh.audit."+leakSub+".ssh", []byte("not json "+leakSub)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "ten dead letters and both routes' first emails sent", func() bool {
		fw.mustRun(t)
		// Past the notify window since the recovery, the next outage is an
		// incident of its own, with its own email, not flapping.
		return ns.count(t, pipeline.DLQSubjectPrefix) >= 10 && len(mail.accept.Messages()) >= 2 &&
			time.Since(recovered) > 1100*time.Millisecond
	})

	// Phase 4: both HECs refuse the token again, while email works, then
	// recover.
	hecA.setMode(hecBadToken)
	hecB.setMode(hecBadToken)
	more := ns.publishMarked(t, 10, "")
	eventually(t, 30*time.Second, "both outages emailed", func() bool {
		fw.mustRun(t)
		return mail.subjects("stopped") >= 2
	})
	hecA.setMode(hecAccept)
	hecB.setMode(hecAccept)
	eventually(t, 30*time.Second, "both recoveries emailed and every event delivered", func() bool {
		fw.mustRun(t)
		return mail.subjects("recovered") >= 2 && hecA.delivered(more) && hecB.delivered(more)
	})

	// Everything an operator looks at, while the forwarder runs.
	client := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ev.add("GET "+path, b)
		if path == "/metrics" && !bytes.Contains(b, []byte(`ezssh_hec_class="misconfigured"`)) {
			t.Errorf("/metrics counts no misconfigured HEC reply:\n%s", b)
		}
	}
	list := command(0, "dlq", "list")
	command(0, "dlq", "list", "--json")
	for _, seq := range ns.seqs(t, pipeline.DLQSubjectPrefix) {
		command(0, "dlq", "show", strconv.FormatUint(seq, 10))
	}
	command(0, "status")
	command(0, "status", "--json")
	command(0, "routes", "list")
	command(0, "routes", "list", "--json")
	get := command(0, "routes", "get", leakSub)
	command(0, "routes", "get", leakSub, "--json")
	command(0, "replay", "--since", "1h", "--dry-run")
	fw.signal(t, syscall.SIGTERM)
	if code := fw.wait(t, 20*time.Second); code != 0 {
		t.Errorf("forwarder exit status %d after SIGTERM, want 0", code)
	}
	ev.add("forwarder run stdout", []byte(fw.stdout.String()))
	ev.add("forwarder run stderr", []byte(fw.stderr.String()))
	for _, m := range mail.accept.Messages() {
		ev.add("email "+m.Subject+" (raw)", m.Raw)
		ev.add("email "+m.Subject+" (subject)", []byte(m.Subject))
		ev.add("email "+m.Subject+" (body)", []byte(m.Body))
	}
	ns.collect(t, ev)

	// The session did what it claims: the secrets were in use, and every
	// failure happened and reached the logs, the dead letters and the email.
	for _, h := range []*leakyHEC{hecA, hecB} {
		if h.authorized.Load() == 0 {
			t.Errorf("HEC %s never received its token: the forwarder did not use it", h.url())
		}
	}
	out := fw.output()
	for _, want := range []string{"[REDACTED]", "HEC replied 401", "HEC replied 403", "HEC replied 503", "HEC replied 400", "admin email not sent; retrying", "admin email dropped", "admin email sent"} {
		if !strings.Contains(out, want) {
			t.Errorf("the forwarder's log does not mention %q", want)
		}
	}
	if n := ns.count(t, pipeline.RouteEventSubjectPrefix); n < 4 {
		t.Errorf("%d route events, want at least 4 (two outages and recoveries per route)", n)
	}
	if !strings.Contains(list, "rejected") || !strings.Contains(list, "invalid") {
		t.Errorf("dlq list shows no rejected and invalid dead letters:\n%s", list)
	}
	if !strings.Contains(get, leakRouteToken[:4]+"…"+leakRouteToken[len(leakRouteToken)-4:]) {
		t.Errorf("routes get does not show the route's token masked (opened with the key):\n%s", get)
	}
	redactedEmail := false
	for _, m := range mail.accept.Messages() {
		redactedEmail = redactedEmail || strings.Contains(m.Body, "[REDACTED]")
	}
	if !redactedEmail {
		t.Errorf("no email shows an echoed token redacted: the echoes never reached an email")
	}
}

// testSecretsBadSettings runs commands whose settings are wrong next to a
// secret, or that cannot reach what the secret is for: the messages name
// the problem, never the secret.
func testSecretsBadSettings(t *testing.T, natsPasswordFile bool) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	badKey := filepath.Join(dir, "bad.key")
	for p, c := range map[string]string{tokenFile: leakHECToken, badKey: leakSealKey + "x"} {
		if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const hecURL = "http://127.0.0.1:9/services/collector"
	smtpURL := "smtp://" + url.QueryEscape(leakSMTPUser) + ":" + leakSMTPPass + "@127.0.0.1:587"
	type badSetting struct {
		name string
		args []string
		env  map[string]string
		code int // exit status
	}
	tests := []badSetting{
		{"token twice", nil, map[string]string{"HUNTRESS_HEC_URL": hecURL, "HUNTRESS_HEC_TOKEN": leakHECToken, "HUNTRESS_HEC_TOKEN_FILE": tokenFile}, 2},
		{"token in the URL", nil, map[string]string{"HUNTRESS_HEC_URL": "ftp://hec.example/services/collector?token=" + leakHECToken, "HUNTRESS_HEC_TOKEN": leakHECToken}, 2},
		{"credentials in the URL", nil, map[string]string{"HUNTRESS_HEC_URL": "https://x:" + leakHECToken + "@hec.example/services/collector", "HUNTRESS_HEC_TOKEN": leakHECToken}, 2},
		{"token with a space", []string{"--hec-token", leakHECToken + " x"}, map[string]string{"HUNTRESS_HEC_URL": hecURL}, 2},
		{"SMTP password twice", nil, map[string]string{"HUNTRESS_HEC_URL": hecURL, "HUNTRESS_HEC_TOKEN": leakHECToken, "SMTP_URL": smtpURL, "SMTP_PASSWORD": leakSMTPPass}, 2},
		{"SMTP URL with a path", nil, map[string]string{"HUNTRESS_HEC_URL": hecURL, "HUNTRESS_HEC_TOKEN": leakHECToken, "SMTP_URL": smtpURL + "/x"}, 2},
		{"SMTP URL with a bad port", nil, map[string]string{"HUNTRESS_HEC_URL": hecURL, "HUNTRESS_HEC_TOKEN": leakHECToken, "SMTP_URL": strings.Replace(smtpURL, ":587", ":99999", 1)}, 2},
		{"NATS password without a user", nil, map[string]string{"HUNTRESS_HEC_URL": hecURL, "HUNTRESS_HEC_TOKEN": leakHECToken, "NATS_PASSWORD": leakNATSPass}, 2},
		{"secret key that does not parse", nil, map[string]string{"HUNTRESS_HEC_URL": hecURL, "HUNTRESS_HEC_TOKEN": leakHECToken, "FORWARDER_SECRET_KEY_FILE": badKey}, 2},
		{"NATS unreachable, password in the URL", []string{"status"}, map[string]string{"NATS_URL": "nats://" + leakNATSUser + ":" + leakNATSPass + "@127.0.0.1:1"}, 1},
		{"NATS unreachable, password in the variable", []string{"dlq", "list"}, map[string]string{"NATS_URL": "nats://127.0.0.1:1", "NATS_USER": leakNATSUser, "NATS_PASSWORD": leakNATSPass}, 1},
		{"HEC unreachable", []string{"test-connection"}, map[string]string{"HUNTRESS_HEC_URL": hecURL, "HUNTRESS_HEC_TOKEN": leakHECToken}, 1},
		{"route set with NATS unreachable", []string{"routes", "set", leakSub, "--hec-url", "https://hec.example/services/collector", "--hec-token-file", tokenFile, "--admin-emails", "a@example.com"},
			map[string]string{"NATS_URL": "nats://127.0.0.1:1"}, 1},
	}
	if natsPasswordFile {
		tests = append(tests, badSetting{"NATS password twice", nil, map[string]string{"HUNTRESS_HEC_URL": hecURL, "HUNTRESS_HEC_TOKEN": leakHECToken,
			"NATS_USER": leakNATSUser, "NATS_PASSWORD": leakNATSPass, "NATS_PASSWORD_FILE": tokenFile}, 2})
	}
	ev := &evidence{}
	for _, tt := range tests {
		if tt.env["NATS_URL"] == "" {
			// Should a bad setting slip through, the run fails to connect
			// instead of starting an embedded server.
			tt.env["NATS_URL"] = "nats://127.0.0.1:1"
		}
		tt.env["FORWARDER_HTTP_ADDR"] = "127.0.0.1:0"
		code, stdout, stderr := runForwarder(t, tt.env, tt.args...)
		if code != tt.code {
			t.Errorf("%s: exit status %d, want %d\n%s%s", tt.name, code, tt.code, stdout, stderr)
		}
		if stderr == "" {
			t.Errorf("%s: no message on stderr", tt.name)
		}
		ev.add(tt.name+": stdout", []byte(stdout))
		ev.add(tt.name+": stderr", []byte(stderr))
	}
	ev.check(t)
}

// startNATSWithPassword starts a JetStream server that requires
// leakNATSUser's password, and connects the test to it.
func startNATSWithPassword(t *testing.T) (*natsServer, string) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: 4 << 20,
		Users:      []*server.User{{Username: leakNATSUser, Password: leakNATSPass}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready in 10s")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	nc, js := embeddedtest.Connect(t, srv.ClientURL(), nats.UserInfo(leakNATSUser, leakNATSPass))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := audit.EnsureStream(ctx, js, audit.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return &natsServer{nc: nc, js: js}, srv.ClientURL()
}

// publishMarked publishes n events of leakSub whose requestor name holds
// marker, and returns their ids.
func (s *natsServer) publishMarked(t *testing.T, n int, marker string) []string {
	t.Helper()
	p := audit.NewPublisher(s.js, audit.PublisherOptions{})
	ids := make([]string, 0, n)
	for i := range n {
		e := &audit.Event{EventType: audit.EventTypeSSH, SubscriptionId: leakSub, ActionPerformed: "Certificate Issued",
			RequestorFriendlyName: fmt.Sprintf("user %d %s", i, marker)}
		if err := p.PublishAsync(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.EventId)
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	return ids
}

// seqs returns the sequences of the dead-letter stream's messages whose
// subject starts with prefix.
func (s *natsServer) seqs(t *testing.T, prefix string) []uint64 {
	t.Helper()
	var out []uint64
	s.each(t, "EZSSH_AUDIT_DLQ", func(m *jetstream.RawStreamMsg) {
		if strings.HasPrefix(m.Subject, prefix+".") {
			out = append(out, m.Sequence)
		}
	})
	return out
}

// count is len(seqs).
func (s *natsServer) count(t *testing.T, prefix string) int { return len(s.seqs(t, prefix)) }

// each calls f with every message of stream, none when it does not exist.
func (s *natsServer) each(t *testing.T, stream string, f func(*jetstream.RawStreamMsg)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return
	}
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	if info.State.Msgs == 0 {
		return
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("stream %s message %d: %v", stream, seq, err)
		}
		f(m)
	}
}

// collect adds every message of every stream (the audit stream, the dead
// letters and route events, and the buckets: routes, notifier state,
// heartbeats) to ev: subject, headers and body.
func (s *natsServer) collect(t *testing.T, ev *evidence) {
	t.Helper()
	names := s.js.StreamNames(t.Context())
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	for _, name := range streams {
		var b bytes.Buffer
		n := 0
		s.each(t, name, func(m *jetstream.RawStreamMsg) {
			n++
			fmt.Fprintf(&b, "%d %s\n", m.Sequence, m.Subject)
			for k, vs := range m.Header {
				for _, v := range vs {
					fmt.Fprintf(&b, "%s: %s\n", k, v)
				}
			}
			b.Write(m.Data)
			b.WriteString("\n")
		})
		ev.add("stream "+name, b.Bytes())
	}
	if len(streams) < 4 {
		t.Errorf("only the streams %v: expected the audit and dead-letter streams and the buckets", streams)
	}
}
