package pipeline

import (
	"strconv"
	"strings"
)

// ackInfo reads the delivery count and the stream sequence from a JetStream
// message's reply subject,
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
//	$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>.… (newer servers)
//
// without allocating, which jetstream.Msg.Metadata cannot: admit needs only
// these two for every message. ok is false for any other form.
func ackInfo(reply string) (delivered, streamSeq uint64, ok bool) {
	const prefix = "$JS.ACK."
	if !strings.HasPrefix(reply, prefix) {
		return 0, 0, false
	}
	var at int // index of the delivered token
	switch n := strings.Count(reply, ".") + 1; {
	case n == 9:
		at = 4
	case n >= 11:
		at = 6
	default:
		return 0, 0, false
	}
	rest := reply[len(prefix):]
	for range at - 2 {
		rest = rest[strings.IndexByte(rest, '.')+1:]
	}
	d, rest, _ := strings.Cut(rest, ".")
	s, _, _ := strings.Cut(rest, ".")
	delivered, err1 := strconv.ParseUint(d, 10, 64)
	streamSeq, err2 := strconv.ParseUint(s, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return delivered, streamSeq, true
}
