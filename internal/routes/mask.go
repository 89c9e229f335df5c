package routes

import (
	"net/url"
	"unicode/utf8"
)

// maskMinLen is the shortest token of which Mask reveals anything.
const maskMinLen = 16

// Mask returns token for display: its first and last four characters around
// an ellipsis ("abcd…wxyz") when it has at least 16 characters, "****" when
// it is shorter (revealing 8 of fewer than 16 characters would reveal too
// much), and "" for an empty token. It never reveals more than 4+4
// characters.
func Mask(token string) string {
	n := utf8.RuneCountInString(token)
	switch {
	case n == 0:
		return ""
	case n < maskMinLen:
		return "****"
	}
	r := []rune(token)
	return string(r[:4]) + "…" + string(r[n-4:])
}

// MaskValue is Mask for a stored hec_token: a sealed value shows as
// "sealed:v1:…" with nothing of its ciphertext, since it is no help to a
// person; a plain one as Mask shows it.
func MaskValue(value string) string {
	if IsSealed(value) {
		return SealedPrefix + "…"
	}
	return Mask(value)
}

// Destination is a URL for people: its scheme, host and path, without user
// info, query or fragment, which could hold secrets. "(invalid URL)" when it
// does not parse.
func Destination(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// Host is the host (and port) of a URL, "" when it does not parse.
func Host(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
