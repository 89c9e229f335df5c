package natsconn

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/testpki"
)

// startServer starts an embedded JetStream server with o's authentication and
// TLS settings and returns its client URL.
func startServer(t *testing.T, o *server.Options) string {
	t.Helper()
	o.Host, o.Port = "127.0.0.1", -1
	o.JetStream, o.StoreDir = true, t.TempDir()
	o.NoLog, o.NoSigs = true, true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("embedded NATS server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

// useJetStream creates a stream and publishes to it through nc: the
// connection is authenticated into an account with JetStream.
func useJetStream(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	ack, err := js.Publish(ctx, "t.1", []byte(`{}`))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ack.Stream != "T" || ack.Sequence != 1 {
		t.Fatalf("PubAck %+v, want stream T sequence 1", ack)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// authCase is a server that authenticates one way, options that pass and
// options that must be refused with an error containing wantErr and none of
// secrets.
type authCase struct {
	server  *server.Options
	good    Options
	bad     Options
	wantErr []string
	secrets []string
}

// operatorCase: decentralized JWT auth (an operator, an account with
// JetStream in a memory resolver) and a user's .creds file; the bad file is a
// user of an account the server does not know.
func operatorCase(t *testing.T) authCase {
	op := newKey(t, nkeys.CreateOperator)
	opClaims := jwt.NewOperatorClaims(pub(t, op))
	opJWT := encode(t, opClaims, op)
	opDecoded, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	account := func(js bool) (nkeys.KeyPair, string) {
		kp := newKey(t, nkeys.CreateAccount)
		c := jwt.NewAccountClaims(pub(t, kp))
		if js {
			c.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		if err := resolver.Store(pub(t, kp), encode(t, c, op)); err != nil {
			t.Fatal(err)
		}
		return kp, pub(t, kp)
	}
	_, sysPub := account(false)
	acc, _ := account(true)
	stranger := newKey(t, nkeys.CreateAccount) // signed by the operator, never stored
	creds := func(signer nkeys.KeyPair) (path, seed string) {
		u := newKey(t, nkeys.CreateUser)
		s, err := u.Seed()
		if err != nil {
			t.Fatal(err)
		}
		file, err := jwt.FormatUserConfig(encode(t, jwt.NewUserClaims(pub(t, u)), signer), s)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, "user.creds", string(file)), string(s)
	}
	goodCreds, goodSeed := creds(acc)
	badCreds, badSeed := creds(stranger)
	return authCase{
		server:  &server.Options{TrustedOperators: []*jwt.OperatorClaims{opDecoded}, AccountResolver: resolver, SystemAccount: sysPub},
		good:    Options{Creds: goodCreds},
		bad:     Options{Creds: badCreds},
		wantErr: []string{"authorization violation", "NATS_CREDS"},
		secrets: []string{goodSeed, badSeed},
	}
}

func nkeyCase(t *testing.T) authCase {
	known, unknown := newKey(t, nkeys.CreateUser), newKey(t, nkeys.CreateUser)
	seedFile := func(kp nkeys.KeyPair) (string, string) {
		s, err := kp.Seed()
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, "user.nk", string(s)+"\n"), string(s)
	}
	goodFile, goodSeed := seedFile(known)
	badFile, badSeed := seedFile(unknown)
	return authCase{
		server:  &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub(t, known)}}},
		good:    Options{NKey: goodFile},
		bad:     Options{NKey: badFile},
		wantErr: []string{"authorization violation", "NATS_NKEY"},
		secrets: []string{goodSeed, badSeed},
	}
}

func passwordCase(t *testing.T) authCase {
	const password, wrong = "Corr3ct-Horse-Battery", "Wr0ng-Staple-Battery"
	return authCase{
		server:  &server.Options{Users: []*server.User{{Username: "forwarder", Password: password}}},
		good:    Options{User: "forwarder", Password: password},
		bad:     Options{User: "forwarder", Password: wrong},
		wantErr: []string{"authorization violation", "NATS_USER"},
		secrets: []string{password, wrong},
	}
}

func passwordFileCase(t *testing.T) authCase {
	c := passwordCase(t)
	c.good = Options{User: "forwarder", PasswordFile: writeFile(t, "password", c.good.Password+"\n")}
	c.bad = Options{User: "forwarder", PasswordFile: writeFile(t, "wrong", c.bad.Password+"\n")}
	return c
}

// tlsCase: the server's certificate is signed by a test CA, which NATS_CA
// names; with the user's password as well, since TLS alone authenticates no
// one. The bad options trust another CA.
func tlsCase(t *testing.T) authCase {
	ca := testpki.NewCA(t, "nats-ca")
	cert, key := ca.IssueFiles(t, t.TempDir(), testpki.Leaf{CommonName: "nats-server"})
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	c := passwordCase(t)
	c.server.TLS, c.server.TLSConfig, c.server.TLSTimeout = true, tc, 2
	c.good.CA = ca.CertFile
	c.bad = c.good
	c.bad.CA = testpki.NewCA(t, "other-ca").CertFile
	c.wantErr = []string{"certificate signed by unknown authority", "NATS_CA"}
	c.secrets = c.secrets[:1]
	return c
}

// mtlsCase: the server requires a client certificate signed by its CA. With
// mapping, the certificate's email address is the user; without, the
// certificate is checked and the user authenticates with a password.
func mtlsCase(t *testing.T, mapUser bool) authCase {
	ca := testpki.NewCA(t, "nats-ca")
	dir := t.TempDir()
	cert, key := ca.IssueFiles(t, dir, testpki.Leaf{CommonName: "nats-server"})
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: key, CaFile: ca.CertFile, Verify: true, Map: mapUser})
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey := ca.IssueFiles(t, dir, testpki.Leaf{CommonName: "forwarder", Email: "forwarder@ezssh.test", Client: true})
	c := authCase{
		server: &server.Options{TLS: true, TLSConfig: tc, TLSTimeout: 2, TLSVerify: true, TLSMap: mapUser},
		good:   Options{CA: ca.CertFile, Cert: clientCert, Key: clientKey},
	}
	if mapUser {
		c.server.Users = []*server.User{{Username: "forwarder@ezssh.test"}}
		// A certificate from the right CA for a user the server does not map.
		otherCert, otherKey := ca.IssueFiles(t, dir, testpki.Leaf{CommonName: "intruder", Email: "intruder@ezssh.test", Client: true})
		c.bad = Options{CA: ca.CertFile, Cert: otherCert, Key: otherKey}
		c.wantErr = []string{"authorization violation", "NATS_CERT"}
		return c
	}
	c.server.Users = []*server.User{{Username: "forwarder", Password: "Corr3ct-Horse-Battery"}}
	c.good.User, c.good.Password = "forwarder", "Corr3ct-Horse-Battery"
	c.bad = Options{CA: ca.CertFile, User: "forwarder", Password: "Corr3ct-Horse-Battery"} // no client certificate
	c.wantErr = []string{"NATS_CERT"}
	c.secrets = []string{"Corr3ct-Horse-Battery"}
	return c
}

func TestConnectAuthenticates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*testing.T) authCase
	}{
		{"creds file (operator JWT)", operatorCase},
		{"nkey seed file", nkeyCase},
		{"user and password", passwordCase},
		{"user and password file", passwordFileCase},
		{"TLS with NATS_CA", tlsCase},
		{"mutual TLS, verify", func(t *testing.T) authCase { return mtlsCase(t, false) }},
		{"mutual TLS, verify_and_map", func(t *testing.T) authCase { return mtlsCase(t, true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.setup(t)
			url := startServer(t, c.server)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			c.good.URL = url
			nc, err := c.good.Connect(ctx, "natsconn-test", nil)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer nc.Close()
			useJetStream(t, nc)

			c.bad.URL = url
			nc2, err := c.bad.Connect(ctx, "natsconn-test", nil)
			if err == nil {
				nc2.Close()
				t.Fatal("connected with the wrong credential")
			}
			t.Logf("refused: %v", err)
			for _, want := range c.wantErr {
				if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			for _, secret := range c.secrets {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q holds a secret", err)
				}
			}
		})
	}
}

// TestConnectRefusesUnknownServerCertificate: without NATS_CA the client
// trusts only the system's CAs, so a server whose certificate a private CA
// signed (or that signed itself) is refused, and the error says to set
// NATS_CA.
func TestConnectRefusesUnknownServerCertificate(t *testing.T) {
	ca := testpki.NewCA(t, "private-ca")
	cert, key := ca.IssueFiles(t, t.TempDir(), testpki.Leaf{CommonName: "nats-server"})
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	url := startServer(t, &server.Options{TLS: true, TLSConfig: tc, TLSTimeout: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// nats:// upgrades to TLS when the server asks for it; tls:// insists.
	for _, u := range []string{strings.Replace(url, "tls://", "nats://", 1), strings.Replace(url, "nats://", "tls://", 1)} {
		o := Options{URL: u}
		nc, err := o.Connect(ctx, "natsconn-test", nil)
		if err == nil {
			nc.Close()
			t.Fatalf("%s: connected to a server whose certificate no trusted CA signed", u)
		}
		if !strings.Contains(err.Error(), "unknown authority") || !strings.Contains(err.Error(), "set NATS_CA") {
			t.Errorf("%s: error %q does not say the certificate is unknown and to set NATS_CA", u, err)
		}
	}
	// The same server with NATS_CA is fine: the refusal was the certificate.
	o := Options{URL: url, CA: ca.CertFile}
	nc, err := o.Connect(ctx, "natsconn-test", nil)
	if err != nil {
		t.Fatalf("with NATS_CA: %v", err)
	}
	nc.Close()
}

// TestConnectRefusedClientCertificate: a client certificate from a CA the
// server does not trust is refused, and the error names NATS_CERT.
func TestConnectRefusedClientCertificate(t *testing.T) {
	c := mtlsCase(t, false)
	url := startServer(t, c.server)
	cert, key := testpki.NewCA(t, "other-ca").IssueFiles(t, t.TempDir(), testpki.Leaf{CommonName: "forwarder", Client: true})
	o := c.good
	o.URL, o.Cert, o.Key = url, cert, key
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := o.Connect(ctx, "natsconn-test", nil)
	if err == nil {
		nc.Close()
		t.Fatal("connected with a client certificate from an unknown CA")
	}
	if !strings.Contains(err.Error(), "NATS_CERT") {
		t.Fatalf("error %q does not name NATS_CERT", err)
	}
}

func TestValidatePasswordFile(t *testing.T) {
	file := writeFile(t, "password", "pw\n")
	empty := writeFile(t, "empty", "\n")
	for _, tc := range []struct {
		name    string
		o       Options
		wantErr string // "" for none
	}{
		{"file alone", Options{User: "u", PasswordFile: file}, ""},
		{"password alone", Options{User: "u", Password: "pw"}, ""},
		{"both", Options{User: "u", Password: "pw", PasswordFile: file}, "not both"},
		{"unreadable", Options{User: "u", PasswordFile: filepath.Join(t.TempDir(), "missing")}, "cannot read the NATS password file"},
		{"empty", Options{User: "u", PasswordFile: empty}, "is empty"},
		{"file without user", Options{PasswordFile: file}, "needs --nats-user"},
		{"password without user", Options{Password: "pw"}, "needs --nats-user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr == "":
				return
			case err == nil:
				t.Fatalf("Validate accepted %+v", tc.o)
			case !cliflag.IsUsage(err):
				t.Errorf("error %v is not a usage error", err)
			case !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("error %q does not say %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("error %q holds the password", err)
			}
		})
	}
}

// TestBindPasswordFile: NATS_PASSWORD_FILE sets the option, and the file's
// trailing newline is not part of the password the server checks.
func TestBindPasswordFile(t *testing.T) {
	url := startServer(t, &server.Options{Users: []*server.User{{Username: "forwarder", Password: "from-the-file"}}})
	t.Setenv("NATS_URL", url)
	t.Setenv("NATS_USER", "forwarder")
	t.Setenv("NATS_PASSWORD_FILE", writeFile(t, "password", "from-the-file\r\n"))
	var o Options
	s := cliflag.New("test", "", nil)
	o.Bind(s)
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := o.Connect(ctx, "natsconn-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// TestConnectInboxPrefix: a user allowed to subscribe only under its own
// inbox prefix gets its JetStream replies there with NATS_INBOX_PREFIX, and
// none without it.
func TestConnectInboxPrefix(t *testing.T) {
	url := startServer(t, &server.Options{Users: []*server.User{{Username: "forwarder", Password: "pw",
		Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>", "t.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.forwarder.>"}},
		}}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := Options{URL: url, User: "forwarder", Password: "pw", InboxPrefix: "_INBOX.forwarder"}
	nc, err := o.Connect(ctx, "natsconn-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	useJetStream(t, nc)

	o.InboxPrefix = ""
	nc2, err := o.Connect(ctx, "natsconn-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js, err := jetstream.New(nc2)
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	defer rcancel()
	if _, err := js.AccountInfo(rctx); err == nil {
		t.Fatal("a JetStream reply reached _INBOX, which this user may not subscribe to")
	}

	for _, bad := range []string{"_INBOX.>", "a..b", "a.*", "a b", "a."} {
		o := Options{URL: url, InboxPrefix: bad}
		if err := o.Validate(); err == nil || !cliflag.IsUsage(err) {
			t.Errorf("inbox prefix %q: Validate = %v, want a usage error", bad, err)
		}
	}
}

// TestConnectErrorHidesURLPassword: a password inside NATS_URL never reaches
// the error.
func TestConnectErrorHidesURLPassword(t *testing.T) {
	url := startServer(t, &server.Options{Users: []*server.User{{Username: "forwarder", Password: "right"}}})
	o := Options{URL: strings.Replace(url, "nats://", "nats://forwarder:Url-Pa55word@", 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := o.Connect(ctx, "natsconn-test", nil)
	if err == nil {
		nc.Close()
		t.Fatal("connected with the wrong password")
	}
	if strings.Contains(err.Error(), "Url-Pa55word") || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Fatalf("error %q: want an authorization violation without the password", err)
	}
}

func newKey(t *testing.T, create func() (nkeys.KeyPair, error)) nkeys.KeyPair {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func pub(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	p, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func encode(t *testing.T, c jwt.Claims, signer nkeys.KeyPair) string {
	t.Helper()
	s, err := c.Encode(signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
