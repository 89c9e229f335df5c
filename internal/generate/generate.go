// Package generate makes realistic synthetic audit events, for the producer's
// generate command and the forwarder's demo and benchmarks.
//
// Keys, certificates and subscriptions are made once by New, so each event
// costs a few random choices, a UUIDv7 and one encoding.
package generate

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ezssh/siem-forwarder/audit"
)

// Actions the generator uses besides audit.ActionTestConnection.
const (
	ActionIssued = "Certificate Issued"
	ActionDenied = "Certificate Denied"
)

// Generator makes events. It is not safe for concurrent use.
type Generator struct {
	opts  Options
	rng   *rand.Rand
	keys  [poolSize]string
	users [poolSize]string
	certs [poolSize]string
	subs  []string
	n     int
}

// New returns a Generator for opts.
func New(opts Options) *Generator {
	opts = opts.withDefaults()
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(opts.Seed))
	src := rand.NewChaCha8(seed)
	g := &Generator{opts: opts, rng: rand.New(src)}
	for i := range poolSize {
		name := names[i%len(names)]
		g.users[i] = name
		login := strings.ToLower(strings.NewReplacer(" ", ".", "'", "").Replace(name))
		g.keys[i] = newPublicKey(src, login+"@"+hosts[i%len(hosts)])
		g.certs[i] = newCertificate(src)
	}
	g.subs = make([]string, opts.Subscriptions)
	for i := range g.subs {
		g.subs[i] = fmt.Sprintf("sub-%08x", g.rng.Uint32())
	}
	return g
}

// Subscriptions returns the SubscriptionIds events are spread over.
func (g *Generator) Subscriptions() []string {
	return append([]string(nil), g.subs...)
}

// Next returns a new event: about 70% EZSSH_SSH and 30% EZSSH_GIT, 5% of them
// denied (High, no certificate), every TestEvery-th a Test Connection (Low),
// issued SSH events Medium and issued Git events Low. Each has a fresh UUIDv7
// EventId, RequestDate now, and an extra SourceIp field.
func (g *Generator) Next() *audit.Event {
	g.n++
	r := g.rng
	user := r.IntN(poolSize)
	e := &audit.Event{
		EventType:             audit.EventTypeSSH,
		RequestDate:           g.opts.Now().UTC().Format(time.RFC3339Nano),
		ActionPerformed:       ActionIssued,
		UserPublicKey:         g.keys[user],
		Certificate:           g.certs[r.IntN(poolSize)],
		RequestorFriendlyName: g.users[user],
		EventId:               uuid.Must(uuid.NewV7()).String(),
		SubscriptionId:        g.subs[r.IntN(len(g.subs))],
		Criticality:           audit.CriticalityMedium,
		Extra:                 map[string]json.RawMessage{"SourceIp": g.sourceIP()},
	}
	if r.IntN(10) >= 7 {
		e.EventType = audit.EventTypeGit
		e.Criticality = audit.CriticalityLow
	}
	switch {
	case g.opts.TestEvery > 0 && g.n%g.opts.TestEvery == 0:
		e.ActionPerformed = audit.ActionTestConnection
		e.Certificate = ""
		e.Criticality = audit.CriticalityLow
	case r.IntN(100) < 5:
		e.ActionPerformed = ActionDenied
		e.Certificate = ""
		e.Criticality = audit.CriticalityHigh
	}
	return e
}

// NextBody returns the encoding of a new event and the subject it belongs on.
// The body is freshly allocated and may be retained.
func (g *Generator) NextBody() ([]byte, string) {
	e := g.Next()
	body, err := e.AppendJSON(make([]byte, 0, 2048))
	if err != nil {
		panic("generate: " + err.Error()) // every field is made here; cannot happen
	}
	return body, e.Subject()
}

// sourceIP returns a quoted address from the documentation ranges.
func (g *Generator) sourceIP() json.RawMessage {
	prefixes := [...]string{"192.0.2.", "198.51.100.", "203.0.113."}
	b := make([]byte, 0, 18)
	b = append(b, '"')
	b = append(b, prefixes[g.rng.IntN(len(prefixes))]...)
	b = strconv.AppendInt(b, int64(1+g.rng.IntN(254)), 10)
	return append(b, '"')
}
