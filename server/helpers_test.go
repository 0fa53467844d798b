package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/server"
	"github.com/clusterctl/clusterctl/transport"
)

// eventually calls check every poll interval until it returns nil, and fails
// the test with check's last error if that does not happen within timeout.
// It returns how long it took.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	return eventuallyEvery(t, timeout, 25*time.Millisecond, what, check)
}

func eventuallyEvery(t *testing.T, timeout, poll time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(poll)
	}
}

// testLogger is a slog logger writing to t.Log until the test ends (logging
// to a finished test panics, and Raft's goroutines may outlive it briefly).
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first, so it runs after every other cleanup
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

// freePorts returns n distinct free TCP ports on 127.0.0.1: all are listened
// on at once (so they differ) and closed before returning.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// manager is a server.Server running its Run in a goroutine.
type manager struct {
	t      *testing.T
	cfg    server.Config
	srv    *server.Server
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, once done is closed
}

// stopTimeout bounds how long a manager may take to stop.
const stopTimeout = 20 * time.Second

// startManager starts a manager and runs it until the test ends (or stop).
func startManager(t *testing.T, cfg server.Config) *manager {
	t.Helper()
	m, err := tryStartManager(t, cfg)
	if err != nil {
		t.Fatalf("start manager %s: %v", cfg.Name, err)
	}
	return m
}

// tryStartManager is startManager returning Start's error.
func tryStartManager(t *testing.T, cfg server.Config) (*manager, error) {
	t.Helper()
	srv, err := server.Start(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &manager{t: t, cfg: cfg, srv: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		m.err = srv.Run(ctx)
	}()
	t.Cleanup(func() {
		if !m.stop() {
			t.Errorf("manager %s did not stop within %v", cfg.Name, stopTimeout)
		}
	})
	return m, nil
}

// stop cancels the manager's Run and waits for it; it reports false if Run
// did not return in time. It may be called more than once.
func (m *manager) stop() bool {
	m.cancel()
	return m.wait(stopTimeout)
}

// wait waits for Run to return by itself and reports whether it did; m.err
// is then Run's result.
func (m *manager) wait(timeout time.Duration) bool {
	select {
	case <-m.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (m *manager) addr() string { return m.cfg.APIAddr() }

// managerConfig is the config of a manager on loopback with fresh ports.
func managerConfig(t *testing.T, name string, log *slog.Logger) server.Config {
	ports := freePorts(t, 2)
	return server.Config{
		Name: name, DataDir: t.TempDir(), Bind: "127.0.0.1",
		APIPort: ports[0], RaftPort: ports[1], Bootstrap: true, Log: log,
	}
}

// adminCreds are the operator's credentials a bootstrapped manager made.
func adminCreds(t *testing.T, m *manager) *transport.Creds {
	t.Helper()
	creds, err := transport.LoadCreds(filepath.Join(m.cfg.DataDir, server.AdminDirName))
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// client is a client of m, as the operator of its cluster (m bootstrapped
// it).
func (m *manager) client() *api.Client { return api.NewClient([]string{m.addr()}, adminCreds(m.t, m)) }

// token is a role's join token, from a bootstrapped manager.
func token(t *testing.T, m *manager, role string) string {
	t.Helper()
	var tok *api.TokenResponse
	eventually(t, 20*time.Second, "the "+role+" token", func() error {
		var err error
		tok, err = m.client().Token(ctxT(t, 2*time.Second), role)
		return err
	})
	return tok.Token
}

// ctxT is a context for one API call (the client retries within it).
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// readyStatus polls the cluster through client until it has a cluster ID, a
// leader and want managers that are all leader or follower, exactly one
// leader, the one Status names.
func readyStatus(t *testing.T, client *api.Client, want int, timeout time.Duration) *api.Status {
	t.Helper()
	var st *api.Status
	eventually(t, timeout, fmt.Sprintf("a cluster of %d managers with a leader", want), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		if st, err = client.Status(ctx); err != nil {
			return err
		}
		return checkStatus(st, want)
	})
	return st
}

func checkStatus(st *api.Status, want int) error {
	if st.ClusterID == "" {
		return errors.New("no cluster ID yet")
	}
	if st.Leader == "" {
		return errors.New("no leader yet")
	}
	if len(st.Servers) != want {
		return fmt.Errorf("%d managers, want %d: %+v", len(st.Servers), want, st.Servers)
	}
	leaders := 0
	for _, s := range st.Servers {
		switch s.State {
		case "leader":
			leaders++
			if s.Name != st.Leader {
				return fmt.Errorf("%s is leader but status says %s leads", s.Name, st.Leader)
			}
		case "follower":
		default:
			return fmt.Errorf("manager %s is %s", s.Name, s.State)
		}
		if s.API == "" {
			return fmt.Errorf("manager %s has no API address yet", s.Name)
		}
	}
	if leaders != 1 {
		return fmt.Errorf("%d leaders: %+v", leaders, st.Servers)
	}
	return nil
}

// runSingle starts a one-manager cluster and waits until it leads and its
// cluster ID is both served and remembered in its data dir.
func runSingle(t *testing.T, name string) (*manager, string) {
	t.Helper()
	m := startManager(t, managerConfig(t, name, testLogger(t)))
	st := readyStatus(t, m.client(), 1, 20*time.Second)
	eventually(t, 10*time.Second, "the data dir remembers the cluster ID", func() error {
		b, err := os.ReadFile(filepath.Join(m.cfg.DataDir, "server.json"))
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), st.ClusterID) {
			return fmt.Errorf("server.json is %s", b)
		}
		return nil
	})
	return m, st.ClusterID
}

// hashDir maps every file under dir (by relative path) to the SHA-256 of
// its contents, and every directory to "dir".
func hashDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatalf("hash %s: %v", dir, err)
	}
	return out
}

// sameTree reports how two hashDir results differ, or "" if they do not.
func sameTree(before, after map[string]string) string {
	var diffs []string
	for p, h := range before {
		switch a, ok := after[p]; {
		case !ok:
			diffs = append(diffs, p+" removed")
		case a != h:
			diffs = append(diffs, p+" changed")
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			diffs = append(diffs, p+" created")
		}
	}
	return strings.Join(diffs, ", ")
}
