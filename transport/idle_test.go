package transport

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A server that stops answering makes a bulk request fail after the idle
// time, with an error that says so, rather than hang.
func TestBulkClientGivesUpOnASilentPeer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // never answers until the test ends
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	_, err := BulkClient(200 * time.Millisecond).Get(srv.URL)
	var idle *IdleError
	if !errors.As(err, &idle) || !strings.Contains(err.Error(), "no answer from") {
		t.Fatalf("get from a silent server: %v, want an IdleError", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("gave up after %s, want about the idle time", took)
	}
}

// A peer that keeps answering, slowly, is not given up on.
func TestBulkClientKeepsASlowPeer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 5 {
			_, _ = w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	defer srv.Close()
	resp, err := BulkClient(300 * time.Millisecond).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "xxxxx" {
		t.Fatalf("read %q, %v", b, err)
	}
}
