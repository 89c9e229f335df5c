package pipeline

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// The error text a dead letter keeps is bounded, whatever the size of the
// error, and stays valid UTF-8 where the cut falls inside a character.
func TestTruncateBoundsHeaderText(t *testing.T) {
	for _, s := range []string{
		strings.Repeat("x", 1<<20),
		strings.Repeat("é", 1000),
		"x" + strings.Repeat("日本", 300),
		strings.Repeat("🙂", 200),
	} {
		got := truncate(s, maxErrorHeader)
		if len(got) > maxErrorHeader+len("…") || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
			t.Errorf("truncate(%.20q…) = %d bytes, valid UTF-8 %v", s, len(got), utf8.ValidString(got))
		}
		if kept := strings.TrimSuffix(got, "…"); !strings.HasPrefix(s, kept) || len(kept) < maxErrorHeader-utf8.UTFMax {
			t.Errorf("truncate kept %d bytes that are not the start of the text", len(kept))
		}
	}
	if got := truncate("short é", maxErrorHeader); got != "short é" {
		t.Errorf("truncate(short) = %q", got)
	}
}
