package routes

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestSealOpenRoundTrip(t *testing.T) {
	key := testKey(7)
	const tok = "0b9f2c6e-1d2a-4c4f-9a77-53c1f0e8d2ab"
	sealed, err := Seal(key, tok)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, SealedPrefix) || strings.Contains(sealed, tok) {
		t.Fatalf("sealed value %q: want the prefix and no token", sealed)
	}
	again, _ := Seal(key, tok)
	if again == sealed {
		t.Fatal("two seals of the same token are equal: the nonce is not random")
	}
	if s, _ := Seal(key, sealed); s != sealed {
		t.Fatal("sealing a sealed value changed it")
	}
	got, err := Open(key, sealed)
	if err != nil || got != tok {
		t.Fatalf("Open = %q, %v; want the token", got, err)
	}
}

func TestOpenWrongKey(t *testing.T) {
	sealed, _ := Seal(testKey(1), "the-token-the-token")
	_, err := Open(testKey(2), sealed)
	if !errors.Is(err, ErrUnseal) {
		t.Fatalf("err = %v, want ErrUnseal", err)
	}
	_, err = Open(nil, sealed)
	if !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), KeyFileEnv) {
		t.Fatalf("no key: err = %v, want ErrNoKey naming %s", err, KeyFileEnv)
	}
	if _, err := Open([]byte("short"), sealed); !errors.Is(err, ErrBadKey) {
		t.Fatalf("short key: err = %v, want ErrBadKey", err)
	}
}

func TestOpenTampered(t *testing.T) {
	key := testKey(3)
	sealed, _ := Seal(key, "the-token-the-token")
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, SealedPrefix))
	enc := func(b []byte) string { return SealedPrefix + base64.StdEncoding.EncodeToString(b) }
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return enc(b)
	}
	cases := map[string]string{
		"nonce":      flip(0),
		"ciphertext": flip(nonceSize + 1),
		"tag":        flip(len(raw) - 1),
		"truncated":  enc(raw[:len(raw)-1]),
		"too short":  enc(raw[:nonceSize+tagSize-1]),
		"not base64": SealedPrefix + "!!!",
		"empty":      SealedPrefix,
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Open(key, v); !errors.Is(err, ErrUnseal) {
				t.Fatalf("err = %v, want ErrUnseal", err)
			}
		})
	}
}

func TestOpenPlainPassthrough(t *testing.T) {
	for _, key := range [][]byte{nil, testKey(4)} {
		for _, v := range []string{"plain-token", "", "sealed:v2:whatever"} {
			got, err := Open(key, v)
			if err != nil || got != v {
				t.Fatalf("Open(%v, %q) = %q, %v; want it unchanged", key != nil, v, got, err)
			}
		}
	}
}

func TestParseKey(t *testing.T) {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i * 7)
	}
	good := map[string][]byte{
		"raw":            key,
		"hex":            []byte(hex.EncodeToString(key) + "\n"),
		"HEX":            []byte(strings.ToUpper(hex.EncodeToString(key))),
		"base64":         []byte(base64.StdEncoding.EncodeToString(key) + "\n"),
		"base64 raw":     []byte(base64.RawStdEncoding.EncodeToString(key)),
		"base64 url":     []byte(base64.URLEncoding.EncodeToString(key)),
		"base64 raw url": []byte(base64.RawURLEncoding.EncodeToString(key)),
	}
	dir := t.TempDir()
	for name, content := range good {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadKeyFile(p)
			if err != nil || !bytes.Equal(got, key) {
				t.Fatalf("ReadKeyFile = %x, %v; want the key", got, err)
			}
		})
	}
	secret := hex.EncodeToString(key)
	for name, content := range map[string]string{
		"short hex":    secret[:62],
		"31 bytes":     string(key[:31]),
		"base64 of 16": base64.StdEncoding.EncodeToString(key[:16]),
		"empty":        "",
		"odd":          secret[:63] + "z",
	} {
		t.Run("bad "+name, func(t *testing.T) {
			_, err := ParseKey([]byte(content))
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("err = %v, want ErrBadKey", err)
			}
			if content != "" && strings.Contains(err.Error(), content) {
				t.Fatal("the error repeats the key material")
			}
		})
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing key file is no error")
	}
}
