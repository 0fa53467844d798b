package engine_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/engine"
	"github.com/clusterctl/clusterctl/engine/enginetest"
)

func TestDescribe(t *testing.T) {
	info := enginetest.Info{Name: "host1", ServerVersion: "20.10.24", Containers: 7, ContainersRunning: 3, NCPU: 4, MemTotal: 8 << 30}
	f := enginetest.Start(t, info, 0)
	endpoint := f.Endpoint
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got := engine.Describe(ctx, engine.Endpoint{Name: "h1", Addr: "10.99.0.11", Docker: endpoint})
	want := engine.HostInfo{
		Name:              "h1",
		Addr:              "10.99.0.11",
		Docker:            endpoint,
		State:             "up",
		Hostname:          "host1",
		Version:           "20.10.24",
		APIVersion:        "1.41",
		Containers:        7,
		ContainersRunning: 3,
		CPUs:              4,
		MemoryBytes:       8 << 30,
	}
	if got != want {
		t.Errorf("Describe =\n  %+v\nwant\n  %+v", got, want)
	}
	if f.Pings() == 0 {
		t.Errorf("client never pinged to negotiate the API version (paths: %v)", f.Paths())
	}
	for _, p := range f.Paths() {
		if p != "/_ping" && !strings.HasPrefix(p, "/v1.41/") {
			t.Errorf("client asked for %s, not a /v1.41 path", p)
		}
	}
}

// The fake engine answers a ping made with GET as well as HEAD, as dockerd does.
func TestFakeEnginePingMethods(t *testing.T) {
	endpoint := enginetest.Start(t, enginetest.Info{}, 0).Endpoint
	url := "http://" + strings.TrimPrefix(endpoint, "tcp://") + "/_ping"
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s /_ping: %v", method, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Api-Version") != "1.41" {
			t.Errorf("%s /_ping = %d, Api-Version %q", method, resp.StatusCode, resp.Header.Get("Api-Version"))
		}
	}
}

func TestDescribeUnreachable(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
	}{
		{"closed port", enginetest.Closed(t)},
		{"bad endpoint", "not a url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := engine.Describe(ctx, engine.Endpoint{Name: "h1", Addr: "10.99.0.11", Docker: tt.endpoint})
			if got.State != "unreachable" {
				t.Errorf("State = %q, want unreachable", got.State)
			}
			if got.Error == "" {
				t.Error("Error is empty")
			}
			if got.Name != "h1" || got.Addr != "10.99.0.11" || got.Docker != tt.endpoint {
				t.Errorf("identity lost: %+v", got)
			}
			if got.Version != "" || got.APIVersion != "" || got.CPUs != 0 {
				t.Errorf("unreachable host has details: %+v", got)
			}
		})
	}
}

func TestDescribeAllOrderAndTimeout(t *testing.T) {
	// The first host answers last, so an answer-order result would show.
	slow := enginetest.Start(t, enginetest.Info{Name: "one", ServerVersion: "20.10.1", NCPU: 1}, 200*time.Millisecond).Endpoint
	hung := enginetest.Hanging(t)
	fast := enginetest.Start(t, enginetest.Info{Name: "three", ServerVersion: "20.10.3", NCPU: 3}, 0).Endpoint
	closed := enginetest.Closed(t)
	hosts := []engine.Endpoint{
		{Name: "host1", Addr: "a1", Docker: slow},
		{Name: "host2", Addr: "a2", Docker: hung},
		{Name: "host3", Addr: "a3", Docker: fast},
		{Name: "host4", Addr: "a4", Docker: closed},
	}
	const timeout = 500 * time.Millisecond

	// A DescribeAll that ignored its timeout would wait for the hung engine
	// until the test ends; fail instead of hanging.
	done := make(chan []engine.HostInfo, 1)
	go func() { done <- engine.DescribeAll(context.Background(), hosts, timeout) }()
	var got []engine.HostInfo
	select {
	case got = <-done:
	case <-time.After(3 * timeout):
		t.Fatalf("DescribeAll did not return within 3x its timeout of %v", timeout)
	}
	if len(got) != len(hosts) {
		t.Fatalf("DescribeAll returned %d results for %d hosts", len(got), len(hosts))
	}
	want := []struct{ name, state, hostname string }{
		{"host1", "up", "one"},
		{"host2", "unreachable", ""},
		{"host3", "up", "three"},
		{"host4", "unreachable", ""},
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.Addr != hosts[i].Addr || g.Docker != hosts[i].Docker || g.State != w.state || g.Hostname != w.hostname {
			t.Errorf("result %d = %+v, want name %s state %s hostname %q", i, g, w.name, w.state, w.hostname)
		}
		if w.state == "up" && (g.APIVersion != "1.41" || g.Error != "") {
			t.Errorf("result %d: APIVersion %q, Error %q", i, g.APIVersion, g.Error)
		}
		if w.state != "up" && g.Error == "" {
			t.Errorf("result %d: unreachable without an error", i)
		}
	}
}

func TestDescribeAllEmpty(t *testing.T) {
	if got := engine.DescribeAll(context.Background(), nil, time.Second); len(got) != 0 {
		t.Errorf("DescribeAll(nil) = %+v", got)
	}
}

func TestWaitReadyWhenServerAnswers(t *testing.T) {
	var ready atomic.Bool
	var pings atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		pings.Add(1)
		if !ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Api-Version", "1.41")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	endpoint := "tcp://" + srv.Listener.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- engine.WaitReady(ctx, endpoint) }()

	select {
	case err := <-done:
		t.Fatalf("WaitReady returned %v before the engine was ready", err)
	case <-time.After(300 * time.Millisecond):
	}
	if pings.Load() < 2 {
		t.Errorf("WaitReady pinged %d times in 300ms, want it to keep polling", pings.Load())
	}
	ready.Store(true)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WaitReady = %v, want nil", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("WaitReady did not return after the engine answered")
	}
}

// An engine that starts listening later (a dockerd booting) is waited for.
func TestWaitReadyServerStartsLater(t *testing.T) {
	endpoint := enginetest.Closed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- engine.WaitReady(ctx, endpoint) }()

	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("WaitReady returned %v with nothing listening", err)
	default:
	}
	l, err := net.Listen("tcp", strings.TrimPrefix(endpoint, "tcp://"))
	if err != nil {
		t.Fatalf("the port was taken meanwhile: %v", err)
	}
	srv := httptest.NewUnstartedServer(&enginetest.Engine{})
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	defer srv.Close()

	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WaitReady = %v, want nil", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("WaitReady did not return after the engine started")
	}
}

func TestWaitReadyContextEnds(t *testing.T) {
	tests := []struct {
		name     string
		endpoint func(testing.TB) string
	}{
		{"nothing listening", enginetest.Closed},
		{"engine hangs", enginetest.Hanging},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endpoint := tt.endpoint(t)
			const timeout = 300 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- engine.WaitReady(ctx, endpoint) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(3 * timeout):
				t.Fatalf("WaitReady did not return within 3x its context's %v", timeout)
			}
			if err == nil {
				t.Fatal("WaitReady = nil, want an error")
			}
			if !strings.Contains(err.Error(), endpoint) {
				t.Errorf("error %q does not name the endpoint %s", err, endpoint)
			}
		})
	}
}

// A manager finds a host's Docker certificate in DIR/HOST, else in DIR
// itself (one for every host), else none: the host is reached plainly.
func TestCertDirOf(t *testing.T) {
	root := t.TempDir()
	for _, dir := range []string{filepath.Join(root, "host1"), root} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := engine.CertDirOf(root, "host1"); got != filepath.Join(root, "host1") {
		t.Errorf("host1: %s, want its own directory", got)
	}
	if got := engine.CertDirOf(root, "host2"); got != root {
		t.Errorf("host2: %s, want the shared %s", got, root)
	}
	if got := engine.CertDirOf("", "host1"); got != "" || engine.HasCerts(got) {
		t.Errorf("no --docker-certs: %q", got)
	}
	if engine.HasCerts(filepath.Join(root, "host3")) {
		t.Error("a directory without cert.pem has certificates")
	}
}
