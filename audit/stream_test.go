package audit_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/audit"
)

func TestEnsureStream(t *testing.T) {
	js := startJS(t)
	ctx := testContext(t)
	s, err := audit.EnsureStream(ctx, js, audit.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.Name != "EZSSH_AUDIT" || len(cfg.Subjects) != 1 || cfg.Subjects[0] != "ezssh.audit.>" ||
		cfg.Retention != jetstream.LimitsPolicy || cfg.Storage != jetstream.FileStorage ||
		cfg.MaxAge != 30*24*time.Hour || cfg.MaxBytes != -1 || cfg.Replicas != 1 ||
		cfg.Duplicates != 2*time.Minute || cfg.MaxMsgSize != 2<<20+64<<10 {
		t.Errorf("config = %+v", cfg)
	}
	if _, err := audit.EnsureStream(ctx, js, audit.StreamOptions{}); err != nil {
		t.Fatalf("second call: %v", err)
	}
	if _, err := audit.EnsureStream(ctx, js, audit.StreamOptions{MaxAge: 7 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 7*24*time.Hour {
		t.Errorf("MaxAge = %v after update, want 7 days", info.Config.MaxAge)
	}
	names := js.StreamNames(ctx)
	n := 0
	for range names.Name() {
		n++
	}
	if n != 1 {
		t.Errorf("%d streams, want 1", n)
	}
}
