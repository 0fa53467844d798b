// Package svc holds the process plumbing shared by the sample binaries
// (kvdb and web): environment defaults, logging, graceful HTTP shutdown and
// the "health" subcommand used by container healthchecks. Keeping it in one
// place means both samples behave identically under the orchestrator.
package svc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// ShutdownTimeout bounds graceful shutdown. It is below Docker's default
// 10 s stop grace period so in-flight requests finish before SIGKILL.
const ShutdownTimeout = 5 * time.Second

// Env returns the value of the environment variable key, or def when it is
// unset or empty, because the samples are configured only through the
// environment (Compose, orchestrator) and need sane defaults.
func Env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// NewLogger returns the text slog logger both samples use, so their output
// looks the same in `docker logs`.
func NewLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}

// NewClient returns an HTTP client with the given overall timeout that never
// goes through a proxy: the samples talk to peers on the container network
// and must report the address they really reached, not a proxy's.
func NewClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &http.Client{Transport: tr, Timeout: timeout}
}

// Serve runs srv until ctx is cancelled (typically by SIGTERM) and then shuts
// it down gracefully, so `docker stop` never cuts an acknowledged write or an
// in-flight request. It returns nil after a clean shutdown.
func Serve(ctx context.Context, srv *http.Server, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("listen on %s: %w", srv.Addr, err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("listen on %s: %w", srv.Addr, err)
	}
	return nil
}

// Program is a sample binary: serving HTTP on $PORT, or the health
// subcommand. Both samples are run the same way, so their main is this.
type Program struct {
	Name        string
	DefaultPort string
	// Handler builds the HTTP handler from the environment, logging its
	// configuration; an error ends the program with exit code 1.
	Handler func(log *slog.Logger) (http.Handler, error)
}

// Run dispatches between serving and `NAME health [URL]` and returns the exit
// code, keeping main trivial and the dispatch testable.
func (p Program) Run(args []string, stderr io.Writer) int {
	port := Env("PORT", p.DefaultPort)
	if len(args) > 0 && args[0] == "health" {
		url := "http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz"
		return HealthCommand(args[1:], url, stderr)
	}
	if len(args) > 0 {
		fmt.Fprintf(stderr, "usage: %s [health [URL]]\n", p.Name)
		return 2
	}
	log := NewLogger(stderr)
	if err := p.serve(port, log); err != nil {
		log.Error(p.Name+" failed", "err", err)
		return 1
	}
	return 0
}

// serve runs the handler on port until SIGTERM or SIGINT, then shuts down
// gracefully.
func (p Program) serve(port string, log *slog.Logger) error {
	h, err := p.Handler(log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	context.AfterFunc(ctx, stop) // a second signal kills at once
	srv := &http.Server{
		Addr:              ":" + port,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	log.Info(p.Name+" listening", "addr", srv.Addr)
	return Serve(ctx, srv, log)
}
