package routes

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// SealedPrefix starts a sealed token: "sealed:v1:" followed by the standard
// base64 of the 12-byte GCM nonce and the ciphertext (which ends with the
// 16-byte tag).
const SealedPrefix = "sealed:v1:"

// KeySize is the size of a secret key: AES-256.
const KeySize = 32

// KeyFileEnv is the environment variable naming the secret key file.
const KeyFileEnv = "FORWARDER_SECRET_KEY_FILE"

const (
	nonceSize = 12
	tagSize   = 16
)

// IsSealed reports whether value is a sealed token (starts with SealedPrefix).
func IsSealed(value string) bool { return strings.HasPrefix(value, SealedPrefix) }

// Seal encrypts token with key (KeySize bytes) using AES-256-GCM and a random
// nonce, and returns SealedPrefix + base64(nonce | ciphertext). Sealing an
// already sealed value returns it unchanged. The error, for a key of the
// wrong size, wraps ErrBadKey.
func Seal(key []byte, token string) (string, error) {
	if IsSealed(token) {
		return token, nil
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	buf := make([]byte, nonceSize, nonceSize+len(token)+tagSize)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails
	buf = aead.Seal(buf, buf[:nonceSize], []byte(token), nil)
	return SealedPrefix + base64.StdEncoding.EncodeToString(buf), nil
}

// Open returns the token of value: value itself when it is not sealed (plain
// values pass through, with or without a key), else the token sealed in it.
// For a sealed value, a nil key is an error wrapping ErrNoKey, and a value that
// does not open (wrong key, altered value, bad encoding) one wrapping ErrUnseal.
func Open(key []byte, value string) (string, error) {
	if !IsSealed(value) {
		return value, nil
	}
	if key == nil {
		return "", fmt.Errorf("%w: set %s to the key file the token was sealed with", ErrNoKey, KeyFileEnv)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	raw, err := base64.StdEncoding.DecodeString(value[len(SealedPrefix):])
	if err != nil || len(raw) < nonceSize+tagSize {
		return "", fmt.Errorf("%w: the sealed value is not valid base64 of nonce and ciphertext", ErrUnseal)
	}
	plain, err := aead.Open(nil, raw[:nonceSize], raw[nonceSize:], nil)
	if err != nil {
		return "", fmt.Errorf("%w (%s is not the key it was sealed with, or the value was altered): seal the token again with routes set", ErrUnseal, KeyFileEnv)
	}
	return string(plain), nil
}

// checkSealed checks the form of a sealed value without a key.
func checkSealed(value string) error {
	raw, err := base64.StdEncoding.DecodeString(value[len(SealedPrefix):])
	if err != nil || len(raw) < nonceSize+tagSize {
		return errors.New("starts with " + SealedPrefix + " but is not base64 of a nonce and a ciphertext")
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: the key is %d bytes, want %d", ErrBadKey, len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return cipher.NewGCM(block)
}

// ReadKeyFile reads a secret key from path. The file holds the 32 key bytes
// raw, as 64 hexadecimal characters, or as base64 (standard or URL alphabet,
// padded or not); surrounding white space is ignored for the text forms.
// Errors wrap ErrBadKey (or the file system's error) and never contain key
// material. Generate a key with: openssl rand -hex 32 > key
func ReadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("routes: secret key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("routes: secret key file %s: %w", path, err)
	}
	key, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: file %s", err, path)
	}
	return key, nil
}

// ParseKey decodes a secret key in one of the forms ReadKeyFile accepts.
func ParseKey(b []byte) ([]byte, error) {
	if len(b) == KeySize {
		return bytes.Clone(b), nil
	}
	s := string(bytes.TrimSpace(b))
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: want %d raw bytes, %d hex characters or base64 of %d bytes (e.g. openssl rand -hex 32)",
		ErrBadKey, KeySize, 2*KeySize, KeySize)
}
