package svc

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer ok.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer down.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()

	if err := Probe(context.Background(), ok.URL, time.Second); err != nil {
		t.Fatalf("Probe(200) = %v, want nil", err)
	}
	if err := Probe(context.Background(), down.URL, time.Second); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("Probe(500) = %v, want an error naming the status", err)
	}
	start := time.Now()
	if err := Probe(context.Background(), slow.URL, 200*time.Millisecond); err == nil {
		t.Fatal("Probe(slow) = nil, want a timeout error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Probe(slow) took %v, want it bounded by the timeout", d)
	}
	if err := Probe(context.Background(), "://bad", time.Second); err == nil {
		t.Fatal("Probe(bad URL) = nil, want error")
	}
}

func TestServeShutsDownOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // Serve listens itself; reuse the free port.

	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	})}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, slog.New(slog.DiscardHandler)) }()

	if err := waitHealthy("http://" + addr); err != nil {
		t.Fatalf("server never answered: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel = %v, want nil", err)
		}
	case <-time.After(ShutdownTimeout + time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if err := Probe(context.Background(), "http://"+addr, time.Second); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}

func TestServeReportsListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := &http.Server{Addr: ln.Addr().String()}
	err = Serve(context.Background(), srv, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("Serve on a busy port = %v, want a listen error", err)
	}
}

// waitHealthy polls url until it answers 200 or a deadline passes.
func waitHealthy(url string) error {
	var err error
	for range 50 {
		if err = Probe(context.Background(), url, time.Second); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

func TestHealthCommandExitCodes(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer ok.Close()
	var stderr strings.Builder
	if got := HealthCommand(nil, ok.URL, &stderr); got != 0 || stderr.Len() != 0 {
		t.Fatalf("HealthCommand(default URL up) = %d %q, want 0 and silence", got, stderr.String())
	}
	ok.Close()
	if got := HealthCommand(nil, ok.URL, &stderr); got != 1 || strings.Count(stderr.String(), "\n") != 1 {
		t.Fatalf("HealthCommand(default URL down) = %d %q, want 1 and one line", got, stderr.String())
	}
}

func TestEnv(t *testing.T) {
	t.Setenv("SVC_TEST_VAR", "")
	if got := Env("SVC_TEST_VAR", "def"); got != "def" {
		t.Fatalf("Env(empty) = %q, want def", got)
	}
	t.Setenv("SVC_TEST_VAR", "set")
	if got := Env("SVC_TEST_VAR", "def"); got != "set" {
		t.Fatalf("Env(set) = %q, want set", got)
	}
}
