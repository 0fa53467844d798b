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
	"net/http"
	"os"
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
