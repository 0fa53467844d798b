// Command web is a small stateless HTTP front end for the orchestrator's
// tests and demo. Each GET / increments the "hits" counter in kvdb and
// reports which Docker host, container IP and database address served it,
// which makes placement and service discovery visible.
//
// Usage:
//
//	web               serve on :$PORT (default 8080), database at $DB_URL (default http://db:7000)
//	web health [URL]  exit 0 if URL (default http://127.0.0.1:$PORT/healthz) answers 200
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/clusterctl/clusterctl/samples/internal/svc"
)

// Defaults used when PORT or DB_URL are not set.
const (
	defaultPort  = "8080"
	defaultDBURL = "http://db:7000"
)

// dbTimeout bounds each database call so a dead database turns into a
// quick 502 instead of a hanging page.
const dbTimeout = 2 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run dispatches between serving and the health subcommand and returns the
// exit code, keeping main trivial and the dispatch testable.
func run(args []string, stderr io.Writer) int {
	port := svc.Env("PORT", defaultPort)
	if len(args) > 0 && args[0] == "health" {
		url := "http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz"
		return svc.HealthCommand(args[1:], url, stderr)
	}
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: web [health [URL]]")
		return 2
	}
	log := svc.NewLogger(stderr)
	if err := serve(port, svc.Env("DB_URL", defaultDBURL), log); err != nil {
		log.Error("web failed", "err", err)
		return 1
	}
	return 0
}

// serve runs the web API on port until SIGTERM or SIGINT, then shuts down
// gracefully.
func serve(port, dbURL string, log *slog.Logger) error {
	if err := checkDBURL(dbURL); err != nil {
		return err
	}
	host, err := hostName()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	context.AfterFunc(ctx, stop) // a second signal kills at once
	a := newApp(dbURL, host, svc.NewClient(dbTimeout), log)
	srv := &http.Server{
		Addr:              ":" + port,
		Handler:           a.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	log.Info("web listening", "addr", srv.Addr, "db_url", dbURL, "host", host)
	return svc.Serve(ctx, srv, log)
}

// checkDBURL fails fast on a malformed DB_URL instead of answering 502 on
// every request.
func checkDBURL(dbURL string) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return fmt.Errorf("invalid DB_URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid DB_URL %q: want http://host:port", dbURL)
	}
	return nil
}

// hostName returns the Docker host name set by the orchestrator in
// DOCKER_HOST_NAME, falling back to this machine's (container's) host name.
func hostName() (string, error) {
	if h := os.Getenv("DOCKER_HOST_NAME"); h != "" {
		return h, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("host name: %w", err)
	}
	return h, nil
}
