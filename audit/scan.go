package audit

import (
	"unicode/utf8"

	"github.com/ezssh/siem-forwarder/internal/jsonscan"
)

// maxDepth bounds the nesting of arrays and objects, as encoding/json does, so
// a hostile body cannot exhaust the stack.
const maxDepth = 10000

// scanner is a validating JSON scanner over a byte slice: it checks syntax and
// UTF-8 in one pass, never decodes values and never allocates on success.
type scanner struct {
	b     []byte
	i     int
	depth int
}

// strPlain[c] is true for bytes that may appear in a JSON string unescaped
// and need no further check (printable ASCII other than '"' and '\\').
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// syntaxErr reports the byte at the current offset.
func (s *scanner) syntaxErr(what string) error {
	if s.i >= len(s.b) {
		return bodyError(ErrNotJSON, "not JSON: unexpected end of input")
	}
	c := s.b[s.i]
	if c >= utf8.RuneSelf {
		if r, size := utf8.DecodeRune(s.b[s.i:]); r == utf8.RuneError && size == 1 {
			return bodyError(ErrNotUTF8, "not UTF-8 at offset %d", s.i)
		}
		return bodyError(ErrNotJSON, "not JSON: unexpected non-ASCII character at offset %d %s", s.i, what)
	}
	return bodyError(ErrNotJSON, "not JSON: unexpected %q at offset %d %s", c, s.i, what)
}

// value scans one value starting at the current offset (after white space).
func (s *scanner) value() error {
	s.ws()
	if s.i >= len(s.b) {
		return s.syntaxErr("")
	}
	switch c := s.b[s.i]; c {
	case '{':
		return s.object()
	case '[':
		return s.array()
	case '"':
		_, err := s.str()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return s.number()
		}
		return s.syntaxErr("looking for a value")
	}
}

func (s *scanner) enter() error {
	s.depth++
	if s.depth > maxDepth {
		return bodyError(ErrNotJSON, "not JSON: nested deeper than %d at offset %d", maxDepth, s.i)
	}
	return nil
}

func (s *scanner) object() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.syntaxErr("looking for a field name")
		}
		if _, err := s.str(); err != nil {
			return err
		}
		if err := s.colon(); err != nil {
			return err
		}
		if err := s.value(); err != nil {
			return err
		}
		more, err := s.next('}')
		if err != nil || !more {
			s.depth--
			return err
		}
	}
}

func (s *scanner) array() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if err := s.value(); err != nil {
			return err
		}
		more, err := s.next(']')
		if err != nil || !more {
			s.depth--
			return err
		}
	}
}

// colon scans the ':' after a field name and the white space around it.
func (s *scanner) colon() error {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return s.syntaxErr("looking for ':'")
	}
	s.i++
	s.ws()
	return nil
}

// next scans the ',' or closing byte after a member or element. It reports
// whether another member follows; after a ',' white space is skipped.
func (s *scanner) next(closing byte) (bool, error) {
	s.ws()
	if s.i >= len(s.b) {
		return false, s.syntaxErr("")
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		s.ws()
		return true, nil
	case closing:
		s.i++
		return false, nil
	}
	return false, s.syntaxErr("after a value")
}

// str scans a string starting at its opening quote. It returns whether the
// string contains a backslash escape; the content is s.b[start+1 : s.i-1].
func (s *scanner) str() (escaped bool, err error) {
	s.i++ // '"'
	b := s.b
	for i := s.i; i < len(b); {
		if i+8 <= len(b) {
			// Skip the plain bytes before the first one that needs a look.
			m := jsonscan.Special(b[i:], true)
			if m == 0 {
				i += 8
				continue
			}
			i += jsonscan.First(m)
		}
		c := b[i]
		if strPlain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			s.i = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			n, ok := escapeLen(b[i:])
			if !ok {
				s.i = i
				return false, bodyError(ErrNotJSON, "not JSON: bad escape at offset %d", i)
			}
			i += n
		case c < 0x20:
			s.i = i
			return false, bodyError(ErrNotJSON, "not JSON: control character in a string at offset %d", i)
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				s.i = i
				return false, bodyError(ErrNotUTF8, "not UTF-8 at offset %d", i)
			}
			i += size
		}
	}
	s.i = len(b)
	return false, s.syntaxErr("")
}

// escapeLen returns the length of the escape sequence at the start of b.
func escapeLen(b []byte) (int, bool) {
	if len(b) < 2 {
		return 0, false
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, true
	case 'u':
		if len(b) < 6 {
			return 0, false
		}
		for _, h := range b[2:6] {
			if !isHex(h) {
				return 0, false
			}
		}
		return 6, true
	}
	return 0, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (s *scanner) literal(want string) error {
	if len(s.b)-s.i < len(want) || string(s.b[s.i:s.i+len(want)]) != want {
		return s.syntaxErr("in a literal")
	}
	s.i += len(want)
	return nil
}

func (s *scanner) number() error {
	b := s.b
	if b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(b) && b[s.i] == '0':
		s.i++
	case s.i < len(b) && b[s.i] >= '1' && b[s.i] <= '9':
		s.digits()
	default:
		return s.syntaxErr("in a number")
	}
	if s.i < len(b) && b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return s.syntaxErr("in a number")
		}
	}
	if s.i < len(b) && (b[s.i] == 'e' || b[s.i] == 'E') {
		s.i++
		if s.i < len(b) && (b[s.i] == '+' || b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return s.syntaxErr("in a number")
		}
	}
	return nil
}

// digits scans one or more digits and reports whether there was one.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// end checks that only white space follows the top-level value.
func (s *scanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return s.syntaxErr("after the top-level value")
	}
	return nil
}

// validJSONValue reports whether b is exactly one well-formed JSON value,
// valid UTF-8, with nothing after it.
func validJSONValue(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	s := scanner{b: b}
	return s.value() == nil && s.i == len(b)
}
