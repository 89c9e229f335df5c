package routes

import "testing"

func TestMask(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"a", "****"},
		{"abcdefghijklmno", "****"},       // 15: nothing revealed
		{"abcdefghijklmnop", "abcd…mnop"}, // 16
		{"0b9f2c6e-1d2a-4c4f-9a77-53c1f0e8d2ab", "0b9f…d2ab"},
		{"ééééxxxxxxxxxxxxüüüü", "éééé…üüüü"},
	} {
		if got := Mask(tc.in); got != tc.want {
			t.Errorf("Mask(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	sealed, _ := Seal(testKey(1), "0b9f2c6e-1d2a-4c4f-9a77-53c1f0e8d2ab")
	if got := MaskValue(sealed); got != SealedPrefix+"…" {
		t.Errorf("MaskValue(sealed) = %q", got)
	}
	if got := MaskValue("0b9f2c6e-1d2a-4c4f-9a77-53c1f0e8d2ab"); got != "0b9f…d2ab" {
		t.Errorf("MaskValue(plain) = %q", got)
	}
}

func TestDestination(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@hec.example.com:8088/services/collector?token=x#f": "https://hec.example.com:8088/services/collector",
		"":   "(invalid URL)",
		":x": "(invalid URL)",
	} {
		if got := Destination(in); got != want {
			t.Errorf("Destination(%q) = %q, want %q", in, got, want)
		}
	}
}
