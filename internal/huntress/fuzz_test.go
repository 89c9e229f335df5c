package huntress

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ezssh/siem-forwarder/internal/delivery"
)

// fuzzTokens are token shapes the reply fuzzer scrubs: Huntress's GUID, in
// both cases, and a Splunk-style 32-hex-digit token.
var fuzzTokens = []string{testToken, strings.ToLower(testToken), "0123456789abcdef0123456789ABCDEF"}

// FuzzReply feeds arbitrary HEC replies (status, Retry-After, body, read
// limit) to the reply parser. It must never panic; the class is one the
// pipeline knows (success only for 2xx); the event index names an event of
// the request or none; the Retry-After is capped; and no form of the token
// survives in the error text, the excerpt or the HEC text, even when the
// server echoes it whole, encoded or cut by the read limit.
func FuzzReply(f *testing.F) {
	seeds := []struct {
		status     int
		retryAfter string
		body       string
	}{
		{400, "", `{"text":"Invalid data format","code":6,"invalid-event-number":2}`},
		{400, "", `{"text":"No data","code":5}`},
		{400, "", `{"text":"Incorrect index","code":7}`},
		{400, "", `{"code":6,"invalid-event-number":-1}`},
		{400, "", `{"code":6,"invalid-event-number":99999999999999999999}`},
		{400, "", `{"code":1e3}`},
		{400, "", `{"code":"6"}`},
		{400, "", `[{"code":6}]`},
		{401, "", "invalid token: Splunk " + testToken},
		{401, "", `{"text":"Invalid token ` + testToken + `","code":4}`},
		{403, "", `{"text":"Token disabled","code":1}`},
		{404, "", `<html>not found</html>`},
		{413, "", `Content-Length of 2000000 too large (maximum is 1000000)`},
		{429, "120", `{"text":"HEC queue is at capacity","code":26}`},
		{503, "Wed, 21 Oct 2015 07:28:00 GMT", `{"text":"Server is busy","code":9}`},
		{503, "-5", ""},
		{503, "99999999999999999999", "busy"},
		{500, "", "\xff\xfe" + testToken[:10]},
		{302, "", ""},
		{200, "", `{"text":"Success","code":0}`},
		{0, "", ""},
		{999, "", "\x00\n\r\t\"\\"},
		{-1, "", `{"text":"` + strings.Repeat("é", 200) + `"}`},
	}
	for i, s := range seeds {
		f.Add(s.status, s.retryAfter, []byte(s.body), uint16(0), uint8(i), uint8(i))
	}
	f.Add(401, "", []byte("bad: "+testToken), uint16(12), uint8(1), uint8(0))
	f.Add(400, "", []byte(`{"text":"`+testToken+`","code":6}`), uint16(20), uint8(4), uint8(0))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte, limit uint16, n, tok uint8) {
		token := fuzzTokens[int(tok)%len(fuzzTokens)]
		scrub := newScrubber(token)
		maxReply := int64(limit)
		if maxReply == 0 {
			maxReply = DefaultMaxResponseBytes
		}
		data, truncated := readReply(bytes.NewReader(body), maxReply)
		if int64(len(data)) > maxReply || truncated != (int64(len(body)) > maxReply) {
			t.Fatalf("readReply kept %d of %d bytes (truncated %v) with limit %d", len(data), len(body), truncated, maxReply)
		}
		e := replyError(scrub, status, retryAfter, data, truncated, int(n), now)

		switch success := status >= 200 && status < 300; {
		case success && e.Class != 0:
			t.Errorf("status %d: class %v, want success", status, e.Class)
		case !success && e.Class.String() == "unknown":
			t.Errorf("status %d: class %d is not a delivery class", status, e.Class)
		}
		if e.Status != status {
			t.Errorf("Status = %d, want %d", e.Status, status)
		}
		if e.InvalidEvent < -1 || e.InvalidEvent >= int(n) {
			t.Errorf("InvalidEvent = %d for a request of %d events", e.InvalidEvent, n)
		}
		if e.RetryAfterDur < 0 || e.RetryAfterDur > maxRetryAfter {
			t.Errorf("RetryAfter = %v", e.RetryAfterDur)
		}
		if len(e.Excerpt) > maxExcerpt || !utf8.ValidString(e.Excerpt) {
			t.Errorf("Excerpt of %d bytes, valid UTF-8 %v", len(e.Excerpt), utf8.ValidString(e.Excerpt))
		}
		msg := e.Error()
		if strings.ContainsAny(msg, "\r\n") || !utf8.ValidString(msg) {
			t.Errorf("Error() is not one line of UTF-8: %q", msg)
		}
		for _, form := range scrub.forms {
			for what, s := range map[string]string{"Error()": msg, "Excerpt": e.Excerpt, "Text": e.Text} {
				if strings.Contains(s, form) {
					t.Fatalf("%s holds the token (form %q): %q", what, form, s)
				}
			}
		}
		// What the client does with the class must not depend on the
		// body when the status alone decides.
		if status != http.StatusBadRequest && !(status >= 200 && status < 300) && e.Class != classify(status, 0, false) {
			t.Errorf("status %d: class %v depends on the body (%v without one)", status, e.Class, classify(status, 0, false))
		}
	})
}

// FuzzEnvelope checks that for any event body that is JSON and any time an
// event can carry (years 1 to 9999), the envelope is valid JSON whose
// "event" is the body byte for byte, whose "time" is the event's time in
// milliseconds, and whose other fields hold the configured strings.
func FuzzEnvelope(f *testing.F) {
	bodies := []string{
		string(sampleEvent(1)),
		`{}`, `1`, `"x"`, `null`, `[]`, ` {"a" : [1, 2.5e3, {"b":null}]} `, "\t{\"a\":\"\\u2028\\ud800\"}\n",
		`{"EventType":"EZSSH_SSH","Note":"<b>&amp;</b>","Raw":"` + "\xff" + `"}`,
	}
	times := []int64{0, 1732680000123, -1, -1500, -1001, -62135596800000, 253402300799999, 1}
	for i, b := range bodies {
		f.Add([]byte(b), times[i%len(times)], "fwd-1", "ezssh", "ezssh:audit", "")
	}
	f.Add([]byte(`{}`), int64(-1), `h"1\`, "src\n\u2028", "st\x00", "main\xff")
	f.Fuzz(func(t *testing.T, body []byte, ms int64, host, source, sourceType, index string) {
		if !json.Valid(body) {
			return
		}
		// RFC 3339 years 0001–9999, the range of a RequestDate.
		const minMs, maxMs = -62135596800000, 253402300799999
		ms = minMs + int64(uint64(ms-minMs)%uint64(maxMs-minMs+1))
		at := time.UnixMilli(ms)
		if at.IsZero() {
			return // a zero time means now
		}
		env := newEnvelope(host, source, sourceType, index)
		got := env.append([]byte("prefix"), delivery.Event{Time: at, Body: body})
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("AppendEnvelope lost what dst held: %q", got)
		}
		got = got[len("prefix"):]
		if !json.Valid(got) {
			t.Fatalf("envelope is not valid JSON: %q", got)
		}
		if !bytes.HasSuffix(got, append(append([]byte(`"event":`), body...), '}')) {
			t.Fatalf("envelope does not end with the body byte for byte: %q", got)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(got, &fields); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"host": host, "source": source, "sourcetype": sourceType}
		if index != "" {
			want["index"] = index
		}
		if len(fields) != len(want)+2 {
			t.Errorf("envelope has fields %v", keys(fields))
		}
		for k, v := range want {
			var s string
			if err := json.Unmarshal(fields[k], &s); err != nil || s != string([]rune(v)) {
				t.Errorf("%s = %s, want %q", k, fields[k], v)
			}
		}
		var gotEv, wantEv bytes.Buffer
		if json.Compact(&gotEv, fields["event"]) != nil || json.Compact(&wantEv, body) != nil || gotEv.String() != wantEv.String() {
			t.Errorf("event = %s, want %s", fields["event"], body)
		}
		if got, want := epochMillis(t, string(fields["time"])), at.UnixMilli(); got != want {
			t.Errorf("time %s is %d ms, want %d (%s)", fields["time"], got, want, at.UTC().Format(time.RFC3339Nano))
		}
	})
}

// epochMillis reads a HEC time, seconds with a three-digit fraction, as
// milliseconds.
func epochMillis(t *testing.T, s string) int64 {
	t.Helper()
	neg := strings.HasPrefix(s, "-")
	sec, frac, ok := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	n, err1 := strconv.ParseInt(sec, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if !ok || len(frac) != 3 || err1 != nil || err2 != nil {
		t.Fatalf("time %q is not seconds.milliseconds", s)
	}
	if neg {
		return -(n*1000 + f)
	}
	return n*1000 + f
}

func keys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
