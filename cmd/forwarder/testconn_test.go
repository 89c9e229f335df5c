package main

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ezssh/siem-forwarder/internal/cliflag"
	"github.com/ezssh/siem-forwarder/internal/huntress"
)

func TestTestConnectionCommand(t *testing.T) {
	const token = "tc-token-0123456789abcdef"
	srv := httptest.NewServer(huntress.NewCollector(huntress.CollectorOptions{Token: token}))
	defer srv.Close()

	tests := []struct {
		name    string
		args    []string
		wantErr error
		usage   bool
		want    string
	}{
		{"accepted", []string{"--hec-url", srv.URL, "--hec-token", token}, nil, false, "OK"},
		{"wrong token", []string{"--hec-url", srv.URL, "--hec-token", "wrong-token-0123456789"}, errTestFailed, false, "wrong-token"},
		{"wrong URL", []string{"--hec-url", srv.URL + "/nope", "--hec-token", token}, errTestFailed, false, "wrong-url"},
		{"unreachable", []string{"--hec-url", "http://127.0.0.1:1/services/collector", "--hec-token", token}, errTestFailed, false, "unreachable"},
		{"no token", []string{"--hec-url", srv.URL}, nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runTestConnection(context.Background(), tt.args, &out, &out)
			switch {
			case tt.usage:
				if !cliflag.IsUsage(err) {
					t.Fatalf("err = %v, want a usage error (exit 2)", err)
				}
			case !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want %v\n%s", err, tt.wantErr, out.String())
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("output %q does not mention %q", out.String(), tt.want)
			}
			if strings.Contains(out.String(), token) || strings.Contains(out.String(), "wrong-token-0123456789") {
				t.Error("the token appears in the output")
			}
		})
	}
}
