package queries

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/generate"
)

const docPath = "../../docs/huntress-queries.md"

// fieldPrefix is how the document refers to the members of the HEC event.
const fieldPrefix = "generic_hec."

// vocabulary is every word of the query language the document may use,
// lower-cased. A word that is neither here, nor a field after fieldPrefix,
// nor an alias the block defines, fails the test: add it here only if it
// really is part of Huntress's (ES|QL) syntax.
var vocabulary = map[string]bool{
	"from": true, "logs": true, "where": true, "stats": true, "by": true,
	"eval": true, "keep": true, "sort": true, "limit": true,
	"asc": true, "desc": true, "and": true, "or": true, "not": true,
	"is": true, "null": true, "like": true, "in": true,
	"count": true, "count_distinct": true, "substring": true, "to_integer": true,
}

// block is one fenced block of the document and the heading above it.
type block struct {
	heading string
	line    int // of the opening fence
	text    string
}

// readDoc returns the fenced blocks of the document.
func readDoc(t *testing.T) []block {
	t.Helper()
	f, err := os.Open(docPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks  []block
		heading string
		cur     *block
		n       int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case strings.HasPrefix(strings.TrimSpace(line), "```"):
			cur = &block{heading: heading, line: n}
		case strings.HasPrefix(line, "#"):
			heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: fence never closed", docPath, cur.line)
	}
	return blocks
}

// eventFields returns the JSON field names of audit.Event: its exported
// string fields, named by their json tag if any, else by the Go name. It
// checks them against what MarshalJSON really writes, since Event encodes
// itself.
func eventFields(t *testing.T) map[string]bool {
	t.Helper()
	var e audit.Event
	v := reflect.ValueOf(&e).Elem()
	fields := map[string]bool{}
	for i := range v.NumField() {
		sf := v.Type().Field(i)
		if !sf.IsExported() || sf.Type.Kind() != reflect.String {
			continue // Extra holds the unknown fields; it is no field itself
		}
		name := sf.Name
		if tag, _, _ := strings.Cut(sf.Tag.Get("json"), ","); tag != "" && tag != "-" {
			name = tag
		}
		fields[name] = true
		v.Field(i).SetString("x")
	}
	body, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != len(fields) {
		t.Fatalf("audit.Event encodes %d fields, reflection finds %d: %s", len(m), len(fields), body)
	}
	for k := range m {
		if !fields[k] {
			t.Fatalf("audit.Event encodes %q, which reflection does not find", k)
		}
	}
	return fields
}

var (
	stringLit = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	word      = regexp.MustCompile(`[A-Za-z_@][A-Za-z0-9_.@]*`)
	alias     = regexp.MustCompile(`(?:^|[\s,(|])([A-Za-z_][A-Za-z0-9_]*)\s*=(?:[^=]|$)`)
)

// literals returns the string literals of a query, unquoted, sorted, unique.
func literals(q string) []string {
	var out []string
	for _, l := range stringLit.FindAllString(q, -1) {
		s, err := strconv.Unquote(l)
		if err != nil {
			s = l
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// problems returns what is wrong with the names a query uses: a field after
// the prefix that audit.Event does not have, a field without the prefix, or
// a word that is no field, alias or word of the language.
func problems(q string, fields map[string]bool) []string {
	var out []string
	code := stringLit.ReplaceAllString(q, `""`)
	aliases := map[string]bool{}
	for _, m := range alias.FindAllStringSubmatch(code, -1) {
		if fields[m[1]] {
			out = append(out, fmt.Sprintf("alias %s shadows an event field", m[1]))
		}
		aliases[m[1]] = true
	}
	for _, w := range word.FindAllString(code, -1) {
		switch {
		case strings.HasPrefix(w, fieldPrefix):
			if f := strings.TrimPrefix(w, fieldPrefix); !fields[f] {
				out = append(out, fmt.Sprintf("%s: %s is not a field of audit.Event", w, f))
			}
		case fields[w]:
			out = append(out, fmt.Sprintf("%s without the %s prefix the rest of the document uses", w, fieldPrefix))
		case aliases[w], vocabulary[strings.ToLower(w)]:
		default:
			out = append(out, fmt.Sprintf("%s is no field of audit.Event, alias of the query, or known query word", w))
		}
	}
	return out
}

func TestProblemsCatchesTypos(t *testing.T) {
	fields := eventFields(t)
	ok := `from logs
| where generic_hec.EventType == "EZSSH_GIT" and generic_hec.Certificate IS NOT NULL
| stats Count = count() by generic_hec.UserPublicKey
| where Count > 1`
	if p := problems(ok, fields); len(p) > 0 {
		t.Errorf("good query reported: %q", p)
	}
	for _, bad := range []string{
		`from logs | where generic_hec.EventTyp == "EZSSH_SSH"`,
		`from logs | stats Count = count() by generic_hec.UserPublickey`,
		`from logs | where generic_hec.Requestor == "x"`,
		`from logs | stats Count = count() by UserPublicKey`,      // bare field
		`from logs | where generic_hec.EventType == "x" | wher x`, // unknown word
		`from logs | eval Certificate = "x"`,                      // shadowing alias
		`from logs | where generic_hec.Extra == "x"`,              // not a body field
	} {
		if len(problems(bad, fields)) == 0 {
			t.Errorf("no problem found in %q", bad)
		}
	}
	if got, want := literals(`where a == "EZSSH_*" and b != "" and c == "a\"b" or d == ""`), []string{"", "EZSSH_*", `a"b`}; !slices.Equal(got, want) {
		t.Errorf("literals = %q, want %q", got, want)
	}
}

func TestDocMatchesTable(t *testing.T) {
	blocks := readDoc(t)
	if len(blocks) != len(All) {
		t.Errorf("%s has %d query blocks, queries.All has %d", docPath, len(blocks), len(All))
	}
	names := map[string]bool{}
	for i, q := range All {
		if names[q.Name] {
			t.Errorf("query name %q repeated", q.Name)
		}
		names[q.Name] = true
		if i >= len(blocks) {
			t.Errorf("query %d %q has no block in the document", i+1, q.Name)
			continue
		}
		if want := fmt.Sprintf("%d. %s", i+1, q.Name); blocks[i].heading != want {
			t.Errorf("%s:%d: block %d is under heading %q, want %q", docPath, blocks[i].line, i+1, blocks[i].heading, want)
		}
	}
}

func TestQueryFieldsAreEventFields(t *testing.T) {
	fields := eventFields(t)
	for i, b := range readDoc(t) {
		if !strings.HasPrefix(strings.TrimSpace(b.text), "from logs") {
			t.Errorf("%s:%d: block %d does not start with `from logs`", docPath, b.line, i+1)
		}
		for _, p := range problems(b.text, fields) {
			t.Errorf("%s:%d (%s): %s", docPath, b.line, b.heading, p)
		}
	}
}

func TestQueryLiteralsMatchGo(t *testing.T) {
	blocks := readDoc(t)
	for i, q := range All {
		if i >= len(blocks) {
			break // TestDocMatchesTable reports it
		}
		want := slices.Clone(q.Literals)
		slices.Sort(want)
		want = slices.Compact(want)
		if got := literals(blocks[i].text); !slices.Equal(got, want) {
			t.Errorf("%s:%d (%s): string literals %q, the Go filter uses %q", docPath, blocks[i].line, q.Name, got, want)
		}
	}
}

// sample returns n generated events (seed 1, 5 subscriptions) whose
// RequestDate steps 7m13s from a fixed Monday, so they cover every hour of
// the day; by default the generator stamps every event with time.Now.
func sample(n int) []*audit.Event {
	at := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	g := generate.New(generate.Options{Subscriptions: 5, Seed: 1, Now: func() time.Time {
		at = at.Add(7*time.Minute + 13*time.Second)
		return at
	}})
	evs := make([]*audit.Event, n)
	for i := range evs {
		evs[i] = g.Next()
	}
	return evs
}

func query(t *testing.T, name string) Query {
	t.Helper()
	for _, q := range All {
		if q.Name == name {
			return q
		}
	}
	t.Fatalf("no query %q", name)
	return Query{}
}

func count(evs []*audit.Event, f func(*audit.Event) bool) int {
	n := 0
	for _, e := range evs {
		if f(e) {
			n++
		}
	}
	return n
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestQueriesOverGeneratedEvents(t *testing.T) {
	evs := sample(5000)
	tests := count(evs, (*audit.Event).IsTest)
	if tests == 0 {
		t.Fatal("the sample has no Test Connection event: the exclusions below test nothing")
	}
	if count(evs, func(e *audit.Event) bool { return e.IsTest() && e.EventType == audit.EventTypeSSH }) == 0 {
		t.Fatal("the sample has no SSH Test Connection event")
	}

	t.Run("key reuse", func(t *testing.T) {
		q := query(t, "SSH key shared by more than one user")
		keys := map[string]bool{}
		gitKeys := map[string]bool{}
		for _, e := range evs {
			keys[e.UserPublicKey] = true
			if e.EventType == audit.EventTypeGit {
				gitKeys[e.UserPublicKey] = true
			}
		}
		// The how-to's form: Count >= 0 keeps every key it saw.
		howTo := Query{
			Where: func(e *audit.Event) bool { return e.EventType == audit.EventTypeGit },
			Stats: &Stats{
				By:     func(e *audit.Event) string { return e.UserPublicKey },
				Having: func(n int) bool { return n >= 0 },
			},
		}
		if got := len(howTo.Groups(evs)); got != len(gitKeys) || got < 2 {
			t.Errorf("how-to form (Count >= 0) matches %d keys of %d: it should match all of them", got, len(gitKeys))
		}
		// Even with > 1, count() flags every key used twice by its owner.
		byEvents := Query{Where: q.Where, Stats: &Stats{By: q.Stats.By, Having: q.Stats.Having}}
		perKeyEvents := len(byEvents.Groups(evs))
		got := q.Groups(evs)
		t.Logf("%d keys in the sample; count() > 1 flags %d of them; count_distinct(requestor) > 1 flags %d", len(keys), perKeyEvents, len(got))
		if len(got) >= len(keys) || perKeyEvents <= len(got) {
			t.Errorf("distinct-requestor form flags %d of %d keys, count() form %d: expected far fewer than all", len(got), len(keys), perKeyEvents)
		}
		// The generator gives each key one owner, so the sample has no
		// shared key; lend two keys to other people and they must be found.
		planted := map[string]bool{}
		more := slices.Clone(evs)
		for _, e := range evs {
			if len(planted) == 2 {
				break
			}
			if e.IsTest() || planted[e.UserPublicKey] {
				continue
			}
			c := *e
			c.RequestorFriendlyName = "Mallory Borrowed-" + strconv.Itoa(len(planted))
			more = append(more, &c)
			planted[e.UserPublicKey] = true
		}
		got = q.Groups(more)
		for k := range planted {
			if got[k] != 2 {
				t.Errorf("shared key %.40s…: %d requestors found, want 2", k, got[k])
			}
		}
		for k := range got {
			if !planted[k] {
				t.Errorf("key %.40s… flagged but not shared", k)
			}
		}
	})

	t.Run("SSH certificates granted", func(t *testing.T) {
		q := query(t, "SSH requests that granted a certificate")
		rows := q.Rows(evs)
		want := count(evs, func(e *audit.Event) bool {
			return e.EventType == audit.EventTypeSSH && e.ActionPerformed == generate.ActionIssued
		})
		if len(rows) == 0 || len(rows) != want {
			t.Errorf("%d rows, want the %d issued SSH events", len(rows), want)
		}
		for _, e := range rows {
			if e.IsTest() || e.EventType != audit.EventTypeSSH || e.Certificate == "" {
				t.Errorf("selected %s %q with certificate %t", e.EventType, e.ActionPerformed, e.Certificate != "")
			}
		}
		// A test event that carries a certificate is still left out.
		probe := *rows[0]
		probe.ActionPerformed = audit.ActionTestConnection
		if q.Where(&probe) {
			t.Error("a Test Connection event with a certificate is selected")
		}
	})

	t.Run("Git certificates per requestor", func(t *testing.T) {
		q := query(t, "Git certificates per requestor")
		got := q.Groups(evs)
		want := count(evs, func(e *audit.Event) bool {
			return e.EventType == audit.EventTypeGit && e.ActionPerformed == generate.ActionIssued
		})
		if want == 0 || sum(got) != want {
			t.Errorf("%d certificates counted, want the %d issued Git events", sum(got), want)
		}
		if len(got) < 10 || len(got) > 30 {
			t.Errorf("%d requestors, want most of the generator's 30 names", len(got))
		}
	})

	t.Run("denied per user", func(t *testing.T) {
		q := query(t, "Denied requests per user")
		rows := q.Rows(evs)
		denied := count(evs, func(e *audit.Event) bool { return e.ActionPerformed == generate.ActionDenied })
		if denied == 0 {
			t.Fatal("the generator made no denied request")
		}
		if len(rows) != denied {
			t.Errorf("%d rows, want the %d %q events", len(rows), denied, generate.ActionDenied)
		}
		for _, e := range rows {
			if e.ActionPerformed != generate.ActionDenied {
				t.Errorf("selected %q", e.ActionPerformed)
			}
		}
		if pct := 100 * denied / (len(evs) - tests); pct < 2 || pct > 10 {
			t.Errorf("%d%% denied, want about 5%%", pct)
		}
		if g := q.Groups(evs); sum(g) != denied || len(g) < 2 {
			t.Errorf("groups %v", g)
		}
	})

	t.Run("High criticality", func(t *testing.T) {
		q := query(t, "High-criticality events")
		rows := q.Rows(evs)
		if want := count(evs, func(e *audit.Event) bool { return e.Criticality == audit.CriticalityHigh }); len(rows) == 0 || len(rows) != want {
			t.Errorf("%d rows, want the %d High events", len(rows), want)
		}
		for _, e := range rows {
			if e.Criticality != audit.CriticalityHigh {
				t.Errorf("selected Criticality %q", e.Criticality)
			}
		}
	})

	t.Run("outside working hours", func(t *testing.T) {
		q := query(t, "Requests outside working hours")
		rows := q.Rows(evs)
		for _, e := range rows {
			ts, err := e.RequestTime()
			if err != nil {
				t.Fatal(err)
			}
			if h := ts.UTC().Hour(); h >= WorkStart && h < WorkEnd || e.IsTest() {
				t.Errorf("selected %s (UTC hour %d, %q)", e.RequestDate, h, e.ActionPerformed)
			}
		}
		want := count(evs, func(e *audit.Event) bool {
			ts, _ := e.RequestTime()
			h := ts.UTC().Hour()
			return !e.IsTest() && (h < WorkStart || h >= WorkEnd)
		})
		if len(rows) == 0 || len(rows) != want {
			t.Errorf("%d rows, want %d", len(rows), want)
		}
		// 12 of 24 hours are outside 07:00–19:00.
		if pct := 100 * len(rows) / (len(evs) - tests); pct < 40 || pct > 60 {
			t.Errorf("%d%% outside working hours, want about 50%%", pct)
		}
	})

	t.Run("Test Connection", func(t *testing.T) {
		q := query(t, "Test Connection events")
		rows := q.Rows(evs)
		if len(rows) != tests || tests != 5000/200 {
			t.Errorf("%d rows, %d test events in the sample; want every 200th of 5000", len(rows), tests)
		}
		for _, q := range All {
			if q.Name == "Test Connection events" || q.Name == "No EZSSH events at all" || q.Name == "High-criticality events" {
				continue
			}
			for _, e := range q.Rows(evs) {
				if e.IsTest() {
					t.Errorf("%q selects a Test Connection event", q.Name)
					break
				}
			}
		}
	})

	t.Run("no events", func(t *testing.T) {
		q := query(t, "No EZSSH events at all")
		if got := q.Groups(evs); len(got) != 0 {
			t.Errorf("fires on %d events: %v", len(evs), got)
		}
		if got := q.Groups(nil); len(got) != 1 || got[""] != 0 {
			t.Errorf("over no events = %v, want one row with 0", got)
		}
	})
}
