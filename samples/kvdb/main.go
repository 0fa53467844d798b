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
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"

	"github.com/clusterctl/clusterctl/samples/internal/svc"
)

// Defaults used when PORT or DATA_DIR are not set.
const (
	defaultPort    = "7000"
	defaultDataDir = "/data"
)

// program is kvdb as a sample binary: its store in $DATA_DIR behind HTTP.
var program = svc.Program{
	Name:        "kvdb",
	DefaultPort: defaultPort,
	Handler: func(log *slog.Logger) (http.Handler, error) {
		dataDir := svc.Env("DATA_DIR", defaultDataDir)
		st, err := openStore(dataDir)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		log.Info("kvdb store open", "data_dir", dataDir)
		return newHandler(st, log), nil
	},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run is main without the process: the tests call it.
func run(args []string, stderr io.Writer) int { return program.Run(args, stderr) }
