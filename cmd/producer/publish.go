package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/cliflag"
)

const publishIntro = `Usage: producer publish [flags]
       producer publish -f FILE|- [flags]

Publishes one audit event built from the flags and prints its EventId and
stream sequence; or, with -f, publishes every line of an NDJSON file (- for
standard input) as one event body. Bad lines are reported on standard error as
"line N: reason" and not published; the command then fails.`

type publishCmd struct {
	conn   conn
	file   string
	event  audit.Event
	fields fieldFlags
}

func runPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c publishCmd
	s := cliflag.New("producer publish", publishIntro, stdout)
	c.conn.bind(s)
	s.String(&c.file, "f", "PRODUCER_FILE", "", "NDJSON file of event bodies to publish, one per line; - reads standard input")
	e := &c.event
	s.String(&e.SubscriptionId, "subscription", "PRODUCER_SUBSCRIPTION", "", "SubscriptionId of the event (required without -f)")
	s.String(&e.EventType, "type", "PRODUCER_TYPE", audit.EventTypeSSH, "EventType: EZSSH_SSH, EZSSH_GIT or another EZSSH_[A-Z_]+")
	s.String(&e.ActionPerformed, "action", "PRODUCER_ACTION", "Certificate Issued", `ActionPerformed; "Test Connection" marks a test event`)
	s.String(&e.RequestorFriendlyName, "requestor", "PRODUCER_REQUESTOR", "", "RequestorFriendlyName")
	s.String(&e.UserPublicKey, "user-key", "PRODUCER_USER_KEY", "", "UserPublicKey, authorized_keys format")
	s.String(&e.Certificate, "certificate", "PRODUCER_CERTIFICATE", "", "Certificate issued (empty for none)")
	s.String(&e.Criticality, "criticality", "PRODUCER_CRITICALITY", "", "Criticality: High, Medium or Low")
	s.String(&e.EventId, "event-id", "PRODUCER_EVENT_ID", "", "EventId (default a new UUIDv7; reuse one to test deduplication)")
	s.String(&e.RequestDate, "request-date", "PRODUCER_REQUEST_DATE", "", "RequestDate, RFC 3339 (default now)")
	s.FlagSet().Var(&c.fields, "field",
		"extra field key=value, repeatable, no environment variable; a value that is JSON is kept as JSON, any other is a string")
	if err := parse(s, args); err != nil {
		if err == errHelpShown {
			return nil
		}
		return err
	}
	if err := c.conn.validate(); err != nil {
		return err
	}
	if c.file != "" {
		return c.publishFile(ctx, stdout, stderr)
	}
	return c.publishOne(ctx, stdout)
}

func (c *publishCmd) publishOne(ctx context.Context, stdout io.Writer) error {
	e := &c.event
	if e.SubscriptionId == "" {
		return cliflag.Usagef("--subscription (PRODUCER_SUBSCRIPTION) is required without -f")
	}
	for _, kv := range c.fields {
		k, v, _ := strings.Cut(kv, "=")
		raw := json.RawMessage(v)
		if !json.Valid(raw) {
			raw, _ = json.Marshal(v)
		}
		if e.Extra == nil {
			e.Extra = map[string]json.RawMessage{}
		}
		e.Extra[k] = raw
	}
	// Check the flags before connecting; Publish fills these two itself.
	probe := *e
	if probe.EventId == "" {
		probe.EventId = "placeholder"
	}
	if probe.RequestDate == "" {
		probe.RequestDate = "2000-01-01T00:00:00Z"
	}
	if err := probe.Validate(); err != nil {
		return cliflag.Usagef("%v", err)
	}
	if _, err := probe.MarshalJSON(); err != nil {
		return cliflag.Usagef("--field: %v", err)
	}
	nc, _, p, err := c.conn.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	ack, err := p.Publish(ctx, e)
	if err != nil {
		return err
	}
	dup := ""
	if ack.Duplicate {
		dup = " duplicate=true"
	}
	fmt.Fprintf(stdout, "EventId=%s stream=%s seq=%d%s\n", e.EventId, ack.Stream, ack.Sequence, dup)
	return nil
}

func (c *publishCmd) publishFile(ctx context.Context, stdout, stderr io.Writer) error {
	in := io.Reader(os.Stdin)
	if c.file != "-" {
		f, err := os.Open(c.file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	nc, _, p, err := c.conn.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	return publishNDJSON(ctx, p, in, stdout, stderr)
}
