package audit_test

import (
	"strings"

	"github.com/ezssh/siem-forwarder/audit"
)

// bodyCase is one sample body with its expected verdict. field names the
// field Inspect and Validate must blame ("" for a body-level failure, which
// sentinel then names). Cases with goOnly set are outside what JSON Schema
// can express (UTF-8, size) and are skipped by the schema test.
type bodyCase struct {
	name     string
	body     string
	valid    bool
	field    string
	sentinel error
	goOnly   bool
}

const good = `{"EventType":"EZSSH_SSH","RequestDate":"2025-03-14T09:26:53.589Z","ActionPerformed":"Certificate Issued",` +
	`"UserPublicKey":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk alice@laptop","Certificate":"ssh-ed25519-cert-v01@openssh.com AAAA",` +
	`"RequestorFriendlyName":"Alice Martin","EventId":"01939f5e-7c1a-7b3e-9f0a-2d4c6e8a1b3c","SubscriptionId":"sub-3f9a2c41","Criticality":"Medium"}`

// with returns good with field set to the raw JSON value v, or removed when
// v is "".
func with(field, v string) string {
	i := strings.Index(good, `"`+field+`":`)
	if i < 0 {
		return good[:len(good)-1] + `,"` + field + `":` + v + `}`
	}
	j := i + len(field) + 3
	end := j + 1
	for good[end] != '"' {
		end++
	}
	end++
	if v != "" {
		return good[:j] + v + good[end:]
	}
	if good[end] == ',' {
		end++
	} else if good[i-1] == ',' {
		i--
	}
	return good[:i] + good[end:]
}

func bodyCases() []bodyCase {
	return []bodyCase{
		{name: "good", body: good, valid: true},
		{name: "minimal", body: `{"EventId":"x","EventType":"EZSSH_GIT","SubscriptionId":"a","RequestDate":"2025-01-02T03:04:05Z"}`, valid: true},
		{name: "white space everywhere", body: " \n{ \"EventId\" : \"x\" ,\t\"EventType\":\"EZSSH_GIT\",\r\n\"SubscriptionId\":\"a\", \"RequestDate\" : \"2025-01-02T03:04:05+01:00\" } \n", valid: true},
		{name: "unknown fields of every type", body: with("Extra", `{"a":[1,-2.5e-3,true,false,null,"\ud83d\ude00"],"b":{}}`), valid: true},
		{name: "escaped values", body: with("SubscriptionId", `"sub-\u0041\/b"`), valid: true},
		{name: "escaped key", body: strings.Replace(with("EventId", ""), `{`, `{"Event\u0049d":"x",`, 1), valid: true},
		{name: "empty Certificate", body: with("Certificate", `""`), valid: true},
		{name: "no Criticality", body: with("Criticality", ""), valid: true},
		{name: "duplicate key, last wins", body: strings.Replace(with("EventType", `"bad"`), `{`, `{"EventType":"EZSSH_SSH",`, 1), field: "EventType"},
		{name: "future event type", body: with("EventType", `"EZSSH_FOO_BAR"`), valid: true},
		{name: "non-ASCII subscription", body: with("SubscriptionId", `"kunde-münchen"`), valid: true},
		{name: "offset time, nanoseconds", body: with("RequestDate", `"2025-03-14T09:26:53.123456789-05:30"`), valid: true},

		{name: "missing EventId", body: with("EventId", ""), field: "EventId"},
		{name: "empty EventId", body: with("EventId", `""`), field: "EventId"},
		{name: "missing EventType", body: with("EventType", ""), field: "EventType"},
		{name: "lower-case EventType", body: with("EventType", `"EZSSH_ssh"`), field: "EventType"},
		{name: "EventType without prefix", body: with("EventType", `"SSH"`), field: "EventType"},
		{name: "EventType only the prefix", body: with("EventType", `"EZSSH_"`), field: "EventType"},
		{name: "missing SubscriptionId", body: with("SubscriptionId", ""), field: "SubscriptionId"},
		{name: "SubscriptionId with dot", body: with("SubscriptionId", `"a.b"`), field: "SubscriptionId"},
		{name: "SubscriptionId with wildcard", body: with("SubscriptionId", `"a*"`), field: "SubscriptionId"},
		{name: "SubscriptionId with space", body: with("SubscriptionId", `"a b"`), field: "SubscriptionId"},
		{name: "SubscriptionId with escaped newline", body: with("SubscriptionId", `"a\nb"`), field: "SubscriptionId"},
		{name: "SubscriptionId too long", body: with("SubscriptionId", `"`+strings.Repeat("s", 129)+`"`), field: "SubscriptionId"},
		{name: "SubscriptionId not a string", body: with("SubscriptionId", `42`), field: "SubscriptionId"},
		{name: "missing RequestDate", body: with("RequestDate", ""), field: "RequestDate"},
		{name: "RequestDate without zone", body: with("RequestDate", `"2025-03-14T09:26:53"`), field: "RequestDate"},
		{name: "RequestDate with space", body: with("RequestDate", `"2025-03-14 09:26:53Z"`), field: "RequestDate"},
		{name: "RequestDate day out of range", body: with("RequestDate", `"2025-02-30T09:26:53Z"`), field: "RequestDate"},
		{name: "RequestDate leap second", body: with("RequestDate", `"2025-12-31T23:59:60Z"`), field: "RequestDate"},
		{name: "RequestDate comma fraction", body: with("RequestDate", `"2025-03-14T09:26:53,5Z"`), field: "RequestDate"},
		{name: "RequestDate offset 24h", body: with("RequestDate", `"2025-03-14T09:26:53+24:00"`), field: "RequestDate"},
		{name: "RequestDate epoch number", body: with("RequestDate", `1741944413`), field: "RequestDate"},
		{name: "bad Criticality", body: with("Criticality", `"Critical"`), field: "Criticality"},
		{name: "null Criticality", body: with("Criticality", `null`), field: "Criticality"},
		{name: "Certificate not a string", body: with("Certificate", `{}`), field: "Certificate"},

		{name: "empty", body: ``, sentinel: audit.ErrNotJSON},
		{name: "array", body: `[` + good + `]`, sentinel: audit.ErrNotObject},
		{name: "string", body: `"x"`, sentinel: audit.ErrNotObject},
		{name: "null", body: `null`, sentinel: audit.ErrNotObject},
		{name: "trailing garbage", body: good + `x`, sentinel: audit.ErrNotJSON},
		{name: "two objects", body: good + good, sentinel: audit.ErrNotJSON},
		{name: "bad escape", body: with("Extra", `"\x"`), sentinel: audit.ErrNotJSON},
		{name: "short unicode escape", body: with("Extra", `"\u12"`), sentinel: audit.ErrNotJSON},
		{name: "unclosed nested array", body: with("Extra", `[[1,2]`), sentinel: audit.ErrNotJSON},
		{name: "trailing comma", body: with("Extra", `[1,]`), sentinel: audit.ErrNotJSON},
		{name: "leading zero", body: with("Extra", `01`), sentinel: audit.ErrNotJSON},
		{name: "bare fraction", body: with("Extra", `1.`), sentinel: audit.ErrNotJSON},
		{name: "single quotes", body: with("Extra", `'x'`), sentinel: audit.ErrNotJSON},
		{name: "raw newline in string", body: with("Extra", "\"a\nb\""), sentinel: audit.ErrNotJSON},
		{name: "unclosed object", body: good[:len(good)-1], sentinel: audit.ErrNotJSON},
		{name: "missing colon", body: `{"EventId" "x"}`, sentinel: audit.ErrNotJSON},
		{name: "literal typo", body: with("Extra", `tru`), sentinel: audit.ErrNotJSON},

		{name: "not UTF-8 in a value", body: with("Extra", "\"\xff\xfe\""), sentinel: audit.ErrNotUTF8, goOnly: true},
		{name: "overlong UTF-8", body: with("Extra", "\"\xc0\xaf\""), sentinel: audit.ErrNotUTF8, goOnly: true},
		{name: "too large", body: with("Extra", `"`+strings.Repeat("x", audit.MaxEventSize)+`"`), sentinel: audit.ErrTooLarge, goOnly: true},
	}
}
