package huntress

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// endlessReply answers every request with status and a body that goes on
// until the client stops reading (or 1 GiB), and reports on written how many
// bytes of body it wrote.
func endlessReply(t *testing.T, status int) (url string, written <-chan int64) {
	t.Helper()
	out := make(chan int64, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		chunk := []byte(strings.Repeat(`{"text":"Server is busy","code":9}`, 2000))
		var n int64
		for n < 1<<30 {
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		out <- n
	}))
	t.Cleanup(srv.Close)
	return srv.URL, out
}

// A reply body is read through a limit: a HEC (or a proxy) that answers
// with an endless body costs a bounded read, and the client gives up on it
// instead of reading until the request times out.
func TestReplyBodyIsReadBounded(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusOK} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			url, written := endlessReply(t, status)
			c := newClient(t, url, func(c *Config) { c.MaxResponseBytes = 1 << 10; c.Timeout = time.Minute })
			err := c.Send(context.Background(), sampleEvents(1))
			c.CloseIdleConnections()
			if status == http.StatusOK {
				if err != nil {
					t.Fatalf("Send = %v, want nil", err)
				}
			} else {
				var e *Error
				if !errors.As(err, &e) || e.Status != status || len(e.Excerpt) > maxExcerpt || e.HasCode {
					t.Fatalf("Send = %v, want a %d with a bounded excerpt and no code from a cut body", err, status)
				}
			}
			// What the server could write is what the client read plus
			// the sockets' buffers; reading to the end would be 1 GiB.
			select {
			case n := <-written:
				if n >= 64<<20 {
					t.Errorf("the server wrote %d bytes of reply before the client hung up", n)
				}
			case <-time.After(time.Minute):
				t.Fatal("the client is still reading the endless reply")
			}
		})
	}
}

// Reply headers are bounded too.
func TestReplyHeadersAreBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Padding", strings.Repeat("x", 1<<20))
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	err := newClient(t, srv.URL).Send(context.Background(), sampleEvents(1))
	var e *Error
	if !errors.As(err, &e) || e.Status != 0 || !strings.Contains(err.Error(), "headers exceeded") {
		t.Fatalf("Send = %v, want a failure for the oversize reply headers", err)
	}
}
