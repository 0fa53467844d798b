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
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
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

// program is web as a sample binary: the hit counter in front of $DB_URL.
var program = svc.Program{
	Name:        "web",
	DefaultPort: defaultPort,
	Handler: func(log *slog.Logger) (http.Handler, error) {
		dbURL := svc.Env("DB_URL", defaultDBURL)
		if err := checkDBURL(dbURL); err != nil {
			return nil, err
		}
		host, err := hostName()
		if err != nil {
			return nil, err
		}
		log.Info("web config", "db_url", dbURL, "host", host)
		return newApp(dbURL, host, svc.NewClient(dbTimeout), log).routes(), nil
	},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run is main without the process: the tests call it.
func run(args []string, stderr io.Writer) int { return program.Run(args, stderr) }

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
