package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// newTestServer serves a store in dir; the server is closed at test end.
func newTestServer(t *testing.T, dir string) *httptest.Server {
	t.Helper()
	st, err := openStore(dir)
	if err != nil {
		t.Fatalf("openStore(%s): %v", dir, err)
	}
	srv := httptest.NewServer(newHandler(st, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv
}

// send performs one request and returns the status code and body; it does
// not touch t so goroutines can use it.
func send(method, url string, body io.Reader) (int, string, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// do is send that fails the test on transport errors.
func do(t *testing.T, method, url string, body io.Reader) (int, string) {
	t.Helper()
	code, got, err := send(method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return code, got
}

// want fails the test unless a request answers the expected status and body.
func want(t *testing.T, method, url, body string, wantCode int, wantBody string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	code, got := do(t, method, url, r)
	if code != wantCode || got != wantBody {
		t.Fatalf("%s %s = %d %q, want %d %q", method, url, code, got, wantCode, wantBody)
	}
}

func TestPutGetDelete(t *testing.T) {
	srv := newTestServer(t, t.TempDir())
	u := srv.URL + "/kv/greeting"
	want(t, "GET", u, "", 404, "get greeting: key not found\n")
	want(t, "PUT", u, "hello\x00world", 204, "")
	want(t, "GET", u, "", 200, "hello\x00world")
	want(t, "PUT", u, "replaced", 204, "")
	want(t, "GET", u, "", 200, "replaced")
	want(t, "DELETE", u, "", 204, "")
	want(t, "GET", u, "", 404, "get greeting: key not found\n")
	want(t, "DELETE", u, "", 404, "delete greeting: key not found\n")
	want(t, "POST", u, "", 405, "method not allowed\n")
}

func TestEmptyValue(t *testing.T) {
	srv := newTestServer(t, t.TempDir())
	want(t, "PUT", srv.URL+"/kv/empty", "", 204, "")
	want(t, "GET", srv.URL+"/kv/empty", "", 200, "")
}

func TestIncr(t *testing.T) {
	srv := newTestServer(t, t.TempDir())
	want(t, "POST", srv.URL+"/incr/n", "", 200, "1")
	want(t, "POST", srv.URL+"/incr/n", "", 200, "2")
	want(t, "GET", srv.URL+"/kv/n", "", 200, "2")
	want(t, "PUT", srv.URL+"/kv/n", "41\n", 204, "")
	want(t, "POST", srv.URL+"/incr/n", "", 200, "42")
	want(t, "PUT", srv.URL+"/kv/n", "-1", 204, "")
	want(t, "POST", srv.URL+"/incr/n", "", 200, "0")
	want(t, "GET", srv.URL+"/incr/n", "", 405, "method not allowed\n")
}

func TestIncrNonInteger(t *testing.T) {
	srv := newTestServer(t, t.TempDir())
	for _, v := range []string{"abc", "1.5", "12abc", "0x10", "99999999999999999999"} {
		want(t, "PUT", srv.URL+"/kv/x", v, 204, "")
		want(t, "POST", srv.URL+"/incr/x", "", 409, "incr x: current value is not a decimal integer\n")
		want(t, "GET", srv.URL+"/kv/x", "", 200, v) // unchanged
	}
	want(t, "PUT", srv.URL+"/kv/x", "9223372036854775807", 204, "")
	want(t, "POST", srv.URL+"/incr/x", "", 409, "incr x: counter would overflow int64\n")
}

func TestBadKeys(t *testing.T) {
	dir := t.TempDir()
	srv := newTestServer(t, dir)
	bad := []string{
		"", ".", "..", "%2e%2e", "a/b", "a%2Fb", "a%20b", "%C3%BC", "~tmp-x",
		"a:b", strings.Repeat("k", maxKeyLen+1),
	}
	msg := errBadKey.Error() + "\n"
	for _, k := range bad {
		want(t, "GET", srv.URL+"/kv/"+k, "", 400, msg)
		want(t, "PUT", srv.URL+"/kv/"+k, "v", 400, msg)
		want(t, "DELETE", srv.URL+"/kv/"+k, "", 400, msg)
		want(t, "POST", srv.URL+"/incr/"+k, "", 400, msg)
	}
	if strings.Count(msg, "\n") != 1 {
		t.Fatalf("bad-key message is not one line: %q", msg)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Fatalf("bad keys left files in the data dir: %v (err %v)", entries, err)
	}
}

func TestGoodKeyEdges(t *testing.T) {
	srv := newTestServer(t, t.TempDir())
	for _, k := range []string{"...", "a", "A-z_0.9", strings.Repeat("k", maxKeyLen)} {
		want(t, "PUT", srv.URL+"/kv/"+k, "v-"+k, 204, "")
		want(t, "GET", srv.URL+"/kv/"+k, "", 200, "v-"+k)
	}
}

func TestOversize(t *testing.T) {
	srv := newTestServer(t, t.TempDir())
	u := srv.URL + "/kv/big"
	exact := bytes.Repeat([]byte("x"), maxValueSize)
	if code, _ := do(t, "PUT", u, bytes.NewReader(exact)); code != 204 {
		t.Fatalf("PUT of exactly 1 MiB = %d, want 204", code)
	}
	tooBig := append(exact, 'y')
	code, body := do(t, "PUT", u, bytes.NewReader(tooBig))
	if code != 413 {
		t.Fatalf("PUT of 1 MiB + 1 = %d %q, want 413", code, body)
	}
	// Without Content-Length (chunked) the limit must hold while reading.
	code, body = do(t, "PUT", u, io.MultiReader(bytes.NewReader(tooBig)))
	if code != 413 {
		t.Fatalf("chunked PUT of 1 MiB + 1 = %d %q, want 413", code, body)
	}
	if code, got := do(t, "GET", u, nil); code != 200 || got != string(exact) {
		t.Fatalf("GET after rejected PUTs = %d (len %d), want 200 with the 1 MiB value", code, len(got))
	}
}

func TestDurableAcrossInstances(t *testing.T) {
	dir := t.TempDir()
	first := newTestServer(t, dir)
	want(t, "PUT", first.URL+"/kv/a", "alpha", 204, "")
	want(t, "PUT", first.URL+"/kv/gone", "x", 204, "")
	want(t, "DELETE", first.URL+"/kv/gone", "", 204, "")
	for i := 1; i <= 3; i++ {
		want(t, "POST", first.URL+"/incr/n", "", 200, fmt.Sprint(i))
	}
	first.Close()

	second := newTestServer(t, dir)
	want(t, "GET", second.URL+"/kv/a", "", 200, "alpha")
	want(t, "GET", second.URL+"/kv/n", "", 200, "3")
	want(t, "GET", second.URL+"/kv/gone", "", 404, "get gone: key not found\n")
	want(t, "POST", second.URL+"/incr/n", "", 200, "4")
}

func TestLeftoverTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	leftover := filepath.Join(dir, tempPrefix+"123456")
	if err := os.WriteFile(leftover, []byte("half a write"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kept"), []byte("v"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, dir)
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("leftover temp file still there after open (stat err %v)", err)
	}
	want(t, "GET", srv.URL+"/kv/kept", "", 200, "v")
}

func TestNoTempFilesAfterWrites(t *testing.T) {
	dir := t.TempDir()
	srv := newTestServer(t, dir)
	want(t, "PUT", srv.URL+"/kv/a", "1", 204, "")
	want(t, "POST", srv.URL+"/incr/a", "", 200, "2")
	want(t, "GET", srv.URL+"/healthz", "", 200, "ok")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "a" {
		t.Fatalf("data dir holds %v, want only the key file a", entries)
	}
}

func TestOpenCreatesDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	srv := newTestServer(t, dir)
	want(t, "GET", srv.URL+"/healthz", "", 200, "ok")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("data dir not created: %v", err)
	}
}

func TestHealthzReportsUnusableDir(t *testing.T) {
	dir := t.TempDir()
	srv := newTestServer(t, dir)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	code, _ := do(t, "GET", srv.URL+"/healthz", nil)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("healthz with data dir removed = %d, want 503", code)
	}
}

func TestConcurrentIncr(t *testing.T) {
	srv := newTestServer(t, t.TempDir())
	const n = 100
	results := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			code, body, err := send("POST", srv.URL+"/incr/c", nil)
			if err != nil || code != 200 {
				t.Errorf("incr = %d %q (err %v)", code, body, err)
				return
			}
			if _, err := fmt.Sscan(body, &results[i]); err != nil {
				t.Errorf("incr body %q: %v", body, err)
			}
		})
	}
	wg.Wait()
	want(t, "GET", srv.URL+"/kv/c", "", 200, fmt.Sprint(n))
	sort.Ints(results)
	for i, got := range results {
		if got != i+1 {
			t.Fatalf("incr results sorted[%d] = %d, want %d: each call must see a distinct value", i, got, i+1)
		}
	}
}
