package notify

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// content is an email's subject and plain-text body.
type content struct{ subject, body string }

const subjectPrefix = "EZSSH SIEM: "

func (n *Notifier) deadLetterStart(st *routeState, a Alert, at time.Time) content {
	subj := subjectPrefix + reasonHeadline(a.Reason) + " (route " + st.Route
	if a.Subscription != "" {
		subj += ", subscription " + a.Subscription
	}
	subj += ")"
	var b body
	b.para("An EZSSH audit event could not be delivered and was moved to the dead-letter queue, so that it does not hold back the events after it.")
	b.field("Route", st.Route)
	b.field("Subscription", orNone(a.Subscription))
	b.field("Destination", destination(st.Destination))
	b.field("What happened", reasonText(a.Reason))
	b.field("HEC reply", reply(a.Status, a.Code, a.HasCode))
	b.field("Error", orNone(a.Error))
	b.field("Time", stamp(at))
	b.end()
	b.heading("What to do")
	b.para(reasonAdvice(st.Route, a.Reason))
	b.para(fmt.Sprintf("Further dead letters on this route are summarised in at most one email every %s.", window(n.cfg.Window)))
	n.footer(&b, st)
	return content{subj, b.String()}
}

func (n *Notifier) outageStart(st *routeState, o *outage) content {
	subj := subjectPrefix + "delivery to " + hostOf(st.Destination) + " stopped: " + problem(o) + " (route " + st.Route + ")"
	var b body
	b.para("Delivery of EZSSH audit events to Huntress has stopped on route " + st.Route + ". " +
		"No event is lost: they are held in the stream and will be delivered once the destination accepts them again. " +
		"You will be warned before held events would age out of the stream.")
	b.field("Route", st.Route)
	b.field("Destination", destination(st.Destination))
	b.field("What happened", problem(o))
	b.field("HEC reply", reply(o.Status, o.Code, o.HasCode))
	b.field("Error", orNone(o.Error))
	b.field("Since", stamp(o.Since))
	b.end()
	b.heading("What to do")
	b.para(outageAdvice(o))
	b.para(fmt.Sprintf("You will get one email when delivery recovers, and meanwhile at most one summary every %s.", window(n.cfg.Window)))
	n.footer(&b, st)
	return content{subj, b.String()}
}

func (n *Notifier) recovered(st *routeState, o *outage, at time.Time) content {
	subj := subjectPrefix + "delivery to " + hostOf(st.Destination) + " recovered (route " + st.Route + ")"
	var b body
	b.para("Delivery of EZSSH audit events has resumed on route " + st.Route + ". " +
		"The events held during the interruption are being delivered now; nothing needs to be done about them.")
	b.field("Route", st.Route)
	b.field("Destination", destination(st.Destination))
	b.field("Stopped", stamp(o.Since)+" ("+problem(o)+")")
	b.field("Recovered", stamp(at))
	b.field("Interrupted for", at.Sub(o.Since).Round(time.Second).String())
	if st.Total.count() > 0 {
		b.field("Dead letters", countText(st.Total))
		b.field("Subscriptions", subsText(st.Total))
		b.field("First, last", stamp(st.Total.First)+", "+stamp(st.Total.Last))
	}
	b.end()
	if len(st.Pending.Samples) > 0 {
		samples(&b, st.Pending.Samples)
	}
	if st.Total.count() > 0 {
		b.heading("What to do")
		for _, r := range reasons(st.Total) {
			b.para(reasonAdvice(st.Route, r))
		}
	}
	n.footer(&b, st)
	return content{subj, b.String()}
}

func (n *Notifier) digest(st *routeState) content {
	p := st.Pending
	var subj string
	if c := p.count(); c > 0 {
		subj = fmt.Sprintf("%s%d more audit event%s dead-lettered (route %s)", subjectPrefix, c, plural(c), st.Route)
	} else {
		subj = subjectPrefix + "delivery to " + hostOf(st.Destination) + " interrupted again (route " + st.Route + ")"
	}
	var b body
	b.para(fmt.Sprintf("Summary for route %s of what happened since the last email (%s). Emails about this route are sent at most once every %s.",
		st.Route, stamp(st.LastMail), window(n.cfg.Window)))
	b.field("Route", st.Route)
	b.field("Destination", destination(st.Destination))
	if p.count() > 0 {
		b.field("Dead letters", countText(p))
		b.field("Subscriptions", subsText(p))
		b.field("First", stamp(p.First))
		b.field("Last", stamp(p.Last))
	}
	if p.Reopened > 0 {
		b.field("Interruptions", fmt.Sprintf("delivery stopped %d more time%s soon after it recovered", p.Reopened, plural(p.Reopened)))
	}
	switch {
	case st.Outage != nil:
		b.field("Delivery", "stopped since "+stamp(st.Outage.Since)+": "+problem(st.Outage)+"; events are held")
		b.field("Error", orNone(st.Outage.Error))
	case !p.Recovered.IsZero():
		b.field("Delivery", "resumed at "+stamp(p.Recovered))
	default:
		b.field("Delivery", "running")
	}
	b.field("Incident", fmt.Sprintf("started %s; %d dead letter%s in all", stamp(st.Since), st.Total.count(), plural(st.Total.count())))
	b.end()
	if len(p.Samples) > 0 {
		samples(&b, p.Samples)
	}
	b.heading("What to do")
	if st.Outage != nil {
		b.para(outageAdvice(st.Outage))
	}
	for _, r := range reasons(p) {
		b.para(reasonAdvice(st.Route, r))
	}
	if st.Outage == nil && p.count() == 0 {
		b.para("Nothing while delivery runs. If it keeps stopping, check the destination's health and the forwarders' logs.")
	}
	n.footer(&b, st)
	return content{subj, b.String()}
}

func (n *Notifier) agingWarning(st *routeState, ag aging) content {
	subj := fmt.Sprintf("%s%d held audit event%s will be lost at %s unless delivery resumes (route %s)",
		subjectPrefix, ag.Held, plural(int(min(ag.Held, 2))), stamp(ag.ExpiresAt), st.Route)
	var b body
	b.para(fmt.Sprintf("Route %s cannot deliver, and %d event%s are held in the stream. "+
		"The oldest will be removed from the stream at %s (in %s): from then on, events are lost, not delivered.",
		st.Route, ag.Held, plural(int(min(ag.Held, 2))), stamp(ag.ExpiresAt), ag.ExpiresAt.Sub(ag.At).Round(time.Minute)))
	b.field("Route", st.Route)
	b.field("Destination", destination(st.Destination))
	if o := st.Outage; o != nil {
		b.field("Stopped since", stamp(o.Since))
		b.field("What happened", problem(o))
		b.field("Error", orNone(o.Error))
	}
	b.field("Held events", strconv.FormatUint(ag.Held, 10))
	b.field("First lost at", stamp(ag.ExpiresAt))
	b.end()
	b.heading("What to do")
	if o := st.Outage; o != nil {
		b.para(outageAdvice(o))
	} else {
		b.para("Fix the destination (see the earlier email about this route), then check that delivery resumes.")
	}
	b.para("To buy time, raise the stream's retention on the forwarders (FORWARDER_STREAM_MAX_AGE, --stream-max-age) before then.")
	n.footer(&b, st)
	return content{subj, b.String()}
}

func (n *Notifier) footer(b *body, st *routeState) {
	b.line("-- ")
	b.line("Sent by the EZSSH SIEM forwarder (" + n.cfg.Instance + ") about route " + st.Route + ".")
	b.line("No HEC token or event content is ever included in these emails.")
}

func samples(b *body, ss []sample) {
	b.heading("Sample errors")
	for i, s := range ss {
		who := ""
		if s.Subscription != "" {
			who = ", subscription " + s.Subscription
		}
		b.line(fmt.Sprintf("  %d. %s, %s%s, %s", i+1, stamp(s.At), s.Reason, who, reply(s.Status, s.Code, s.HasCode)))
		if s.Error != "" {
			b.line("     " + s.Error)
		}
	}
	b.line("")
}

func reasonHeadline(reason string) string {
	switch reason {
	case ReasonRejected:
		return "Huntress refused an audit event"
	case ReasonInvalid:
		return "an invalid audit event was set aside"
	case ReasonUndeliverable:
		return "an audit event kept failing the forwarder"
	}
	return "an audit event was dead-lettered"
}

func reasonText(reason string) string {
	switch reason {
	case ReasonRejected:
		return "rejected: Huntress refused the event itself"
	case ReasonInvalid:
		return "invalid: the event was malformed when it was published and was never sent"
	case ReasonUndeliverable:
		return "undeliverable: the event was delivered to a forwarder again and again without ever being settled"
	}
	return orNone(reason)
}

func reasonAdvice(route, reason string) string {
	list := "forwarder dlq list --route " + route
	switch reason {
	case ReasonRejected:
		return "Events refused by Huntress (" + ReasonRejected + ") are kept in the dead-letter queue; every other event was delivered. " +
			"List them with `" + list + " --reason rejected` and look at one with `forwarder dlq show SEQ`. " +
			"Once the cause is fixed, `forwarder dlq redrive --route " + route + " --reason rejected` sends them again."
	case ReasonInvalid:
		return "Invalid events (" + ReasonInvalid + ": not JSON, not UTF-8, missing required fields or over the size limit) come from the service that published them, which needs fixing. " +
			"List them with `" + list + " --reason invalid`."
	case ReasonUndeliverable:
		return "Undeliverable events (" + ReasonUndeliverable + ") crashed or hung the forwarders that held them. Check the forwarders' logs around the times above, " +
			"list them with `" + list + " --reason undeliverable`, and redrive them once the cause is fixed."
	}
	return "List the dead letters with `" + list + "`."
}

// problem says in a few words why an outage started.
func problem(o *outage) string {
	if o.Class != ClassMisconfigured {
		return "Huntress is unreachable or failing"
	}
	switch {
	case o.Status == 401 || o.Status == 403:
		return "the HEC token was refused"
	case o.Status == 404:
		return "the HEC URL is wrong"
	case isTLS(o.Error):
		return "the TLS connection failed"
	}
	return "the destination refuses our settings"
}

func outageAdvice(o *outage) string {
	held := " The events are held meanwhile and are delivered as soon as the destination accepts them." +
		" (If this route is set on the forwarders themselves, as the global route is, fix HUNTRESS_HEC_URL or HUNTRESS_HEC_TOKEN there and restart them; `forwarder test-connection` checks the settings.)"
	if o.Class != ClassMisconfigured {
		return "Huntress (the HEC) is unreachable or failing: server errors, timeouts or rate limiting. " +
			"Nothing is lost: the events are held and will be delivered when it recovers. " +
			"No action is needed unless the interruption lasts; check Huntress's status, and the network path from the forwarders to it."
	}
	switch {
	case o.Status == 401 || o.Status == 403:
		return "The HEC token was refused: paste a new one in EZSSH Settings → Advanced Settings " +
			"(Huntress → SIEM → Source Management → your Generic HEC source shows its \"HTTP Event Collector Token\"), then press Test Connection." + held
	case o.Status == 404:
		return "The HEC URL is wrong: nothing collects events at it. Copy the \"HTTP Event Collector URL\" of your Huntress Generic HEC source " +
			"into EZSSH Settings → Advanced Settings, then press Test Connection." + held
	case isTLS(o.Error):
		return "The TLS connection to the destination failed: its certificate is not trusted or does not match its name. " +
			"Check the host name in the HEC URL (EZSSH Settings → Advanced Settings) and the certificate the destination presents, then press Test Connection." + held
	}
	return "The destination refuses our settings (see the error above). Check the HEC URL and token in EZSSH Settings → Advanced Settings, then press Test Connection." + held
}

func isTLS(err string) bool {
	e := strings.ToLower(err)
	return strings.Contains(e, "x509") || strings.Contains(e, "tls") || strings.Contains(e, "certificate")
}

func reply(status, code int, hasCode bool) string {
	if status == 0 {
		return "none (no HTTP reply)"
	}
	s := "HTTP " + strconv.Itoa(status)
	if hasCode {
		s += ", code " + strconv.Itoa(code)
	}
	return s
}

func countText(t tally) string {
	c := t.count()
	parts := make([]string, 0, len(t.Reasons))
	for _, r := range reasons(t) {
		parts = append(parts, fmt.Sprintf("%s %d", r, t.Reasons[r]))
	}
	return fmt.Sprintf("%d (%s)", c, strings.Join(parts, ", "))
}

func subsText(t tally) string {
	if len(t.Subscriptions) == 0 {
		return "(none named)"
	}
	subs := make([]string, 0, len(t.Subscriptions))
	for s := range t.Subscriptions {
		subs = append(subs, s)
	}
	sort.Slice(subs, func(i, j int) bool {
		if t.Subscriptions[subs[i]] != t.Subscriptions[subs[j]] {
			return t.Subscriptions[subs[i]] > t.Subscriptions[subs[j]]
		}
		return subs[i] < subs[j]
	})
	parts := make([]string, 0, len(subs)+1)
	for _, s := range subs {
		parts = append(parts, fmt.Sprintf("%s (%d)", s, t.Subscriptions[s]))
	}
	if t.OtherSubs > 0 {
		parts = append(parts, fmt.Sprintf("others (%d)", t.OtherSubs))
	}
	return strings.Join(parts, ", ")
}

// reasons returns the tally's reasons, most frequent first.
func reasons(t tally) []string {
	rs := make([]string, 0, len(t.Reasons))
	for r := range t.Reasons {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool {
		if t.Reasons[rs[i]] != t.Reasons[rs[j]] {
			return t.Reasons[rs[i]] > t.Reasons[rs[j]]
		}
		return rs[i] < rs[j]
	})
	return rs
}

func destination(d string) string {
	if d == "" {
		return "(unknown)"
	}
	if h := hostOf(d); h != d {
		return d + " (host " + h + ")"
	}
	return d
}

// hostOf returns the host of a destination URL, or the destination itself.
func hostOf(d string) string {
	if d == "" {
		return "the destination"
	}
	if u, err := url.Parse(d); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return d
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "(unknown)"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func window(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	}
	return d.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// body builds a plain-text email.
type body struct {
	strings.Builder
	fields bool
}

func (b *body) line(s string) { b.WriteString(s); b.WriteString("\n") }

func (b *body) para(s string) {
	b.end()
	b.line(s)
	b.line("")
}

func (b *body) heading(s string) {
	b.end()
	b.line(s)
	b.line(strings.Repeat("-", len(s)))
}

func (b *body) field(label, value string) {
	b.fields = true
	b.line(fmt.Sprintf("  %-16s %s", label+":", oneLine(value)))
}

// end closes a block of fields.
func (b *body) end() {
	if b.fields {
		b.line("")
		b.fields = false
	}
}

var (
	// authHeader matches an Authorization header, or anything shaped like
	// one, to the end of its line.
	authHeader = regexp.MustCompile(`(?i)(authorization\s*[:=]\s*)[^\r\n]*`)
	// authToken matches a credential after an HTTP auth scheme.
	authToken = regexp.MustCompile(`(?i)\b(splunk|bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}`)
)

// scrub removes what looks like a credential from an error text and makes it
// one line. The pipeline's error texts are already scrubbed of the token;
// this is a second net for anything shaped like an Authorization header.
func scrub(s string) string {
	s = authHeader.ReplaceAllString(s, "${1}[REDACTED]")
	s = authToken.ReplaceAllString(s, "${1}${2}[REDACTED]")
	return oneLine(s)
}

// oneLine replaces line breaks and other control characters with spaces, so
// a text cannot add a header or fake a line of the email.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}
