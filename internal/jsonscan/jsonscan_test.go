package jsonscan

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// Special and First must find exactly the first byte a scanner has to look at: a
// miss would let a quote or a control character through, and a false alarm
// below it would misplace the scan.
func TestSpecialFindsTheFirstByteToLookAt(t *testing.T) {
	special := func(c byte, ascii bool) bool {
		return c == '"' || c == '\\' || c < 0x20 || ascii && c >= 0x80
	}
	check := func(w [8]byte) {
		t.Helper()
		for _, ascii := range []bool{true, false} {
			want := 8
			for i, c := range w {
				if special(c, ascii) {
					want = i
					break
				}
			}
			got := 8
			if m := Special(w[:], ascii); m != 0 {
				got = First(m)
			}
			if got != want {
				t.Fatalf("Special(%q, ascii=%v) flags byte %d first, want %d", w[:], ascii, got, want)
			}
		}
	}
	// Every byte value at every position, among neighbours at both ends of
	// the plain range.
	for _, fill := range []byte{' ', 'A', 0x7f, '!', '#', '[', ']', 0x80, 0xa2, 0xdc, 0xff} {
		for pos := range 8 {
			for c := range 256 {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				check(w)
			}
		}
	}
	// Pairs: every byte value above a special one, whose borrow carries up.
	for lo := range 8 {
		for hi := lo + 1; hi < 8; hi++ {
			for _, a := range []byte{0, 0x1f, '"', '\\', 0x80, 0xff} {
				for c := range 256 {
					w := [8]byte{'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'}
					w[lo], w[hi] = a, byte(c)
					check(w)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 1_000_000 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		check(w)
	}
	// Mostly plain words with a rare special byte, the common case.
	for range 1_000_000 {
		var w [8]byte
		for i := range w {
			w[i] = byte(0x20 + r.IntN(0x60))
		}
		if r.IntN(2) == 0 {
			w[r.IntN(8)] = []byte{'"', '\\', 0x0a, 0xc3, 0xff}[r.IntN(5)]
		}
		check(w)
	}
}
