package transport_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/internal/testcreds"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/transport"
)

// A server that stops answering makes a bulk request fail after the idle
// time, with an error that says so, rather than hang.
func TestBulkClientGivesUpOnASilentPeer(t *testing.T) {
	release := make(chan struct{})
	url := testcreds.Serve(t, testcreds.New(t, pki.RoleWorker, "target"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // never answers until the test ends
	}))
	defer close(release)
	start := time.Now()
	_, err := testcreds.New(t, pki.RoleWorker, "sender").BulkClient(200 * time.Millisecond).Get(url)
	var idle *transport.IdleError
	if !errors.As(err, &idle) || !strings.Contains(err.Error(), "no answer from") {
		t.Fatalf("get from a silent server: %v, want an IdleError", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("gave up after %s, want about the idle time", took)
	}
}

// A peer that keeps answering, slowly, is not given up on.
func TestBulkClientKeepsASlowPeer(t *testing.T) {
	url := testcreds.Serve(t, testcreds.New(t, pki.RoleWorker, "target"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 5 {
			_, _ = w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	resp, err := testcreds.New(t, pki.RoleWorker, "sender").BulkClient(300 * time.Millisecond).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "xxxxx" {
		t.Fatalf("read %q, %v", b, err)
	}
}
