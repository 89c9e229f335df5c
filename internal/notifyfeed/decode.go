package notifyfeed

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/notify"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

// errUndecodable marks a message that can never become an alert.
var errUndecodable = errors.New("notifyfeed: not a dead letter or route event")

// decode turns a message of the dead-letter stream into an alert. seq is its
// sequence in that stream, which makes the alert's ID.
func decode(subject string, h nats.Header, data []byte, seq uint64) (notify.Alert, error) {
	switch {
	case strings.HasPrefix(subject, pipeline.DLQSubjectPrefix+"."):
		return decodeDeadLetter(subject, h, seq)
	case strings.HasPrefix(subject, pipeline.RouteEventSubjectPrefix+"."):
		return decodeRouteEvent(data, seq)
	}
	return notify.Alert{}, fmt.Errorf("%w: subject %s", errUndecodable, subject)
}

// decodeDeadLetter reads the headers of a dead letter; its body is the event
// and is never looked at.
func decodeDeadLetter(subject string, h nats.Header, seq uint64) (notify.Alert, error) {
	// ezssh.dlq.<route>.<sub>.<kind>
	tokens := strings.Split(strings.TrimPrefix(subject, pipeline.DLQSubjectPrefix+"."), ".")
	a := notify.Alert{
		Kind:   notify.KindDeadLetter,
		Route:  h.Get(pipeline.HeaderRoute),
		Reason: h.Get(pipeline.HeaderReason),
		Error:  h.Get(pipeline.HeaderError),
		ID:     "dlq-" + strconv.FormatUint(seq, 10),
	}
	if a.Route == "" && len(tokens) > 0 {
		a.Route = tokens[0]
	}
	if a.Route == "" {
		return notify.Alert{}, fmt.Errorf("%w: dead letter %s names no route", errUndecodable, subject)
	}
	a.Subscription = subscriptionOf(h.Get(pipeline.HeaderSubject))
	if a.Subscription == "" && len(tokens) >= 3 && tokens[1] != "unknown" {
		a.Subscription = tokens[1]
	}
	if s, err := strconv.Atoi(h.Get(pipeline.HeaderStatus)); err == nil {
		a.Status = s
	}
	if c, err := strconv.Atoi(h.Get(pipeline.HeaderCode)); err == nil {
		a.Code, a.HasCode = c, true
	}
	if t, err := time.Parse(time.RFC3339Nano, h.Get(pipeline.HeaderLastFailure)); err == nil {
		a.At = t
	}
	return a, nil
}

// subscriptionOf returns <sub> of ezssh.audit.<sub>.<kind>, or "".
func subscriptionOf(subject string) string {
	rest, ok := strings.CutPrefix(subject, audit.SubjectPrefix+".")
	if !ok {
		return ""
	}
	sub, _, _ := strings.Cut(rest, ".")
	return sub
}

func decodeRouteEvent(data []byte, seq uint64) (notify.Alert, error) {
	var ev pipeline.RouteEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return notify.Alert{}, fmt.Errorf("%w: route event: %v", errUndecodable, err)
	}
	a := notify.Alert{
		Route:       ev.Route,
		Destination: ev.Destination,
		Class:       ev.Class,
		Error:       ev.Error,
		At:          ev.At,
		HeldEvents:  ev.HeldEvents,
		ExpiresAt:   ev.ExpiresAt,
		ID:          "route-" + strconv.FormatUint(seq, 10),
	}
	switch ev.State {
	case pipeline.StateOpened:
		a.Kind = notify.KindOpened
	case pipeline.StateRecovered:
		a.Kind = notify.KindRecovered
	case pipeline.StateAging:
		a.Kind = notify.KindAging
	default:
		return notify.Alert{}, fmt.Errorf("%w: route state %q", errUndecodable, ev.State)
	}
	a.Status = ev.Status
	if ev.Code != nil {
		a.Code, a.HasCode = *ev.Code, true
	}
	return a, nil
}
