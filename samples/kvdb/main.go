// Command kvdb is a small persistent key-value HTTP server. It exists to give
// the orchestrator's tests and demo a stateful service whose data must
// survive restarts, so every write is fsynced before it is acknowledged.
//
// Usage:
//
//	kvdb               serve on :$PORT (default 7000), data in $DATA_DIR (default /data)
//	kvdb health [URL]  exit 0 if URL (default http://127.0.0.1:$PORT/healthz) answers 200
//
// API: GET/PUT/DELETE /kv/KEY, POST /incr/KEY, GET /healthz.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/clusterctl/clusterctl/samples/internal/svc"
)

// Defaults used when PORT or DATA_DIR are not set.
const (
	defaultPort    = "7000"
	defaultDataDir = "/data"
)

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
		fmt.Fprintln(stderr, "usage: kvdb [health [URL]]")
		return 2
	}
	log := svc.NewLogger(stderr)
	if err := serve(port, svc.Env("DATA_DIR", defaultDataDir), log); err != nil {
		log.Error("kvdb failed", "err", err)
		return 1
	}
	return 0
}

// serve opens the store in dataDir and serves the API on port until SIGTERM
// or SIGINT, then shuts down gracefully.
func serve(port, dataDir string, log *slog.Logger) error {
	st, err := openStore(dataDir)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	context.AfterFunc(ctx, stop) // a second signal kills at once
	srv := &http.Server{
		Addr:              ":" + port,
		Handler:           newHandler(st, log),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	log.Info("kvdb listening", "addr", srv.Addr, "data_dir", dataDir)
	return svc.Serve(ctx, srv, log)
}
