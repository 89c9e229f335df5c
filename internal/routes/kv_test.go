package routes

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ezssh/siem-forwarder/internal/embedded"
	"github.com/ezssh/siem-forwarder/internal/embedded/embeddedtest"
)

func startJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv := embeddedtest.Start(t, embedded.Config{})
	_, js := embeddedtest.Connect(t, srv.URL())
	return js
}

func putEntry(t *testing.T, kv jetstream.KeyValue, sub string, e *Entry) uint64 {
	t.Helper()
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(context.Background(), sub, b)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func TestEnsureBucket(t *testing.T) {
	js := startJS(t)
	ctx := context.Background()
	for range 2 { // idempotent
		kv, err := EnsureBucket(ctx, js, 0)
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Bucket() != Bucket || st.History() != 5 {
			t.Fatalf("bucket %s history %d", st.Bucket(), st.History())
		}
		info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
		if info.Config.Storage != jetstream.FileStorage || info.Config.MaxMsgSize != maxValueSize {
			t.Fatalf("storage %v, max value %d", info.Config.Storage, info.Config.MaxMsgSize)
		}
	}
}

// watchChanges runs Watch until the test ends and returns its Changes.
func watchChanges(t *testing.T, kv jetstream.KeyValue) <-chan Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan Change, 100)
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, kv, func(c Change) { ch <- c }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch returned %v after cancel; want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Watch did not return after cancel")
		}
	})
	return ch
}

func next(t *testing.T, ch <-chan Change) Change {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no Change within 10s")
	}
	return Change{}
}

func TestWatch(t *testing.T) {
	js := startJS(t)
	ctx := context.Background()
	kv, err := EnsureBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, b := validEntry(), validEntry()
	b.Enabled = false
	putEntry(t, kv, "sub-a", a)
	putEntry(t, kv, "sub-b", b)
	putEntry(t, kv, "sub-gone", a)
	if err := kv.Delete(ctx, "sub-gone"); err != nil {
		t.Fatal(err)
	}

	ch := watchChanges(t, kv)
	// Initial values: the latest of each key (a deleted key as a deletion),
	// then the marker.
	initial := map[string]Change{}
	for {
		c := next(t, ch)
		if c.InitialDone {
			break
		}
		initial[c.Subscription] = c
	}
	if c := initial["sub-a"]; c.Err != nil || c.Entry == nil || !c.Entry.Enabled || c.Entry.HECToken != testToken || c.Revision == 0 {
		t.Fatalf("sub-a: %+v", c)
	}
	if c := initial["sub-b"]; c.Err != nil || c.Entry == nil || c.Entry.Enabled {
		t.Fatalf("sub-b: %+v", c)
	}
	if c, ok := initial["sub-gone"]; ok && (!c.Deleted || c.Entry != nil) {
		t.Fatalf("sub-gone: %+v", c)
	}

	// Live: add, change, disable, malformed, invalid, delete, purge.
	c1 := validEntry()
	c1.UpdatedAt = time.Time{}
	rev := putEntry(t, kv, "sub-c", c1)
	c := next(t, ch)
	if c.Subscription != "sub-c" || c.Entry == nil || c.Err != nil || c.Deleted || c.Revision != rev {
		t.Fatalf("add: %+v", c)
	}
	if st := c.StartTime(); st.IsZero() || time.Since(st) > time.Minute {
		t.Fatalf("StartTime without updated_at = %v; want the revision's time", st)
	}
	if !initial["sub-a"].StartTime().Equal(a.UpdatedAt) {
		t.Fatalf("StartTime = %v; want updated_at", initial["sub-a"].StartTime())
	}

	c2 := validEntry()
	c2.HECToken = "another-token-0123456789"
	putEntry(t, kv, "sub-c", c2)
	if c := next(t, ch); c.Entry == nil || c.Entry.HECToken != "another-token-0123456789" {
		t.Fatalf("change token: %+v", c)
	}

	c2.Enabled = false
	putEntry(t, kv, "sub-c", c2)
	if c := next(t, ch); c.Entry == nil || c.Entry.Enabled {
		t.Fatalf("disable: %+v", c)
	}

	if _, err := kv.Put(ctx, "sub-c", []byte(`{"hec_token":"`+testToken+`",`)); err != nil {
		t.Fatal(err)
	}
	c = next(t, ch)
	if c.Subscription != "sub-c" || c.Entry != nil || !errors.Is(c.Err, ErrInvalid) || !strings.Contains(c.Err.Error(), "subscription sub-c") {
		t.Fatalf("malformed: %+v", c)
	}
	if strings.Contains(c.Err.Error(), testToken) {
		t.Fatal("the error holds the token")
	}

	bad := validEntry()
	bad.HECURL = "http://hec.example.com"
	putEntry(t, kv, "sub-c", bad)
	c = next(t, ch)
	if c.Entry == nil || !errors.Is(c.Err, ErrInvalid) || !strings.Contains(c.Err.Error(), "hec_url") {
		t.Fatalf("invalid: %+v", c)
	}

	putEntry(t, kv, "a.b", validEntry())
	c = next(t, ch)
	if c.Subscription != "a.b" || c.Entry != nil || !errors.Is(c.Err, ErrInvalid) {
		t.Fatalf("bad key: %+v", c)
	}

	if err := kv.Delete(ctx, "sub-c"); err != nil {
		t.Fatal(err)
	}
	if c := next(t, ch); c.Subscription != "sub-c" || !c.Deleted || c.Entry != nil || c.Err != nil {
		t.Fatalf("delete: %+v", c)
	}
	if err := kv.Purge(ctx, "sub-a"); err != nil {
		t.Fatal(err)
	}
	if c := next(t, ch); c.Subscription != "sub-a" || !c.Deleted {
		t.Fatalf("purge: %+v", c)
	}
	select {
	case c := <-ch:
		t.Fatalf("unexpected Change %+v", c)
	case <-time.After(100 * time.Millisecond):
	}

	cs, err := List(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range cs {
		keys = append(keys, c.Subscription)
	}
	if strings.Join(keys, ",") != "a.b,sub-b" {
		t.Fatalf("List = %v", keys)
	}
}

func TestWatchEmptyBucketAndCancel(t *testing.T) {
	js := startJS(t)
	kv, err := EnsureBucket(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	ch := watchChanges(t, kv)
	if c := next(t, ch); !c.InitialDone {
		t.Fatalf("first Change of an empty bucket: %+v; want InitialDone", c)
	}
	putEntry(t, kv, "sub-a", validEntry())
	if c := next(t, ch); c.Subscription != "sub-a" {
		t.Fatalf("%+v", c)
	}
	cs, err := List(context.Background(), kv)
	if err != nil || len(cs) != 1 {
		t.Fatalf("List = %v, %v", cs, err)
	}
}

// A slow callback holds updates back; nothing is lost and Watch still stops.
func TestWatchSlowCallback(t *testing.T) {
	js := startJS(t)
	ctx := context.Background()
	kv, err := EnsureBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	const n = 400 // more than the watcher's buffer of 256
	b, _ := validEntry().Encode()
	for i := range n {
		if _, err := kv.Put(ctx, "sub-"+strconv.Itoa(i), b); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	seen := 0
	done := make(chan error, 1)
	go func() {
		done <- Watch(wctx, kv, func(c Change) {
			if c.InitialDone {
				cancel()
				return
			}
			seen++
			time.Sleep(time.Millisecond)
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Watch did not return")
	}
	if seen != n {
		t.Fatalf("saw %d initial values, want %d", seen, n)
	}
}
