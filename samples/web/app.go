package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
)

// hitsResponse is the JSON answer of GET /. It tells a demo viewer which
// Docker host served the request, from which IP, and which kvdb instance
// (ip:port) it actually reached.
type hitsResponse struct {
	Hits int64  `json:"hits"`
	Host string `json:"host"`
	IP   string `json:"ip"`
	DB   string `json:"db"`
}

// errorResponse is the JSON answer when the database cannot be reached.
type errorResponse struct {
	Error string `json:"error"`
}

// app serves the web sample; it counts hits in kvdb.
type app struct {
	incrURL string // full URL of POST /incr/hits on the database
	host    string // Docker host name reported to clients
	client  *http.Client
	log     *slog.Logger
}

// newApp returns an app that increments hits at dbURL and reports host.
func newApp(dbURL, host string, client *http.Client, log *slog.Logger) *app {
	return &app{
		incrURL: strings.TrimRight(dbURL, "/") + "/incr/hits",
		host:    host,
		client:  client,
		log:     log,
	}
}

// routes returns the web sample's HTTP API.
func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.index)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok")
	})
	return mux
}

// index counts a hit in the database and reports where it was served from.
func (a *app) index(w http.ResponseWriter, r *http.Request) {
	hits, dbAddr, err := a.incrHits(r.Context())
	if err != nil {
		a.log.Warn("database call failed", "err", err)
		writeJSON(w, http.StatusBadGateway, errorResponse{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, hitsResponse{Hits: hits, Host: a.host, IP: ownIPv4(), DB: dbAddr})
}

// incrHits calls POST /incr/hits and returns the new count together with the
// remote address of the connection that carried this very request (recorded
// by httptrace, so it is right with keep-alive connections too).
func (a *app) incrHits(ctx context.Context) (int64, string, error) {
	var conn connAddr
	ctx = httptrace.WithClientTrace(ctx, conn.trace())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.incrURL, nil)
	if err != nil {
		return 0, "", fmt.Errorf("build database request: %w", err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("database: %w", err)
	}
	defer resp.Body.Close()
	n, err := parseCount(resp)
	if err != nil {
		return 0, "", fmt.Errorf("database %s: %w", a.incrURL, err)
	}
	return n, conn.get(), nil
}

// parseCount reads the plain-text counter from a kvdb incr response.
func parseCount(resp *http.Response) (int64, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return 0, fmt.Errorf("read response: %w", err)
	}
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("answered %s: %s", resp.Status, firstLine(text))
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("answered a non-integer count %q", firstLine(text))
	}
	return n, nil
}

// firstLine keeps error messages to a single line.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// connAddr records the remote address of the connection a request got. The
// transport may retry on a new connection, so the last one wins; the mutex
// guards against the trace hook running on another goroutine.
type connAddr struct {
	mu   sync.Mutex
	addr string
}

// trace returns a ClientTrace whose GotConn hook records the address.
func (c *connAddr) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.addr = info.Conn.RemoteAddr().String()
		},
	}
}

// get returns the recorded address.
func (c *connAddr) get() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ownIPv4 returns the first non-loopback IPv4 address of the up interfaces,
// or "" if there is none; it is looked up per request because containers
// can be attached to networks after they start.
func ownIPv4() string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		if ip := firstIPv4(addrs); ip != "" {
			return ip
		}
	}
	return ""
}

// firstIPv4 returns the first non-loopback IPv4 address in addrs, or "".
func firstIPv4(addrs []net.Addr) string {
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if ip4 := ipnet.IP.To4(); ip4 != nil && !ip4.IsLoopback() {
			return ip4.String()
		}
	}
	return ""
}
