package natsconn

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEnsureKeyValue: a user that may create the bucket's stream but not
// update it creates a missing bucket and opens a bucket that is already
// right; changing a bucket takes a user that may update it.
func TestEnsureKeyValue(t *testing.T) {
	url := startServer(t, &server.Options{Users: []*server.User{
		{Username: "admin", Password: "admin-pw"},
		{Username: "limited", Password: "limited-pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{"$JS.API.INFO", "$JS.API.STREAM.INFO.KV_B", "$JS.API.STREAM.CREATE.KV_B"}},
		}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js := func(user, password string) jetstream.JetStream {
		o := Options{URL: url, User: user, Password: password}
		nc, err := o.Connect(ctx, "natsconn-test", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	limited, admin := js("limited", "limited-pw"), js("admin", "admin-pw")
	cfg := jetstream.KeyValueConfig{Bucket: "B", Description: "test", History: 1, TTL: time.Hour, MaxValueSize: 1024, Storage: jetstream.FileStorage}

	for _, step := range []string{"create", "open as it is"} {
		if _, err := EnsureKeyValue(ctx, limited, cfg); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	changed := cfg
	changed.History = 5
	kv, err := EnsureKeyValue(ctx, admin, changed)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(ctx); err != nil || st.History() != 5 {
		t.Fatalf("update: history %v (%v), want 5", st, err)
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if _, err := EnsureKeyValue(short, limited, cfg); err == nil {
		t.Fatal("a user without the update permission changed the bucket")
	}
}
