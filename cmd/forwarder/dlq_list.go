package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

const dlqListIntro = `forwarder dlq list: list dead letters, oldest first, as a table or, with
--json, one JSON object per line (headers included; the body as JSON when it
is JSON, else as a string, or base64 when it is not UTF-8).`

func runDLQList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c       dlqConn
		f       dlqFilter
		asJSON  bool
		limit   int
		s       = cliflag.New("forwarder dlq list", dlqListIntro, stdout)
		written int
	)
	c.bind(s)
	f.bind(s)
	s.Bool(&asJSON, "json", "", false, "print one JSON object per dead letter, with headers and body")
	s.Int(&limit, "limit", "", 0, "stop after this many dead letters; 0 lists all")
	if help, err := parseDLQFlags(s, args, &c, &f); help || err != nil {
		return err
	}
	if limit < 0 {
		return cliflag.Usagef("--limit must not be negative")
	}
	conn, stream, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer conn.close()

	var emit func(*deadLetter) error
	var flush func() error
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		emit = func(d *deadLetter) error { return enc.Encode(d.record()) }
		flush = func() error { return nil }
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tROUTE\tSUBSCRIPTION\tREASON\tSTATUS/CODE\tERROR")
		emit = func(d *deadLetter) error {
			_, err := fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Seq, d.Time.UTC().Format(time.RFC3339),
				d.route(), d.subscription(), dlqOrDash(d.Header.Get(pipeline.HeaderReason)), d.statusCode(),
				dlqExcerpt(d.Header.Get(pipeline.HeaderError), 80))
			if written%1000 == 999 {
				// Keep memory flat on a large stream; columns may shift
				// between blocks.
				tw.Flush()
			}
			return err
		}
		flush = tw.Flush
	}
	errLimit := fmt.Errorf("limit reached")
	err = walkDeadLetters(ctx, stream, &f, dlqWalkOptions{headersOnly: !asJSON}, func(d *deadLetter) error {
		if err := emit(d); err != nil {
			return err
		}
		written++
		if limit > 0 && written >= limit {
			return errLimit
		}
		return nil
	})
	if ferr := flush(); err == nil || err == errLimit {
		err = ferr
	}
	if err == nil && written == 0 && !asJSON {
		fmt.Fprintf(stderr, "no dead letters match (stream %s, subject %s)\n", c.stream, f.subject())
	}
	return err
}

const dlqShowIntro = `forwarder dlq show SEQ: print one dead letter, its headers and its body
(pretty-printed when it is JSON). SEQ is the sequence shown by "dlq list".`

func runDLQShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c      dlqConn
		asJSON bool
		s      = cliflag.New("forwarder dlq show", dlqShowIntro, stdout)
	)
	c.bind(s)
	s.Bool(&asJSON, "json", "", false, "print it as one JSON object, like dlq list --json")
	if help, err := parseDLQFlags(s, args, &c, nil); help || err != nil {
		return err
	}
	if len(s.Args()) != 1 {
		return cliflag.Usagef("dlq show takes one argument, the dead letter's sequence (SEQ in dlq list); flags go before it")
	}
	seq, err := strconv.ParseUint(s.Args()[0], 10, 64)
	if err != nil || seq == 0 {
		return cliflag.Usagef("dlq show: SEQ %q is not a stream sequence (a positive integer)", s.Args()[0])
	}
	conn, stream, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer conn.close()
	d, err := getDeadLetter(ctx, stream, seq)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(d.record())
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Dead letter %d of %s\n", d.Seq, c.stream)
	fmt.Fprintf(&b, "  Stored:  %s\n", d.Time.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(&b, "  Subject: %s\n", d.Subject)
	fmt.Fprintln(&b, "Headers:")
	keys := make([]string, 0, len(d.Header))
	for k := range d.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range d.Header[k] {
			fmt.Fprintf(&b, "  %s: %s\n", k, v)
		}
	}
	fmt.Fprintf(&b, "Body (%d bytes):\n", len(d.Data))
	var pretty bytes.Buffer
	switch {
	case json.Valid(d.Data) && json.Indent(&pretty, d.Data, "", "  ") == nil:
		b.Write(pretty.Bytes())
	case utf8.Valid(d.Data):
		b.Write(d.Data)
	default:
		fmt.Fprintf(&b, "(not UTF-8; quoted) %q", d.Data)
	}
	b.WriteByte('\n')
	_, err = stdout.Write(b.Bytes())
	return err
}

// dlqRecord is the JSON form of a dead letter (dlq list --json, dlq show
// --json). The fields beside headers are the headers, parsed.
type dlqRecord struct {
	Seq             uint64              `json:"seq"`
	Time            time.Time           `json:"time"`
	Subject         string              `json:"subject"`
	Route           string              `json:"route"`
	Subscription    string              `json:"subscription"`
	Kind            string              `json:"kind"`
	Reason          string              `json:"reason"`
	Error           string              `json:"error,omitempty"`
	Status          int                 `json:"status,omitempty"`
	Code            *int                `json:"code,omitempty"`
	OriginalSubject string              `json:"original_subject,omitempty"`
	OriginalSeq     uint64              `json:"original_seq,omitempty"`
	Attempts        uint64              `json:"attempts,omitempty"`
	FirstFailure    string              `json:"first_failure,omitempty"`
	LastFailure     string              `json:"last_failure,omitempty"`
	Headers         map[string][]string `json:"headers"`
	// Body is the body itself when it is JSON, else a JSON string of it.
	Body json.RawMessage `json:"body,omitempty"`
	// BodyBase64 holds a body that is not UTF-8.
	BodyBase64 string `json:"body_base64,omitempty"`
}

func (d *deadLetter) record() dlqRecord {
	h := d.Header
	r := dlqRecord{
		Seq:             d.Seq,
		Time:            d.Time.UTC(),
		Subject:         d.Subject,
		Route:           d.route(),
		Subscription:    d.subscription(),
		Kind:            d.kind(),
		Reason:          h.Get(pipeline.HeaderReason),
		Error:           h.Get(pipeline.HeaderError),
		OriginalSubject: h.Get(pipeline.HeaderSubject),
		FirstFailure:    h.Get(pipeline.HeaderFirstFailure),
		LastFailure:     h.Get(pipeline.HeaderLastFailure),
		Headers:         h,
	}
	r.Status, _ = strconv.Atoi(h.Get(pipeline.HeaderStatus))
	if code, err := strconv.Atoi(h.Get(pipeline.HeaderCode)); err == nil {
		r.Code = &code
	}
	r.OriginalSeq, _ = strconv.ParseUint(h.Get(pipeline.HeaderStreamSeq), 10, 64)
	r.Attempts, _ = strconv.ParseUint(h.Get(pipeline.HeaderAttempts), 10, 64)
	switch {
	case d.Data == nil:
	case json.Valid(d.Data):
		r.Body = d.Data
	case utf8.Valid(d.Data):
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(string(d.Data))
		r.Body = bytes.TrimRight(b.Bytes(), "\n")
	default:
		r.BodyBase64 = base64.StdEncoding.EncodeToString(d.Data)
	}
	return r
}

// statusCode is the STATUS/CODE column: "400/6", "400" or "-".
func (d *deadLetter) statusCode() string {
	status, code := d.Header.Get(pipeline.HeaderStatus), d.Header.Get(pipeline.HeaderCode)
	switch {
	case status != "" && code != "":
		return status + "/" + code
	case status != "":
		return status
	case code != "":
		return "-/" + code
	}
	return "-"
}

// dlqExcerpt is s on one line, cut to n runes.
func dlqExcerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func dlqOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
