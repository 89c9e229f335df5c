package huntress

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

func TestAppendEnvelopeGolden(t *testing.T) {
	at := time.Unix(1732680000, 123_987_000) // the fraction is truncated to ms
	body := []byte(`{"EventType":"EZSSH_SSH", "Note":"<b>\u00e9</b>"}`)
	for _, tc := range []struct {
		name string
		cfg  Config
		ev   delivery.Event
		want string
	}{
		{
			name: "defaults",
			cfg:  Config{Host: "fwd-1"},
			ev:   delivery.Event{Time: at, Body: body},
			want: `{"time":1732680000.123,"host":"fwd-1","source":"ezssh","sourcetype":"ezssh:audit","event":{"EventType":"EZSSH_SSH", "Note":"<b>\u00e9</b>"}}`,
		},
		{
			name: "index and escaping",
			cfg:  Config{Host: `h"1\`, Source: "src\n", SourceType: "st", Index: "main"},
			ev:   delivery.Event{Time: time.Unix(1700000000, 5_000_000), Body: []byte(`{}`)},
			want: `{"time":1700000000.005,"host":"h\"1\\","source":"src\n","sourcetype":"st","index":"main","event":{}}`,
		},
		{
			name: "whole second",
			cfg:  Config{Host: "h"},
			ev:   delivery.Event{Time: time.Unix(1732680000, 0).In(time.FixedZone("X", 3600)), Body: []byte(`1`)},
			want: `{"time":1732680000.000,"host":"h","source":"ezssh","sourcetype":"ezssh:audit","event":1}`,
		},
		{
			name: "before 1970",
			cfg:  Config{Host: "h"},
			ev:   delivery.Event{Time: time.Unix(-2, 500_000_000), Body: []byte(`{}`)},
			want: `{"time":-1.500,"host":"h","source":"ezssh","sourcetype":"ezssh:audit","event":{}}`,
		},
		{
			name: "just before 1970",
			cfg:  Config{Host: "h"},
			ev:   delivery.Event{Time: time.Unix(-1, 999_000_000), Body: []byte(`{}`)},
			want: `{"time":-0.001,"host":"h","source":"ezssh","sourcetype":"ezssh:audit","event":{}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.URL, tc.cfg.Token = "https://hec.example.com", testToken
			c, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := c.AppendEnvelope([]byte("prefix"), tc.ev)
			if string(got) != "prefix"+tc.want {
				t.Errorf("AppendEnvelope:\n got %s\nwant prefix%s", got, tc.want)
			}
			if !json.Valid(got[len("prefix"):]) {
				t.Errorf("envelope is not valid JSON: %s", got)
			}
		})
	}
}

func TestAppendEnvelopeZeroTimeIsNow(t *testing.T) {
	c := newClient(t, "https://hec.example.com")
	before := time.Now().Add(-time.Millisecond)
	env := c.AppendEnvelope(nil, delivery.Event{Body: []byte(`{}`)})
	after := time.Now()
	var got struct {
		Time json.Number `json:"time"`
	}
	if err := json.Unmarshal(env, &got); err != nil {
		t.Fatal(err)
	}
	f, _ := strconv.ParseFloat(string(got.Time), 64)
	at := time.UnixMilli(int64(f * 1000))
	if at.Before(before.Truncate(time.Millisecond)) || at.After(after) {
		t.Errorf("time %s is not between %v and %v", got.Time, before, after)
	}
}

func TestAppendEnvelopeDoesNotAllocate(t *testing.T) {
	c := newClient(t, "https://hec.example.com")
	ev := delivery.Event{Time: time.Now(), Body: sampleEvent(1)}
	dst := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { dst = c.AppendEnvelope(dst[:0], ev) }); n != 0 {
		t.Errorf("AppendEnvelope allocates %v times per call", n)
	}
}

func TestEnvelopesConcatenateToAValidHECBody(t *testing.T) {
	c := newClient(t, "https://hec.example.com")
	var body []byte
	evs := sampleEvents(5)
	for _, ev := range evs {
		body = c.AppendEnvelope(body, ev)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for i := 0; dec.More(); i++ {
		var env struct {
			Event json.RawMessage `json:"event"`
		}
		if err := dec.Decode(&env); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(env.Event, evs[i].Body) {
			t.Errorf("event %d changed:\n got %s\nwant %s", i, env.Event, evs[i].Body)
		}
	}
}

func BenchmarkAppendEnvelope(b *testing.B) {
	c := newClient(b, "https://hec.example.com")
	ev := delivery.Event{Time: time.Now(), Body: sampleEvent(1)}
	dst := make([]byte, 0, 4096)
	b.SetBytes(int64(len(ev.Body)))
	b.ReportAllocs()
	for b.Loop() {
		dst = c.AppendEnvelope(dst[:0], ev)
	}
}
