package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryFlag keeps README.md true: every flag of the
// commands below, and its environment variable, must appear in it.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	flagLine := regexp.MustCompile(`^  (--?[a-z0-9-]+)(?:  \[\$([A-Z0-9_]+)\])?$`)
	for _, cmd := range [][]string{{"run", "--help"}, {"test-connection", "--help"}, {"demo", "--help"}, {"replay", "--help"}} {
		var out bytes.Buffer
		if err := run(context.Background(), cmd, &out, &out); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
		n := 0
		for _, line := range strings.Split(out.String(), "\n") {
			m := flagLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			n++
			if !bytes.Contains(readme, []byte("`"+m[1])) {
				t.Errorf("README.md does not document %s %s", cmd[0], m[1])
			}
			if m[2] != "" && !bytes.Contains(readme, []byte(m[2])) {
				t.Errorf("README.md does not mention %s (%s %s)", m[2], cmd[0], m[1])
			}
		}
		if n < 3 {
			t.Fatalf("%v --help listed %d flags; the parser is out of date:\n%s", cmd, n, out.String())
		}
	}
}
