// Package enginetest serves fake Docker Engine APIs for tests, as httptest
// serves HTTP: an engine that speaks only API 1.41 (the Docker 20.10 of the
// hosts), one that accepts connections and never answers, and an address
// where nothing listens.
package enginetest

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// APIVersion is the only API version a fake engine speaks.
const APIVersion = "1.41"

// Info is what a fake engine says about itself on /info.
type Info struct {
	Name              string
	ServerVersion     string
	Containers        int
	ContainersRunning int
	NCPU              int
	MemTotal          int64
}

// Engine is a running fake engine.
type Engine struct {
	// Endpoint is where it listens, "tcp://127.0.0.1:PORT".
	Endpoint string

	info  Info
	delay time.Duration // before answering /info

	mu    sync.Mutex
	pings int      // ping requests, GET or HEAD
	paths []string // every path asked for
}

// Start serves a fake engine until the test ends. delay holds back its
// /info answer, to make it slow.
func Start(t testing.TB, info Info, delay time.Duration) *Engine {
	t.Helper()
	e := &Engine{info: info, delay: delay}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	e.Endpoint = "tcp://" + srv.Listener.Addr().String()
	return e
}

// Pings counts the pings the engine answered (API version negotiation).
func (e *Engine) Pings() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pings
}

// Paths lists every path the engine was asked for, in order.
func (e *Engine) Paths() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.paths)
}

// ServeHTTP answers /_ping (GET and HEAD, as dockerd does) and /v1.41/info;
// anything else is Docker's 404.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.paths = append(e.paths, r.URL.Path)
	e.mu.Unlock()
	switch {
	case r.URL.Path == "/_ping" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		e.mu.Lock()
		e.pings++
		e.mu.Unlock()
		w.Header().Set("Api-Version", APIVersion)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte("OK"))
		}
	case r.URL.Path == "/v"+APIVersion+"/info" && r.Method == http.MethodGet:
		select {
		case <-time.After(e.delay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Api-Version", APIVersion)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(e.info)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"page not found"}`))
	}
}

// Hanging serves an engine that accepts connections and never answers,
// until the test ends, and returns its endpoint.
func Hanging(t testing.TB) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return "tcp://" + srv.Listener.Addr().String()
}

// Closed returns an endpoint on a port where nothing listens.
func Closed(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "tcp://" + addr
}
