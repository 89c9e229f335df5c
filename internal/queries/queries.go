// Package queries mirrors, in Go, the Huntress queries published in
// docs/huntress-queries.md, so that a test can run the same filters over
// generated audit events and check the document against audit.Event.
//
// Each Query is the Go form of one fenced query block of the document, in the
// same order, under a heading that carries its Name. Where is every `where`
// before a `stats` (or the whole query when there is none); Stats is the
// `stats … by …` and the `where` that follows it.
//
// The Go forms follow the query language's null rules where they matter: a
// field absent from the JSON body is "" here, and the queries test for both
// IS NULL and "" wherever the difference could change the answer.
package queries

import (
	"strconv"
	"strings"

	"github.com/ezssh/siem-forwarder/audit"
)

// Query is the Go form of one query of docs/huntress-queries.md.
type Query struct {
	// Name is the query's heading in the document (after its "N. ").
	Name string
	// Literals are the string literals the document's query block uses, in
	// any order; the test checks the block against them, so the Go filter
	// and the query cannot drift to different values.
	Literals []string
	// Where selects the events the query looks at (its row filter).
	Where func(*audit.Event) bool
	// Stats is the aggregation; nil for a query that lists events.
	Stats *Stats
}

// Stats is a `stats Value = agg(…) by By | where Having(Value)` step.
type Stats struct {
	// By is the group key; nil means `stats` without `by` (one group, which
	// exists even when no event matched, as count() over nothing is 0).
	By func(*audit.Event) string
	// Value aggregates one group's events; nil means count().
	Value func([]*audit.Event) int
	// Having is the `where` after `stats`; nil keeps every group.
	Having func(int) bool
}

// Rows returns the events of evs that pass q.Where, in order.
func (q Query) Rows(evs []*audit.Event) []*audit.Event {
	var out []*audit.Event
	for _, e := range evs {
		if q.Where(e) {
			out = append(out, e)
		}
	}
	return out
}

// Groups runs q over evs and returns the groups that pass Having with their
// values. It returns nil for a query without Stats.
func (q Query) Groups(evs []*audit.Event) map[string]int {
	if q.Stats == nil {
		return nil
	}
	return q.Stats.run(q.Rows(evs))
}

func (s *Stats) run(rows []*audit.Event) map[string]int {
	groups := map[string][]*audit.Event{}
	if s.By == nil {
		groups[""] = rows // stats without by: always one row
	}
	for _, e := range rows {
		k := ""
		if s.By != nil {
			k = s.By(e)
		}
		groups[k] = append(groups[k], e)
	}
	out := make(map[string]int, len(groups))
	for k, g := range groups {
		v := len(g)
		if s.Value != nil {
			v = s.Value(g)
		}
		if s.Having == nil || s.Having(v) {
			out[k] = v
		}
	}
	return out
}

// Working hours of the off-hours query, in UTC: from WorkStart:00 to
// WorkEnd:00.
const (
	WorkStart = 7
	WorkEnd   = 19
)

// EZSSHPattern is the LIKE pattern the queries use for "any EZSSH event".
const EZSSHPattern = "EZSSH_*"

// isEZSSH is `EventType like "EZSSH_*"`.
func isEZSSH(e *audit.Event) bool { return strings.HasPrefix(e.EventType, "EZSSH_") }

// notTest is `ActionPerformed != "Test Connection"`.
func notTest(e *audit.Event) bool { return e.ActionPerformed != audit.ActionTestConnection }

// hasCertificate is `Certificate IS NOT NULL and Certificate != ""`.
func hasCertificate(e *audit.Event) bool { return e.Certificate != "" }

// RequestHour is `to_integer(substring(RequestDate, 12, 2))`: the hour as
// written in RequestDate (UTC when it ends in Z), ok false where the query
// would get null.
func RequestHour(e *audit.Event) (hour int, ok bool) {
	if len(e.RequestDate) < 13 {
		return 0, false
	}
	h, err := strconv.Atoi(e.RequestDate[11:13])
	return h, err == nil
}

func byRequestor(e *audit.Event) string { return e.RequestorFriendlyName }

// distinctRequestors is count_distinct(RequestorFriendlyName).
func distinctRequestors(g []*audit.Event) int {
	seen := map[string]bool{}
	for _, e := range g {
		seen[e.RequestorFriendlyName] = true
	}
	return len(seen)
}

// All are the queries of docs/huntress-queries.md, in document order.
var All = []Query{
	{
		Name:     "SSH key shared by more than one user",
		Literals: []string{EZSSHPattern, audit.ActionTestConnection},
		Where:    func(e *audit.Event) bool { return isEZSSH(e) && notTest(e) },
		Stats: &Stats{
			By:     func(e *audit.Event) string { return e.UserPublicKey },
			Value:  distinctRequestors,
			Having: func(n int) bool { return n > 1 },
		},
	},
	{
		Name:     "SSH requests that granted a certificate",
		Literals: []string{audit.EventTypeSSH, audit.ActionTestConnection, ""},
		Where: func(e *audit.Event) bool {
			return e.EventType == audit.EventTypeSSH && notTest(e) && hasCertificate(e)
		},
	},
	{
		Name:     "Git certificates per requestor",
		Literals: []string{audit.EventTypeGit, audit.ActionTestConnection, ""},
		Where: func(e *audit.Event) bool {
			return e.EventType == audit.EventTypeGit && notTest(e) && hasCertificate(e)
		},
		Stats: &Stats{By: byRequestor},
	},
	{
		Name:     "Denied requests per user",
		Literals: []string{EZSSHPattern, audit.ActionTestConnection, ""},
		Where:    func(e *audit.Event) bool { return isEZSSH(e) && notTest(e) && !hasCertificate(e) },
		Stats: &Stats{
			By: func(e *audit.Event) string { return e.RequestorFriendlyName + "\x00" + e.SubscriptionId },
		},
	},
	{
		Name:     "High-criticality events",
		Literals: []string{EZSSHPattern, audit.CriticalityHigh},
		Where:    func(e *audit.Event) bool { return isEZSSH(e) && e.Criticality == audit.CriticalityHigh },
	},
	{
		Name:     "Requests outside working hours",
		Literals: []string{EZSSHPattern, audit.ActionTestConnection},
		Where: func(e *audit.Event) bool {
			h, ok := RequestHour(e)
			return isEZSSH(e) && notTest(e) && ok && (h < WorkStart || h >= WorkEnd)
		},
		Stats: &Stats{By: byRequestor},
	},
	{
		Name:     "Test Connection events",
		Literals: []string{EZSSHPattern, audit.ActionTestConnection},
		Where:    func(e *audit.Event) bool { return isEZSSH(e) && e.IsTest() },
	},
	{
		Name:     "No EZSSH events at all",
		Literals: []string{EZSSHPattern},
		Where:    isEZSSH,
		Stats:    &Stats{Having: func(n int) bool { return n == 0 }},
	},
}
