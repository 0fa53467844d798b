package svc

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ProbeTimeout is how long a health probe may take in total. Container
// healthchecks need a quick, bounded answer.
const ProbeTimeout = 2 * time.Second

// Probe returns nil if a GET of url answers 200 OK within timeout, and an
// error describing the failure otherwise. It is the testable core of the
// "health" subcommand.
func Probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health probe: build request: %w", err)
	}
	client := NewClient(timeout)
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health probe: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health probe: GET %s: status %s", url, resp.Status)
	}
	return nil
}

// HealthCommand implements `<binary> health [URL]` and returns the process
// exit code: 0 when healthy, 1 (with one line on stderr) when not, 2 on a
// usage error. Compose healthchecks run it inside scratch images, where no
// curl or wget exists.
func HealthCommand(args []string, defaultURL string, stderr io.Writer) int {
	if len(args) > 1 {
		fmt.Fprintln(stderr, "usage: health [URL]")
		return 2
	}
	url := defaultURL
	if len(args) == 1 {
		url = args[0]
	}
	if err := Probe(context.Background(), url, ProbeTimeout); err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return 1
	}
	return 0
}
