package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/samples/internal/svc"
)

// fakeDB imitates kvdb's POST /incr/hits with an in-memory counter.
func fakeDB(t *testing.T) *httptest.Server {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/incr/hits" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, hits.Add(1))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// newWeb serves the web app against dbURL.
func newWeb(t *testing.T, dbURL string) *httptest.Server {
	t.Helper()
	a := newApp(dbURL, "test-host", svc.NewClient(dbTimeout), slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(a.routes())
	t.Cleanup(srv.Close)
	return srv
}

// getJSON GETs url, checks the status and decodes the JSON body into v.
func getJSON(t *testing.T, url string, wantCode int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantCode {
		t.Fatalf("GET %s = %d, want %d", url, resp.StatusCode, wantCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", url, err)
	}
}

func TestIndexCountsHits(t *testing.T) {
	db := fakeDB(t)
	web := newWeb(t, db.URL+"/") // trailing slash must not matter
	for want := int64(1); want <= 3; want++ {
		var got hitsResponse
		getJSON(t, web.URL+"/", http.StatusOK, &got)
		if got.Hits != want {
			t.Fatalf("hits = %d, want %d", got.Hits, want)
		}
		if got.DB != db.Listener.Addr().String() {
			t.Fatalf("db = %q, want the test server's address %q", got.DB, db.Listener.Addr())
		}
		if got.Host != "test-host" {
			t.Fatalf("host = %q, want test-host", got.Host)
		}
		if got.IP != "" && !isNonLoopbackIPv4(got.IP) {
			t.Fatalf("ip = %q, want a non-loopback IPv4 address", got.IP)
		}
	}
}

func TestIndexReportsResolvedAddress(t *testing.T) {
	db := fakeDB(t)
	port := db.Listener.Addr().(*net.TCPAddr).Port
	if _, err := net.LookupHost("localhost"); err != nil {
		t.Fatalf("localhost does not resolve on this machine (/etc/hosts?): %v", err)
	}
	web := newWeb(t, fmt.Sprintf("http://localhost:%d", port))
	var got hitsResponse
	getJSON(t, web.URL+"/", http.StatusOK, &got)
	if got.DB != db.Listener.Addr().String() {
		t.Fatalf("db = %q, want the address actually reached %q", got.DB, db.Listener.Addr())
	}
}

func TestIndexDBErrors(t *testing.T) {
	conflict := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "incr hits: current value is not a decimal integer", http.StatusConflict)
	}))
	defer conflict.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "many")
	}))
	defer garbage.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer slow.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct{ name, dbURL, wantInError string }{
		{"409", conflict.URL, "not a decimal integer"},
		{"non-integer body", garbage.URL, "non-integer"},
		{"unreachable", closed.URL, "database"},
		{"timeout", slow.URL, "database"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got errorResponse
			start := time.Now()
			getJSON(t, newWeb(t, tc.dbURL).URL+"/", http.StatusBadGateway, &got)
			if !strings.Contains(got.Error, tc.wantInError) || strings.Contains(got.Error, "\n") {
				t.Fatalf("error = %q, want one line containing %q", got.Error, tc.wantInError)
			}
			if d := time.Since(start); d > dbTimeout+time.Second {
				t.Fatalf("502 took %v, want it within the %v client timeout", d, dbTimeout)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	web := newWeb(t, fakeDB(t).URL)
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, "ok"},
		{"GET", "/nope", 404, "404 page not found\n"},
		{"POST", "/", 405, "Method Not Allowed\n"},
	} {
		req, _ := http.NewRequest(tc.method, web.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || b.String() != tc.body {
			t.Fatalf("%s %s = %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, b.String(), tc.code, tc.body)
		}
	}
}

func TestFirstIPv4(t *testing.T) {
	cidr := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	addrs := []net.Addr{cidr("127.0.0.1/8"), cidr("fe80::1/64"), cidr("172.18.0.3/16"), cidr("10.0.0.1/8")}
	if got := firstIPv4(addrs); got != "172.18.0.3" {
		t.Fatalf("firstIPv4 = %q, want 172.18.0.3", got)
	}
	if got := firstIPv4(addrs[:2]); got != "" {
		t.Fatalf("firstIPv4(loopback and IPv6 only) = %q, want empty", got)
	}
}

func TestHostName(t *testing.T) {
	t.Setenv("DOCKER_HOST_NAME", "node-a")
	if h, err := hostName(); err != nil || h != "node-a" {
		t.Fatalf("hostName() = %q, %v; want node-a", h, err)
	}
	t.Setenv("DOCKER_HOST_NAME", "")
	want, _ := os.Hostname()
	if h, err := hostName(); err != nil || h != want {
		t.Fatalf("hostName() without env = %q, %v; want os.Hostname() %q", h, err, want)
	}
}

func TestCheckDBURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"http://db:7000": true, "https://db": true, "db:7000": false, "ftp://db": false, "http://": false,
	} {
		if err := checkDBURL(u); (err == nil) != ok {
			t.Errorf("checkDBURL(%q) = %v, want ok=%v", u, err, ok)
		}
	}
}

func TestHealthCommand(t *testing.T) {
	web := newWeb(t, "http://db.invalid")
	var stderr bytes.Buffer
	if got := run([]string{"health", web.URL + "/healthz"}, &stderr); got != 0 {
		t.Fatalf("health against a live web = %d (%q), want 0", got, stderr.String())
	}
	web.Close()
	if got := run([]string{"health", web.URL + "/healthz"}, &stderr); got != 1 {
		t.Fatalf("health against a closed web = %d, want 1", got)
	}
	if strings.Count(stderr.String(), "\n") != 1 {
		t.Fatalf("stderr = %q, want one line", stderr.String())
	}
	if got := run([]string{"serve-please"}, &stderr); got != 2 {
		t.Fatalf("unknown subcommand = %d, want 2", got)
	}
}

// isNonLoopbackIPv4 reports whether s is a non-loopback IPv4 address.
func isNonLoopbackIPv4(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && ip.To4() != nil && !ip.IsLoopback()
}
