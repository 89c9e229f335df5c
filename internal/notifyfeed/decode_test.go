package notifyfeed

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ezssh/siem-forwarder/internal/notify"
	"github.com/ezssh/siem-forwarder/internal/pipeline"
)

func TestDecodeDeadLetter(t *testing.T) {
	h := nats.Header{}
	h.Set(pipeline.HeaderReason, "rejected")
	h.Set(pipeline.HeaderError, `huntress: HEC replied 400 code 6: "Invalid data format" [rejected]`)
	h.Set(pipeline.HeaderStatus, "400")
	h.Set(pipeline.HeaderCode, "6")
	h.Set(pipeline.HeaderSubject, "ezssh.audit.sub-7.ssh")
	h.Set(pipeline.HeaderRoute, "global")
	h.Set(pipeline.HeaderLastFailure, "2026-03-04T10:00:00.5Z")
	a, err := decode("ezssh.dlq.global.sub-7.ssh", h, []byte(`{"secret":"event body"}`), 42)
	if err != nil {
		t.Fatal(err)
	}
	want := notify.Alert{
		Kind: notify.KindDeadLetter, Route: "global", Subscription: "sub-7", Reason: "rejected",
		Error:  `huntress: HEC replied 400 code 6: "Invalid data format" [rejected]`,
		Status: 400, Code: 6, HasCode: true, At: time.Date(2026, 3, 4, 10, 0, 0, 5e8, time.UTC), ID: "dlq-42",
	}
	if !a.At.Equal(want.At) {
		t.Errorf("At %v, want %v", a.At, want.At)
	}
	a.At = want.At
	if a != want {
		t.Errorf("got  %+v\nwant %+v", a, want)
	}

	// Headers missing: the subject still names the route and subscription.
	a, err = decode("ezssh.dlq.sub-route.sub-9.git", nats.Header{}, nil, 43)
	if err != nil || a.Route != "sub-route" || a.Subscription != "sub-9" || a.HasCode || a.Status != 0 {
		t.Errorf("bare dead letter: %+v, %v", a, err)
	}
}

func TestDecodeRouteEvent(t *testing.T) {
	code9 := 9
	at := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ev   pipeline.RouteEvent
		want notify.Alert
	}{
		{pipeline.RouteEvent{Route: "global", Destination: "https://hec.example.com/services/collector", State: pipeline.StateOpened, Class: "misconfigured",
			Error: `huntress: HEC replied 401: "Invalid token" [misconfigured]`, Status: 401, At: at, Instance: "a"},
			notify.Alert{Kind: notify.KindOpened, Route: "global", Destination: "https://hec.example.com/services/collector", Class: "misconfigured",
				Error: `huntress: HEC replied 401: "Invalid token" [misconfigured]`, Status: 401, At: at, ID: "route-5"}},
		{pipeline.RouteEvent{Route: "global", State: pipeline.StateOpened, Class: "retry", Error: "huntress: HEC replied 503 code 9: \"busy\" [retry]", Status: 503, Code: &code9, At: at},
			notify.Alert{Kind: notify.KindOpened, Route: "global", Class: "retry", Error: "huntress: HEC replied 503 code 9: \"busy\" [retry]", Status: 503, Code: 9, HasCode: true, At: at, ID: "route-5"}},
		{pipeline.RouteEvent{Route: "global", State: pipeline.StateRecovered, At: at},
			notify.Alert{Kind: notify.KindRecovered, Route: "global", At: at, ID: "route-5"}},
		{pipeline.RouteEvent{Route: "global", State: pipeline.StateAging, HeldEvents: 9, ExpiresAt: at.Add(time.Hour), At: at},
			notify.Alert{Kind: notify.KindAging, Route: "global", HeldEvents: 9, ExpiresAt: at.Add(time.Hour), At: at, ID: "route-5"}},
	} {
		b, _ := json.Marshal(tc.ev)
		a, err := decode(pipeline.RouteEventSubject(tc.ev.Route, tc.ev.State), nil, b, 5)
		if err != nil {
			t.Fatal(err)
		}
		if !a.At.Equal(tc.want.At) || !a.ExpiresAt.Equal(tc.want.ExpiresAt) {
			t.Errorf("times %v %v", a.At, a.ExpiresAt)
		}
		a.At, a.ExpiresAt = tc.want.At, tc.want.ExpiresAt
		if a != tc.want {
			t.Errorf("got  %+v\nwant %+v", a, tc.want)
		}
	}
	for _, bad := range []struct {
		subject string
		data    string
	}{
		{"ezssh.route.global.opened", "not json"},
		{"ezssh.route.global.exploded", `{"route":"global","state":"exploded"}`},
		{"ezssh.other.x", `{}`},
	} {
		if _, err := decode(bad.subject, nil, []byte(bad.data), 1); !errors.Is(err, errUndecodable) {
			t.Errorf("decode(%s, %s) = %v, want errUndecodable", bad.subject, bad.data, err)
		}
	}
}
