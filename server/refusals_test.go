package server_test

import (
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/server"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	valid := server.Config{Name: "m1", DataDir: "/var/lib/clusterctl/server", Bind: "127.0.0.1", APIPort: 7400, RaftPort: 7401, Bootstrap: true}
	cases := []struct {
		name   string
		modify func(*server.Config)
		want   string // "" for a valid config
	}{
		{"valid single", func(*server.Config) {}, ""},
		{"valid bootstrap with peers", func(c *server.Config) { c.Join = []string{"10.0.0.1:7400", "10.0.0.2:7400"} }, ""},
		{"valid joiner", func(c *server.Config) { c.Bootstrap, c.Join = false, []string{"10.0.0.1:7400"} }, ""},
		{"valid IPv6 and long name", func(c *server.Config) { c.Bind, c.Name = "::1", strings.Repeat("a", 63) }, ""},
		{"empty name", func(c *server.Config) { c.Name = "" }, `--name "": use 1-63 letters`},
		{"name with a space", func(c *server.Config) { c.Name = "m 1" }, `--name "m 1"`},
		{"name with a slash", func(c *server.Config) { c.Name = "m/1" }, `--name "m/1"`},
		{"name starting with a dash", func(c *server.Config) { c.Name = "-m1" }, `--name "-m1"`},
		{"name too long", func(c *server.Config) { c.Name = strings.Repeat("a", 64) }, "use 1-63 letters"},
		{"no data dir", func(c *server.Config) { c.DataDir = "" }, "--data-dir is required"},
		{"bind a host name", func(c *server.Config) { c.Bind = "localhost" }, `--bind "localhost" is not an IP address`},
		{"bind empty", func(c *server.Config) { c.Bind = "" }, `--bind "" is not an IP address`},
		{"bind with a port", func(c *server.Config) { c.Bind = "127.0.0.1:7400" }, "is not an IP address"},
		{"joiner without join", func(c *server.Config) { c.Bootstrap = false }, "--join is required"},
		{"certificates of a second", func(c *server.Config) { c.CertTTL = time.Second }, "--cert-ttl 1s: use at least 3s"},
	}
	for _, tc := range cases {
		cfg := valid
		tc.modify(&cfg)
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want valid", tc.name, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: valid, want an error saying %q", tc.name, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: error %q does not say %q", tc.name, err, tc.want)
		}
	}

	// Start refuses an invalid config before touching the disk.
	dir := filepath.Join(t.TempDir(), "data")
	cfg := valid
	cfg.DataDir, cfg.Bind, cfg.Log = dir, "not-an-ip", slog.New(slog.DiscardHandler)
	if srv, err := server.Start(cfg); err == nil {
		srv.Shutdown()
		t.Fatal("Start accepted a bind that is not an IP")
	} else if !strings.Contains(err.Error(), "is not an IP address") {
		t.Errorf("Start: %v, want the Validate error", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Start of an invalid config created its data dir: %v", err)
	}
}

// TestStartRefusesAnotherManagersDataDir starts manager "b" on the data dir
// of manager "a".
func TestStartRefusesAnotherManagersDataDir(t *testing.T) {
	t.Parallel()
	a, _ := runSingle(t, "a")
	if !a.stop() || a.err != nil {
		t.Fatalf("stop a: %v", a.err)
	}
	before := hashDir(t, a.cfg.DataDir)
	if _, ok := before["raft.db"]; !ok {
		t.Fatalf("a's data dir has no raft.db: %v", before)
	}
	cfg := a.cfg
	cfg.Name = "b"
	srv, err := server.Start(cfg)
	if err == nil {
		srv.Shutdown()
		t.Fatal(`Start of "b" on a's data dir succeeded`)
	}
	if !strings.Contains(err.Error(), `belongs to manager "a"`) {
		t.Errorf("Start: %v, want it to say the data dir belongs to manager \"a\"", err)
	}
	if diff := sameTree(before, hashDir(t, cfg.DataDir)); diff != "" {
		t.Errorf("the refused Start changed the data dir: %s", diff)
	}
}

// TestStartRefusesOtherClusterID starts a manager on its own data dir but
// with --cluster-id of another cluster.
func TestStartRefusesOtherClusterID(t *testing.T) {
	t.Parallel()
	a, clusterID := runSingle(t, "a")
	if !a.stop() || a.err != nil {
		t.Fatalf("stop a: %v", a.err)
	}
	before := hashDir(t, a.cfg.DataDir)
	cfg := a.cfg
	cfg.ClusterID = "0badc0de-0000-4000-8000-000000000000"
	srv, err := server.Start(cfg)
	if err == nil {
		srv.Shutdown()
		t.Fatal("Start with another --cluster-id succeeded")
	}
	for _, want := range []string{"belongs to cluster", clusterID, cfg.ClusterID} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start: %v, want it to say %q", err, want)
		}
	}
	if diff := sameTree(before, hashDir(t, cfg.DataDir)); diff != "" {
		t.Errorf("the refused Start changed the data dir: %s", diff)
	}

	// The data dir's own cluster ID is accepted, and it is the same cluster.
	cfg.ClusterID = clusterID
	m := startManager(t, cfg)
	st := readyStatus(t, m.client(), 1, 20*time.Second)
	if st.ClusterID != clusterID {
		t.Errorf("restarted with --cluster-id %s, serves cluster %s", clusterID, st.ClusterID)
	}
}

// TestRunRefusesDuplicateName joins a second manager named like the
// running one to its cluster.
func TestRunRefusesDuplicateName(t *testing.T) {
	t.Parallel()
	first, _ := runSingle(t, "m1")
	cfg := managerConfig(t, "m1", first.cfg.Log)
	cfg.Bootstrap, cfg.Join, cfg.Token = false, []string{first.addr()}, token(t, first, pki.RoleManager)
	_, err := tryStartManager(t, cfg)
	if err == nil || !strings.Contains(err.Error(), `another manager named "m1"`) {
		t.Fatalf("Start: %v, want it to refuse: another manager named \"m1\"", err)
	}
	assertAlone(t, first)
}

// TestRunRefusesOtherClusterOnJoin joins a manager whose --cluster-id is
// not the running cluster's.
func TestRunRefusesOtherClusterOnJoin(t *testing.T) {
	t.Parallel()
	first, clusterID := runSingle(t, "m1")
	cfg := managerConfig(t, "m2", first.cfg.Log)
	cfg.Bootstrap, cfg.Join, cfg.Token = false, []string{first.addr()}, token(t, first, pki.RoleManager)
	cfg.ClusterID = "0badc0de-0000-4000-8000-000000000000"
	_, err := tryStartManager(t, cfg)
	if err == nil {
		t.Fatal("Start joined a cluster of another ID")
	}
	for _, want := range []string{"refusing to join", clusterID, cfg.ClusterID} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start: %v, want it to say %q", err, want)
		}
	}
	assertAlone(t, first)
}

// assertAlone checks that a single-manager cluster still has only its
// manager, at its address, and still works.
func assertAlone(t *testing.T, m *manager) {
	t.Helper()
	f := m.srv.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	servers := f.Configuration().Servers
	if len(servers) != 1 || string(servers[0].ID) != m.cfg.Name || string(servers[0].Address) != m.cfg.RaftAddr() {
		t.Errorf("raft configuration after the refusal: %+v, want only %s at %s", servers, m.cfg.Name, m.cfg.RaftAddr())
	}
	client := m.client()
	readyStatus(t, client, 1, 10*time.Second)
	if _, err := client.SetVar(ctxT(t, callTimeout), "still", "works"); err != nil {
		t.Errorf("SetVar after the refusal: %v", err)
	}
}

// TestStartAPIPortInUse starts a manager whose API port is taken.
func TestStartAPIPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cfg := managerConfig(t, "m1", testLogger(t))
	cfg.APIPort = l.Addr().(*net.TCPAddr).Port
	srv, err := server.Start(cfg)
	if err == nil {
		srv.Shutdown()
		t.Fatal("Start succeeded on a port in use")
	}
	addr := "127.0.0.1:" + strconv.Itoa(cfg.APIPort)
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("Start: %v, want it to name %s", err, addr)
	}
	for _, f := range []string{"raft.db", "server.json"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after the refused Start: %v, want none", f, err)
		}
	}
	// Nothing was left listening on the Raft port.
	rl, err := net.Listen("tcp", cfg.RaftAddr())
	if err != nil {
		t.Errorf("the Raft port is still taken after the refused Start: %v", err)
	} else {
		rl.Close()
	}
}
