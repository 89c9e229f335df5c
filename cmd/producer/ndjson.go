package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ezssh/siem-forwarder/audit"
)

// maxLine bounds one NDJSON line: the largest event plus room for white
// space and a CRLF. A longer line is reported as bad, not read into memory.
const maxLine = audit.MaxEventSize + 4<<10

// errBadLines is returned when some lines were not published.
var errBadLines = errors.New("some lines were not published")

// publishNDJSON publishes every non-blank line of in as one event body,
// reporting each bad line on stderr and a summary on stdout.
func publishNDJSON(ctx context.Context, p *audit.Publisher, in io.Reader, stdout, stderr io.Writer) error {
	r := bufio.NewReaderSize(in, maxLine)
	published, bad := 0, 0
	for n := 1; ; n++ {
		line, tooLong, err := readLine(r)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("line %d: %w", n, err)
		}
		eof := err != nil
		switch body := bytes.Trim(line, " \t\r\n"); {
		case tooLong:
			bad++
			fmt.Fprintf(stderr, "line %d: longer than %d bytes\n", n, maxLine)
		case len(body) == 0:
		default:
			if perr := p.PublishRawAsync(ctx, bytes.Clone(body)); perr != nil {
				if !errors.Is(perr, audit.ErrInvalid) {
					return fmt.Errorf("line %d: %w", n, perr)
				}
				bad++
				fmt.Fprintf(stderr, "line %d: %s\n", n, reason(perr))
				continue
			}
			published++
		}
		if eof {
			break
		}
	}
	if err := p.Flush(ctx); err != nil {
		var ae *audit.AsyncError
		if !errors.As(err, &ae) {
			return err
		}
		published -= ae.Failed
		for _, e := range ae.Errors {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintf(stdout, "published=%d bad=%d failed=%d\n", published, bad, ae.Failed)
		return err
	}
	fmt.Fprintf(stdout, "published=%d bad=%d\n", published, bad)
	if bad > 0 {
		return fmt.Errorf("%d bad lines: %w", bad, errBadLines)
	}
	return nil
}

// readLine reads one line without its newline. A line longer than the
// reader's buffer is skipped to its end and reported with tooLong. err is
// io.EOF after the last line.
func readLine(r *bufio.Reader) (line []byte, tooLong bool, err error) {
	line, err = r.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		tooLong = true
		_, err = r.ReadSlice('\n')
	}
	if tooLong {
		line = nil
	}
	return bytes.TrimSuffix(line, []byte("\n")), tooLong, err
}

// reason is the short form of a validation error: the field and why.
func reason(err error) string {
	var ve *audit.ValidationError
	if errors.As(err, &ve) {
		if ve.Field == "" {
			return ve.Reason
		}
		return ve.Field + ": " + ve.Reason
	}
	return err.Error()
}
