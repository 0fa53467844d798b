package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestHealthCommand(t *testing.T) {
	srv := newTestServer(t, t.TempDir())
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name string
		args []string
		code int
	}{
		{"healthy", []string{"health", srv.URL + "/healthz"}, 0},
		{"status 503", []string{"health", failing.URL}, 1},
		{"not listening", []string{"health", closed.URL}, 1},
		{"too many args", []string{"health", "a", "b"}, 2},
		{"unknown subcommand", []string{"bogus"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := run(tc.args, &stderr); got != tc.code {
				t.Fatalf("run(%q) = %d, want %d (stderr %q)", tc.args, got, tc.code, stderr.String())
			}
			checkStderr(t, tc.code, stderr.String())
		})
	}
}

// checkStderr asserts that success is silent and failure is one line.
func checkStderr(t *testing.T, code int, stderr string) {
	t.Helper()
	if code == 0 && stderr != "" {
		t.Fatalf("healthy run wrote to stderr: %q", stderr)
	}
	if code != 0 && (strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n")) {
		t.Fatalf("failing run must print exactly one line, got %q", stderr)
	}
}

func TestHealthCommandDefaultURLUsesPORT(t *testing.T) {
	srv := newTestServer(t, t.TempDir())
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PORT", u.Port())
	var stderr bytes.Buffer
	if got := run([]string{"health"}, &stderr); got != 0 {
		t.Fatalf("health with PORT=%s = %d (%q), want 0", u.Port(), got, stderr.String())
	}
	srv.Close()
	stderr.Reset()
	if got := run([]string{"health"}, &stderr); got != 1 {
		t.Fatalf("health after server closed = %d, want 1", got)
	}
	checkStderr(t, 1, stderr.String())
}
