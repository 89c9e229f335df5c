package huntress

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

func TestConfigDefaults(t *testing.T) {
	got, err := Config{URL: "https://hec.huntress.io/services/collector", Token: testToken}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	want := Config{
		URL:              "https://hec.huntress.io/services/collector/event",
		Token:            testToken,
		AuthScheme:       "Splunk",
		Host:             host,
		Source:           "ezssh",
		SourceType:       "ezssh:audit",
		GzipThreshold:    1024,
		GzipLevel:        gzip.BestSpeed,
		ConnectTimeout:   5 * time.Second,
		Timeout:          30 * time.Second,
		MaxResponseBytes: 64 << 10,
		UserAgent:        "ezssh-siem-forwarder",
	}
	if got != want { // Config is comparable
		t.Errorf("defaults:\n got %s %+v\nwant %+v", got.URL, fields(got), fields(want))
	}
}

func TestNormaliseURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://hec.huntress.io", "https://hec.huntress.io/services/collector/event"},
		{"https://hec.huntress.io/", "https://hec.huntress.io/services/collector/event"},
		{"https://hec.huntress.io/services/collector", "https://hec.huntress.io/services/collector/event"},
		{"https://hec.huntress.io/services/collector/", "https://hec.huntress.io/services/collector/event"},
		{"https://hec.huntress.io/services/collector/event", "https://hec.huntress.io/services/collector/event"},
		{"https://splunk:8088/prefix/services/collector", "https://splunk:8088/prefix/services/collector/event"},
		{"https://hec.example.com/custom/path", "https://hec.example.com/custom/path"},
		{"https://hec.example.com/services/collector/event/1.0", "https://hec.example.com/services/collector/event/1.0"},
		{"  https://hec.huntress.io/services/collector\n", "https://hec.huntress.io/services/collector/event"},
		{"https://hec.example.com?x=1", "https://hec.example.com/services/collector/event?x=1"},
	} {
		u, err := normaliseURL(tc.in)
		if err != nil {
			t.Errorf("normaliseURL(%q): %v", tc.in, err)
			continue
		}
		if u.String() != tc.want {
			t.Errorf("normaliseURL(%q) = %q, want %q", tc.in, u.String(), tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Config{URL: "https://hec.huntress.io/services/collector", Token: testToken}
	for _, tc := range []struct {
		name     string
		edit     func(*Config)
		wantErr  string // substring; "" means valid
		insecure bool
	}{
		{"valid", func(*Config) {}, "", false},
		{"no url", func(c *Config) { c.URL = "" }, "URL is empty", false},
		{"no token", func(c *Config) { c.Token = "" }, "Token is empty: copy the HTTP Event Collector Token", false},
		{"token with newline", func(c *Config) { c.Token += "\n" }, "trailing newline", false},
		{"bad scheme", func(c *Config) { c.URL = "ftp://hec.huntress.io" }, "scheme must be https://", false},
		{"no host", func(c *Config) { c.URL = "https:///services/collector" }, "no host", false},
		{"userinfo", func(c *Config) { c.URL = "https://u:p@hec.huntress.io" }, "remove it", false},
		{"bad auth scheme", func(c *Config) { c.AuthScheme = "Basic" }, `AuthScheme "Basic" is not supported`, false},
		{"bearer lower case", func(c *Config) { c.AuthScheme = "bearer" }, "", false},
		{"bad gzip level", func(c *Config) { c.GzipLevel = 42 }, "GzipLevel 42", false},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "Timeout -1s is negative", false},
		{"negative connect timeout", func(c *Config) { c.ConnectTimeout = -time.Second }, "ConnectTimeout -1s is negative", false},
		{"negative max response", func(c *Config) { c.MaxResponseBytes = -1 }, "MaxResponseBytes -1", false},
		{"insecure skip verify", func(c *Config) { c.TLS = &tls.Config{InsecureSkipVerify: true} }, "RootCAs", false},
		{"custom CA", func(c *Config) { c.TLS = &tls.Config{ServerName: "x"} }, "", false},
		{"http remote", func(c *Config) { c.URL = "http://hec.huntress.io/services/collector" }, "use https:// or pass --allow-insecure-http", true},
		{"http remote ip", func(c *Config) { c.URL = "http://10.0.0.1:8088" }, "use https:// or pass --allow-insecure-http", true},
		{"http remote allowed", func(c *Config) { c.URL = "http://hec.example.com"; c.AllowInsecureHTTP = true }, "", false},
		{"http localhost", func(c *Config) { c.URL = "http://localhost:8088" }, "", false},
		{"http 127/8", func(c *Config) { c.URL = "http://127.3.4.5:8088" }, "", false},
		{"http ::1", func(c *Config) { c.URL = "http://[::1]:8088" }, "", false},
		{"http localhost.evil", func(c *Config) { c.URL = "http://localhost.evil.com" }, "use https://", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want error containing %q", err, tc.wantErr)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error does not wrap ErrInvalidConfig: %v", err)
			}
			if errors.Is(err, ErrInsecureURL) != tc.insecure {
				t.Errorf("errors.Is(err, ErrInsecureURL) = %v, want %v", !tc.insecure, tc.insecure)
			}
			if _, err := New(cfg); err == nil {
				t.Error("New accepted a config Validate refused")
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Config{AuthScheme: "Basic"}.Validate()
	for _, want := range []string{"URL is empty", "Token is empty", "AuthScheme"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestConfigNeverShowsToken(t *testing.T) {
	cfgs := []Config{
		{URL: "https://hec.huntress.io/services/collector", Token: testToken},
		{URL: "https://hec.huntress.io/services/collector?token=" + testToken, Token: testToken, AuthScheme: "Basic"},
		{URL: "http://hec.example.com/" + testToken, Token: testToken},
		{URL: "ftp://" + testToken, Token: testToken},
		{URL: "https://x:" + testToken + "@hec.example.com", Token: testToken},
	}
	for _, cfg := range cfgs {
		texts := []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)}
		if err := cfg.Validate(); err != nil {
			texts = append(texts, err.Error())
		}
		for _, s := range texts {
			if strings.Contains(s, testToken) {
				t.Errorf("token leaked: %s", s)
			}
		}
	}
}

// fields lists a Config's fields without its String method (which hides them).
func fields(c Config) any {
	type plain Config
	return plain(c)
}
