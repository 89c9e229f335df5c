package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ezssh/siem-forwarder/audit"
	"github.com/ezssh/siem-forwarder/internal/generate"
)

// repeatReader yields n copies of b.
type repeatReader struct {
	b byte
	n int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	m := min(len(p), r.n)
	for i := range p[:m] {
		p[i] = r.b
	}
	r.n -= m
	return m, nil
}

// A line far longer than an event is skipped to its end without being held
// in memory, and the lines after it are read.
func TestReadLineBoundsLongLines(t *testing.T) {
	in := io.MultiReader(strings.NewReader("first\n"), &repeatReader{b: 'x', n: 64 << 20}, strings.NewReader("\nthird\r\nlast"))
	r := bufio.NewReaderSize(in, maxLine)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	type line struct {
		text    string
		tooLong bool
		eof     bool
	}
	var got []line
	for {
		l, tooLong, err := readLine(r)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		got = append(got, line{string(l), tooLong, err != nil})
		if err != nil {
			break
		}
	}
	runtime.ReadMemStats(&after)
	want := []line{{"first", false, false}, {"", true, false}, {"third\r", false, false}, {"last", false, true}}
	if len(got) != len(want) {
		t.Fatalf("lines %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i+1, got[i], want[i])
		}
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("reading a 64 MiB line allocated %d bytes", alloc)
	}
}

// A line longer than an event but within the read buffer is refused by the
// event's own size limit, with its line number, and the file goes on.
func TestPublishNDJSONLineOverEventSize(t *testing.T) {
	url, js := server(t)
	g := generate.New(generate.Options{Seed: 2})
	good := func() string { b, _ := g.NextBody(); return string(b) }
	big := good()
	big = big[:len(big)-1] + `,"Padding":"` + strings.Repeat("x", audit.MaxEventSize+1-len(big)-len(`,"Padding":""`)) + `"}`
	if len(big) != audit.MaxEventSize+1 || len(big) > maxLine {
		t.Fatalf("built a line of %d bytes", len(big))
	}
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, []byte(good()+"\n"+big+"\n"+good()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(testContext(t), []string{"publish", "--nats-url", url, "--ensure-stream", "-f", file}, &stdout, &stderr)
	if !errors.Is(err, errBadLines) {
		t.Fatalf("run = %v, want errBadLines", err)
	}
	if got := stderr.String(); !strings.HasPrefix(got, "line 2: larger than 1048576 bytes") {
		t.Errorf("stderr = %q", got)
	}
	if got := stdout.String(); got != "published=2 bad=1\n" {
		t.Errorf("stdout = %q", got)
	}
	if n := streamMsgs(t, js); n != 2 {
		t.Errorf("stream holds %d messages, want 2", n)
	}
}
