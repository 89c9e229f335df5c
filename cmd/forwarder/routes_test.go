package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/huntress"
	"github.com/ezssh/siem-forwarder/internal/routes"
)

const (
	routesTestToken  = "5f0d3c2a-7b1e-4e9a-8c6d-2a9b7e4f1c03"
	routesTestToken2 = "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d"
)

// routesEnv is an embedded server with the audit stream, NATS_URL pointing at
// it, and every output of the commands kept to check that no token leaks.
type routesEnv struct {
	js  jetstream.JetStream
	dir string
	all bytes.Buffer // every stdout and stderr
}

func startRoutesEnv(t *testing.T) *routesEnv {
	t.Helper()
	srvURL, js := startTestJetStream(t)
	if _, err := audit.EnsureStream(context.Background(), js, audit.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"HUNTRESS_HEC_TOKEN", "HUNTRESS_HEC_URL", routes.KeyFileEnv, "FORWARDER_CONSUMER", "FORWARDER_STREAM",
		"NATS_CREDS", "NATS_NKEY", "NATS_USER", "NATS_PASSWORD", "NATS_CA", "NATS_CERT", "NATS_KEY"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("NATS_URL", srvURL)
	e := &routesEnv{js: js, dir: t.TempDir()}
	t.Cleanup(func() {
		for _, tok := range []string{routesTestToken, routesTestToken2} {
			if strings.Contains(e.all.String(), tok) {
				t.Errorf("a token appeared in the output:\n%s", e.all.String())
			}
		}
	})
	return e
}

// run runs `forwarder routes args...` in process.
func (e *routesEnv) run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), append([]string{"routes"}, args...), &out, &errb)
	e.all.Write(out.Bytes())
	e.all.Write(errb.Bytes())
	if err != nil {
		e.all.WriteString(err.Error())
	}
	return out.String(), errb.String(), err
}

func (e *routesEnv) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := e.run(t, args...)
	if err != nil {
		t.Fatalf("routes %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// usageErr runs a command that must fail with exit status 2 and returns the
// message.
func (e *routesEnv) usageErr(t *testing.T, args ...string) string {
	t.Helper()
	_, _, err := e.run(t, args...)
	if err == nil || !cliflag.IsUsage(err) {
		t.Fatalf("routes %s: err = %v; want a usage error (exit 2)", strings.Join(args, " "), err)
	}
	return err.Error()
}

func (e *routesEnv) file(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// raw returns the stored value of sub and its revision; 0 when there is none.
func (e *routesEnv) raw(t *testing.T, sub string) (string, uint64) {
	t.Helper()
	kv, err := e.js.KeyValue(context.Background(), routes.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return "", 0
	}
	if err != nil {
		t.Fatal(err)
	}
	v, err := kv.Get(context.Background(), sub)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(v.Value()), v.Revision()
}

func (e *routesEnv) entry(t *testing.T, sub string) *routes.Entry {
	t.Helper()
	v, _ := e.raw(t, sub)
	en, err := routes.Decode([]byte(v))
	if err != nil {
		t.Fatalf("stored value of %s: %v", sub, err)
	}
	return en
}

func (e *routesEnv) getJSON(t *testing.T, args ...string) routeRecord {
	t.Helper()
	out := e.mustRun(t, append([]string{"get", "--json"}, args...)...)
	var r routeRecord
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("get --json %q: %v", out, err)
	}
	return r
}

func TestRoutesRoundTrip(t *testing.T) {
	e := startRoutesEnv(t)
	tokFile := e.file(t, "acme.token", routesTestToken+"\n")
	out := e.mustRun(t, "set", "acme", "--hec-url", "https://hec.huntress.io/services/collector",
		"--hec-token-file", tokFile, "--admin-emails", "admin@acme.example, Ops <ops@acme.example>")
	if !strings.Contains(out, "acme") || !strings.Contains(out, routes.Mask(routesTestToken)) {
		t.Fatalf("set printed %q", out)
	}
	en := e.entry(t, "acme")
	if !en.Enabled || en.HECToken != routesTestToken || en.Provider != "huntress" || en.AuthScheme != "Splunk" ||
		len(en.AdminEmails) != 2 || time.Since(en.UpdatedAt) > time.Minute {
		t.Fatalf("stored %v", en)
	}
	created := en.UpdatedAt

	// get, text and JSON, with the SUB before or after the flags.
	out = e.mustRun(t, "get", "acme")
	for _, want := range []string{"Enabled:", "yes", "https://hec.huntress.io/services/collector", routes.Mask(routesTestToken),
		"admin@acme.example, Ops <ops@acme.example>", "huntress-acme: not created"} {
		if !strings.Contains(out, want) {
			t.Errorf("get does not show %q:\n%s", want, out)
		}
	}
	r := e.getJSON(t, "acme")
	if r.Subscription != "acme" || r.Enabled == nil || !*r.Enabled || r.Host != "hec.huntress.io" || r.Token != routes.Mask(routesTestToken) ||
		r.Sealed || r.Consumer == nil || r.Consumer.Exists || r.Consumer.Name != "huntress-acme" {
		t.Fatalf("get --json = %+v", r)
	}

	// A second route, disabled, with a consumer that is paused and behind.
	e.mustRun(t, "set", "--hec-url", "http://127.0.0.1:8088", "--admin-emails", "a@beta.example", "--disabled",
		"--auth-scheme", "bearer", "--hec-token-file", tokFile, "beta")
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	if _, err := e.js.CreateConsumer(ctx, audit.StreamName, jetstream.ConsumerConfig{
		Durable: "huntress-beta", FilterSubject: routes.Filter("beta"), AckPolicy: jetstream.AckExplicitPolicy, PauseUntil: &until,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.CreateConsumer(ctx, audit.StreamName, jetstream.ConsumerConfig{
		Durable: "huntress-acme", FilterSubject: routes.Filter("acme"), AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"beta", "beta", "beta", "acme"} {
		if _, err := e.js.Publish(ctx, audit.Subject(sub, "ssh"), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	out = e.mustRun(t, "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SUBSCRIPTION") {
		t.Fatalf("list:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) != 5 || f[0] != "acme" || f[1] != "yes" || f[2] != "hec.huntress.io" || f[3] != "closed" || f[4] != "1" {
		t.Errorf("acme row %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[0] != "beta" || f[1] != "no" || f[2] != "127.0.0.1:8088" || f[3] != "open," || f[4] != "paused" || f[len(f)-1] != "3" {
		t.Errorf("beta row %q", lines[2])
	}
	out = e.mustRun(t, "list", "--json", "--consumer", "other")
	var recs []routeRecord
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec routeRecord
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("list --json line %q: %v", l, err)
		}
		recs = append(recs, rec)
	}
	if len(recs) != 2 || recs[1].AuthScheme != "bearer" || recs[1].Consumer.Name != "other-beta" || recs[1].Consumer.Exists {
		t.Fatalf("list --json = %+v", recs)
	}
	r = e.getJSON(t, "beta")
	if !r.Consumer.Exists || !r.Consumer.Paused || r.Consumer.PauseRemaining == "" || r.Consumer.Pending != 3 {
		t.Fatalf("beta consumer %+v", r.Consumer)
	}

	// disable / enable keep updated_at.
	out = e.mustRun(t, "disable", "acme")
	if !strings.Contains(out, "disabled") {
		t.Fatalf("disable printed %q", out)
	}
	if en := e.entry(t, "acme"); en.Enabled || !en.UpdatedAt.Equal(created) {
		t.Fatalf("after disable: %v", en)
	}
	if out := e.mustRun(t, "disable", "acme"); !strings.Contains(out, "already disabled") {
		t.Fatalf("second disable printed %q", out)
	}
	e.mustRun(t, "enable", "acme")
	if en := e.entry(t, "acme"); !en.Enabled || !en.UpdatedAt.Equal(created) {
		t.Fatalf("after enable: %v", en)
	}

	// set on an existing route changes only what is given.
	time.Sleep(5 * time.Millisecond) // updated_at has millisecond resolution
	e.mustRun(t, "set", "acme", "--admin-emails", "new@acme.example")
	en = e.entry(t, "acme")
	if en.HECToken != routesTestToken || en.HECURL != "https://hec.huntress.io/services/collector" || !en.Enabled ||
		strings.Join(en.AdminEmails, ",") != "new@acme.example" || !en.UpdatedAt.After(created) {
		t.Fatalf("after a partial set: %v", en)
	}
	e.mustRun(t, "set", "acme", "--hec-token", routesTestToken2)
	if en := e.entry(t, "acme"); en.HECToken != routesTestToken2 {
		t.Fatalf("token not changed")
	}

	// delete.
	e.mustRun(t, "delete", "acme")
	if v, _ := e.raw(t, "acme"); v != "" {
		t.Fatalf("after delete: %q", v)
	}
	for _, cmd := range []string{"get", "delete", "enable", "test"} {
		_, _, err := e.run(t, cmd, "acme")
		if err == nil || cliflag.IsUsage(err) || !strings.Contains(err.Error(), "no route for subscription acme") {
			t.Errorf("%s of a deleted route: %v; want exit 1 naming it", cmd, err)
		}
	}
	if out := e.mustRun(t, "list"); strings.Contains(out, "acme") || !strings.Contains(out, "beta") {
		t.Fatalf("list after delete:\n%s", out)
	}
	// Set again after a delete: a new route.
	e.mustRun(t, "set", "acme", "--hec-url", "https://hec.huntress.io", "--hec-token-file", tokFile, "--admin-emails", "a@acme.example")
}

func TestRoutesValidationWritesNothing(t *testing.T) {
	e := startRoutesEnv(t)
	tokFile := e.file(t, "t", routesTestToken)
	emptyFile := e.file(t, "empty", "\n")
	good := []string{"--hec-url", "https://hec.huntress.io", "--hec-token-file", tokFile, "--admin-emails", "a@x.example"}
	with := func(extra ...string) []string {
		return append(append([]string{"set", "acme"}, good...), extra...)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"http remote", with("--hec-url", "http://hec.example.com"), "--allow-insecure-http"},
		{"ftp", with("--hec-url", "ftp://hec.example.com"), "--hec-url"},
		{"empty url", with("--hec-url", ""), "--hec-url"},
		{"scheme", with("--auth-scheme", "Basic"), "--auth-scheme"},
		{"email", with("--admin-emails", "a@x.example,not-an-address"), "--admin-emails"},
		{"no emails", with("--admin-emails", " , "), "--admin-emails"},
		{"token with space", []string{"set", "acme", "--hec-url", "https://h.example.com", "--hec-token", "a b", "--admin-emails", "a@x.example"}, "HEC token"},
		{"token twice", with("--hec-token", routesTestToken), "once"},
		{"empty token file", []string{"set", "acme", "--hec-url", "https://h.example.com", "--hec-token-file", emptyFile, "--admin-emails", "a@x.example"}, "--hec-token-file"},
		{"missing token file", with("--hec-token-file", filepath.Join(e.dir, "nope")), "--hec-token-file"},
		{"new without token", []string{"set", "acme", "--hec-url", "https://h.example.com", "--admin-emails", "a@x.example"}, "--hec-token-file"},
		{"new without url or emails", []string{"set", "acme", "--hec-token-file", tokFile}, "--hec-url, --admin-emails"},
		{"bad sub", []string{"set", "a.b", "--hec-url", "https://h.example.com"}, "SubscriptionId"},
		{"no sub", []string{"set", "--hec-url", "https://h.example.com"}, "name the subscription"},
		{"extra arg", []string{"get", "acme", "other"}, "unexpected argument"},
		{"unknown flag", with("--hec-urll", "x"), "hec-urll"},
		{"bad key file", with("--secret-key-file", tokFile), "--secret-key-file"},
		{"unknown command", []string{"frobnicate"}, "frobnicate"},
		{"no command", []string{}, "name a command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := e.usageErr(t, tc.args...)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("message %q does not name %q", msg, tc.want)
			}
			if v, _ := e.raw(t, "acme"); v != "" {
				t.Fatalf("something was written: %s", v)
			}
		})
	}

	// An existing route is left alone by a failed set.
	e.mustRun(t, with()...)
	before, rev := e.raw(t, "acme")
	e.usageErr(t, "set", "acme", "--hec-url", "http://hec.example.com")
	e.usageErr(t, "set", "acme", "--admin-emails", "nope")
	if after, rev2 := e.raw(t, "acme"); after != before || rev2 != rev {
		t.Fatalf("a failed set changed the route:\n%s\n%s", before, after)
	}
}

// The forwarder's own HUNTRESS_HEC_URL/TOKEN must not become a subscription's.
func TestRoutesSetRefusesTheGlobalToken(t *testing.T) {
	e := startRoutesEnv(t)
	t.Setenv("HUNTRESS_HEC_URL", "https://soc.ezssh.example/services/collector")
	t.Setenv("HUNTRESS_HEC_TOKEN", routesTestToken)
	msg := e.usageErr(t, "set", "acme", "--hec-url", "https://hec.huntress.io", "--admin-emails", "a@x.example")
	if !strings.Contains(msg, "HUNTRESS_HEC_TOKEN") {
		t.Fatalf("message %q", msg)
	}
	if v, _ := e.raw(t, "acme"); v != "" {
		t.Fatalf("written: %s", v)
	}
	// With the URL the variables go with, the token is fine.
	e.mustRun(t, "set", "acme", "--hec-url", "https://soc.ezssh.example/services/collector", "--admin-emails", "a@x.example")
	if en := e.entry(t, "acme"); en.HECToken != routesTestToken {
		t.Fatal("token from HUNTRESS_HEC_TOKEN not stored")
	}
	// A later partial set must not swap the token either.
	e.mustRun(t, "set", "acme", "--admin-emails", "b@x.example")
	t.Setenv("HUNTRESS_HEC_TOKEN", routesTestToken2)
	e.usageErr(t, "set", "acme", "--hec-url", "https://other.example")
}

func TestRoutesKeepUnknownFields(t *testing.T) {
	e := startRoutesEnv(t)
	kv, err := routes.EnsureBucket(context.Background(), e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	const portal = `{"enabled":true,"provider":"huntress","hec_url":"https://hec.huntress.io/services/collector","hec_token":"` +
		routesTestToken + `","admin_emails":["a@x.example"],"updated_at":"2026-01-02T15:04:05Z","portal":{"by":"<ui>","v":[1,2.50]},"note":"keep me"}`
	if _, err := kv.Put(context.Background(), "acme", []byte(portal)); err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		v, _ := e.raw(t, "acme")
		if !strings.Contains(v, `"portal":{"by":"<ui>","v":[1,2.50]}`) || !strings.Contains(v, `"note":"keep me"`) {
			t.Fatalf("after %s the unknown fields are gone: %s", step, v)
		}
	}
	e.mustRun(t, "set", "acme", "--admin-emails", "b@x.example", "--auth-scheme", "Bearer")
	check("set")
	e.mustRun(t, "disable", "acme")
	check("disable")
	e.mustRun(t, "enable", "acme")
	check("enable")
	if out := e.mustRun(t, "get", "acme"); !strings.Contains(out, "note, portal") {
		t.Fatalf("get does not name the other fields:\n%s", out)
	}

	// A malformed value is listed as invalid and replaced by a full set.
	if _, err := kv.Put(context.Background(), "broken", []byte(`{"hec_token":"`+routesTestToken+`"`)); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := e.run(t, "list")
	if err != nil || !strings.Contains(out, "broken") || !strings.Contains(out, "invalid") || !strings.Contains(errOut, "broken") {
		t.Fatalf("list with a malformed value: %v\n%s\n%s", err, out, errOut)
	}
	if _, _, err := e.run(t, "enable", "broken"); err == nil {
		t.Fatal("enable of a malformed route succeeded")
	}
	e.usageErr(t, "set", "broken", "--admin-emails", "a@x.example") // not a route yet: the URL and token are missing
	tokFile := e.file(t, "t", routesTestToken2)
	e.mustRun(t, "set", "broken", "--hec-url", "https://h.example.com", "--hec-token-file", tokFile, "--admin-emails", "a@x.example")
	if en := e.entry(t, "broken"); en.HECToken != routesTestToken2 {
		t.Fatal("malformed value not replaced")
	}
}

func TestRoutesSealedTokens(t *testing.T) {
	e := startRoutesEnv(t)
	keyFile := e.file(t, "key", hex.EncodeToString(bytes.Repeat([]byte{0x42}, 32))+"\n")
	otherKey := e.file(t, "other", hex.EncodeToString(bytes.Repeat([]byte{0x17}, 32)))
	coll := huntress.NewCollector(huntress.CollectorOptions{Token: routesTestToken})
	hec := httptest.NewServer(coll)
	t.Cleanup(hec.Close)
	tokFile := e.file(t, "t", routesTestToken)

	t.Setenv(routes.KeyFileEnv, keyFile)
	out := e.mustRun(t, "set", "acme", "--hec-url", hec.URL, "--hec-token-file", tokFile, "--admin-emails", "a@x.example")
	if !strings.Contains(out, routes.Mask(routesTestToken)+" (sealed)") {
		t.Fatalf("set printed %q", out)
	}
	v, _ := e.raw(t, "acme")
	en := e.entry(t, "acme")
	if !strings.HasPrefix(en.HECToken, routes.SealedPrefix) || strings.Contains(v, routesTestToken) {
		t.Fatalf("stored token is not sealed: %s", v)
	}
	if r := e.getJSON(t, "acme"); r.Token != routes.Mask(routesTestToken) || !r.Sealed {
		t.Fatalf("get with the key: %+v", r)
	}
	out = e.mustRun(t, "test", "acme")
	if !strings.HasPrefix(out, "OK: the HEC at "+hec.URL) || coll.Stats().Accepted != 1 {
		t.Fatalf("test printed %q (accepted %d)", out, coll.Stats().Accepted)
	}

	// A plain token is sealed by the next set, even when it is kept.
	os.Unsetenv(routes.KeyFileEnv)
	e.mustRun(t, "set", "plain", "--hec-url", hec.URL, "--hec-token-file", tokFile, "--admin-emails", "a@x.example")
	if en := e.entry(t, "plain"); en.HECToken != routesTestToken {
		t.Fatal("without a key the token should be stored plain")
	}
	e.mustRun(t, "set", "plain", "--admin-emails", "b@x.example", "--secret-key-file", keyFile)
	if en := e.entry(t, "plain"); !routes.IsSealed(en.HECToken) {
		t.Fatal("set with a key kept the token plain")
	}

	// Without the key: get shows it sealed, test fails with exit 2 naming
	// the subscription.
	if r := e.getJSON(t, "acme"); r.Token != routes.SealedPrefix+"…" || !r.Sealed {
		t.Fatalf("get without the key: %+v", r)
	}
	msg := e.usageErr(t, "test", "acme")
	if !strings.Contains(msg, "subscription acme") || !strings.Contains(msg, routes.KeyFileEnv) {
		t.Fatalf("test without the key: %q", msg)
	}
	msg = e.usageErr(t, "test", "acme", "--secret-key-file", otherKey)
	if !strings.Contains(msg, "subscription acme") || !strings.Contains(msg, "does not open") {
		t.Fatalf("test with the wrong key: %q", msg)
	}
	if out := e.mustRun(t, "get", "acme", "--secret-key-file", otherKey); !strings.Contains(out, "does not open with this key") {
		t.Fatalf("get with the wrong key:\n%s", out)
	}
	if coll.Stats().Requests != 1 {
		t.Fatal("a test without a usable token reached the HEC")
	}
}

func TestRoutesTestConnection(t *testing.T) {
	e := startRoutesEnv(t)
	coll := huntress.NewCollector(huntress.CollectorOptions{Token: routesTestToken, AuthScheme: "Bearer"})
	hec := httptest.NewServer(coll)
	t.Cleanup(hec.Close)
	good := e.file(t, "good", routesTestToken)
	bad := e.file(t, "bad", routesTestToken2)

	e.mustRun(t, "set", "acme", "--hec-url", hec.URL+"/services/collector", "--hec-token-file", good, "--admin-emails", "a@x.example", "--auth-scheme", "Bearer")
	out := e.mustRun(t, "test", "acme")
	if !strings.HasPrefix(out, "OK:") || !strings.Contains(out, "Bearer") {
		t.Fatalf("test printed %q", out)
	}
	events := coll.Events()
	if len(events) != 1 || !bytes.Contains(events[0], []byte(`"ActionPerformed":"Test Connection"`)) {
		t.Fatalf("collector got %q", events)
	}

	e.mustRun(t, "set", "acme", "--hec-token-file", bad)
	out, _, err := e.run(t, "test", "acme")
	if !errors.Is(err, errTestFailed) || cliflag.IsUsage(err) || !strings.HasPrefix(out, "FAILED (wrong-token)") {
		t.Fatalf("test with a wrong token: %v\n%s", err, out)
	}

	e.mustRun(t, "set", "acme", "--hec-token-file", good, "--disabled")
	out, errOut, err := e.run(t, "test", "acme")
	if err != nil || !strings.HasPrefix(out, "OK:") || !strings.Contains(errOut, "disabled") {
		t.Fatalf("test of a disabled route: %v\n%s\n%s", err, out, errOut)
	}
}

func TestRoutesNoBucket(t *testing.T) {
	e := startRoutesEnv(t)
	out, errOut, err := e.run(t, "list")
	if err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "no routes") {
		t.Fatalf("list without a bucket: %v\n%s\n%s", err, out, errOut)
	}
	if _, _, err := e.run(t, "get", "acme"); err == nil || cliflag.IsUsage(err) || !errors.Is(err, errNoBucket) {
		t.Fatalf("get without a bucket: %v", err)
	}
}

// updateRoute writes only over the revision it read, and retries when
// someone else wrote in between.
func TestRoutesUpdateConflict(t *testing.T) {
	e := startRoutesEnv(t)
	ctx := context.Background()
	kv, err := routes.EnsureBucket(ctx, e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	base := &routes.Entry{Enabled: true, HECURL: "https://h.example.com", HECToken: "x", AdminEmails: []string{"a@x.example"}}
	b, _ := base.Encode()
	if _, err := kv.Put(ctx, "acme", b); err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, _, err = updateRoute(ctx, kv, "acme", func(cur *routeEntry) (*routes.Entry, error) {
		calls++
		if calls == 1 { // someone else changes the admins meanwhile
			other := cur.entry.Clone()
			other.AdminEmails = []string{"other@x.example"}
			ob, _ := other.Encode()
			if _, err := kv.Put(ctx, "acme", ob); err != nil {
				t.Fatal(err)
			}
		}
		next := cur.entry.Clone()
		next.Enabled = false
		return next, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	en := e.entry(t, "acme")
	if calls != 2 || en.Enabled || strings.Join(en.AdminEmails, ",") != "other@x.example" {
		t.Fatalf("calls %d, stored %v: the concurrent change was lost", calls, en)
	}
}
