//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/contextfile"
	"github.com/clusterctl/clusterctl/engine"
	"github.com/clusterctl/clusterctl/internal/testcreds"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/server"
	"github.com/clusterctl/clusterctl/transport"
)

// TestControlPlane runs the managers and agents a lab starts: status and
// hosts from the store, a leader's host powered off in the middle of a
// stream of writes, a partitioned manager, and refusals.
func TestControlPlane(t *testing.T) {
	c := labCLI(t)
	c.must("lab", "up", "--hosts", "4", "--images", images)
	ctxFile, err := contextfile.Load(c.context)
	if err != nil {
		t.Fatal(err)
	}
	addrOf := map[string]string{}
	for _, h := range ctxFile.Hosts {
		addrOf[h.Name] = h.Addr
	}

	t.Run("status and hosts", func(t *testing.T) {
		c := c.with(t)
		var st api.Status
		if err := json.Unmarshal([]byte(c.must("status", "-o", "json")), &st); err != nil {
			t.Fatal(err)
		}
		leaders := 0
		for _, s := range st.Servers {
			if s.State == "leader" {
				leaders++
			}
			if s.State != "leader" && s.State != "follower" {
				t.Errorf("manager %s: %s", s.Name, s.State)
			}
			if !strings.HasPrefix(s.API, "https://"+addrOf[s.Name]+":") {
				t.Errorf("manager %s API %q", s.Name, s.API)
			}
		}
		if len(st.Servers) != 3 || leaders != 1 || st.Term == 0 || addrOf[st.Leader] == "" {
			t.Fatalf("status: %+v", st)
		}
		var hosts api.HostsResponse
		if err := json.Unmarshal([]byte(c.must("hosts", "-o", "json")), &hosts); err != nil {
			t.Fatal(err)
		}
		if len(hosts.Hosts) != 4 {
			t.Fatalf("hosts: %+v", hosts)
		}
		for _, h := range hosts.Hosts {
			if h.State != "up" || h.CPUs == 0 || h.MemoryBytes == 0 || h.Addr != addrOf[h.Name] || h.DockerVersion == "" {
				t.Errorf("host %+v", h)
			}
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		creds, err := ctxFile.Creds()
		if err != nil {
			t.Fatal(err)
		}
		hc := creds.HTTPClient(10 * time.Second)
		base := transport.URL(ctxFile.Servers[0])
		for body, want := range map[string]string{
			`{"value":"x","extra":1}`:    "unknown field",
			`{"value":`:                  "invalid JSON",
			`{"value":"a"}{"value":"b"}`: "more than one value",
		} {
			req, _ := http.NewRequest(http.MethodPut, base+"/v1/vars/k", strings.NewReader(body))
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e api.Error
			_ = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error, want) {
				t.Errorf("PUT %s: %d %q, want 400 with %q", body, resp.StatusCode, e.Error, want)
			}
		}
	})

	t.Run("agents report containers", func(t *testing.T) {
		host4 := ctxFile.Hosts[3]
		d := dockerAt(t, host4.Docker, host4.DockerCertPath)
		startKV(t, d)
		client := c.client()
		eventually(t, 10*time.Second, "host4's kvdb container in the store", func() error {
			resp, err := client.Hosts(context.Background(), false)
			if err != nil {
				return err
			}
			for _, h := range resp.Hosts {
				for _, ctr := range h.Containers {
					if h.Name == "host4" && ctr.Name == "e2e-kvdb" && ctr.State == "running" && ctr.Image == "sample/kvdb:latest" {
						return nil
					}
				}
			}
			return fmt.Errorf("not reported yet")
		})
	})

	t.Run("leader stops during writes", func(t *testing.T) {
		c := c.with(t)
		client := c.client()
		leader := leaderOf(t, client)
		w := startWriter(client)
		w.waitAcked(t, 30)
		stopped := time.Now()
		c.must("lab", "stop", leader)
		var survivors []string
		for _, s := range ctxFile.Servers {
			if !strings.HasPrefix(s, addrOf[leader]+":") {
				survivors = append(survivors, s)
			}
		}
		eventually(t, 3*time.Second, "another manager leads and the API answers", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			st, err := c.client(survivors...).Status(ctx)
			if err != nil || st.Leader == "" || st.Leader == leader {
				return fmt.Errorf("status %+v, %v", st, err)
			}
			return nil
		})
		t.Logf("failover: a new leader answered %s after the stop", time.Since(stopped).Round(time.Millisecond))
		w.waitAcked(t, w.ackedCount()+30)
		acked := w.stop()
		for _, i := range acked {
			v, found, err := client.GetVar(context.Background(), writeKey(i), false)
			if err != nil || !found || v.Value != strconv.Itoa(i) {
				t.Fatalf("acknowledged write %d lost: %+v found=%v err=%v", i, v, found, err)
			}
		}
		eventually(t, 5*time.Second-time.Since(stopped), "the stopped host is marked down", func() error {
			return hostStateIs(client, leader, "down")
		})
		c.must("lab", "start", leader)
		own := c.client(addrOf[leader] + ":7400")
		last := acked[len(acked)-1]
		eventually(t, 15*time.Second, "the restarted manager catches up", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			v, found, err := own.GetVar(ctx, writeKey(last), true)
			if err != nil || !found || v.Value != strconv.Itoa(last) {
				return fmt.Errorf("%+v found=%v %v", v, found, err)
			}
			return nil
		})
		eventually(t, 10*time.Second, "the restarted host is up again", func() error {
			return hostStateIs(client, leader, "up")
		})
	})

	t.Run("partitioned manager catches up", func(t *testing.T) {
		c := c.with(t)
		leader := leaderOf(t, c.client())
		follower := "host1"
		if leader == follower {
			follower = "host2"
		}
		c.must("lab", "partition", follower)
		// Through the managers that are not cut off: a write sent to the
		// partitioned one has an unknown outcome and is not retried.
		var others []string
		for _, srv := range ctxFile.Servers {
			if !strings.HasPrefix(srv, addrOf[follower]+":") {
				others = append(others, srv)
			}
		}
		if _, err := c.client(others...).SetVar(context.Background(), "after-partition", "yes"); err != nil {
			t.Fatal(err)
		}
		c.must("lab", "heal", follower)
		own := c.client(addrOf[follower] + ":7400")
		eventually(t, 15*time.Second, follower+" catches up after heal", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			v, _, err := own.GetVar(ctx, "after-partition", true)
			if err != nil || v.Value != "yes" {
				return fmt.Errorf("%+v %v", v, err)
			}
			return nil
		})
	})

	t.Run("refused managers", func(t *testing.T) { refusedManagers(t, c, ctxFile) })
	t.Run("refused callers", func(t *testing.T) { refusedCallers(t, ctxFile) })
	t.Run("login and token rotation", func(t *testing.T) { loginAndRotate(t, c, ctxFile) })
}

// refusedManagers starts managers that must be refused, on host4 (which
// runs none): a data dir of another cluster, a mismatched cluster ID, a
// name already taken, no token, a worker's token, a forged token. Each
// exits non-zero with one clear line.
func refusedManagers(t *testing.T, c *cli, ctxFile *contextfile.Context) {
	joinA := strings.Join(ctxFile.Servers, ",")
	// Cluster B: one manager of its own on host4.
	dirB := filepath.Join(t.TempDir(), "b")
	clusterB := exec.Command(binary, "lab", "exec", "host4", "--", binary, "server", "--name", "b1", "--bind", "10.99.0.14",
		"--data-dir", dirB, "--bootstrap")
	if err := clusterB.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = clusterB.Process.Kill(); _ = clusterB.Wait() })
	eventually(t, 15*time.Second, "cluster B has a leader", func() error {
		credsB, err := transport.LoadCreds(filepath.Join(dirB, server.AdminDirName))
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := api.NewClient([]string{"10.99.0.14:7400"}, credsB).Status(ctx)
		if err != nil || st.Leader != "b1" || st.ClusterID == "" {
			return fmt.Errorf("%+v %v", st, err)
		}
		return nil
	})
	// A copy of host1's data dir (cluster A), pointed at cluster B.
	dirA := filepath.Join(t.TempDir(), "a")
	if out, err := exec.Command("cp", "-a", "/var/lib/clusterctl/lab/hosts/host1/server", dirA).CombinedOutput(); err != nil {
		t.Fatalf("copy host1's data dir: %v: %s", err, out)
	}
	before := treeHash(t, dirA)
	managerToken := c.must("token", "show", "manager")
	workerToken := c.must("token", "show", "worker")
	tok, err := pki.ParseToken(managerToken)
	if err != nil {
		t.Fatal(err)
	}
	tok.Secret = strings.Repeat("a", len(tok.Secret)) // this cluster's CA, a made-up secret
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"another cluster's data dir", []string{"--name", "host1", "--data-dir", dirA, "--join", "10.99.0.14:7400"}, "belongs to cluster"},
		{"mismatched cluster ID", []string{"--name", "m9", "--data-dir", filepath.Join(t.TempDir(), "m9"), "--cluster-id", "not-this-cluster", "--join", joinA, "--token", managerToken}, "refusing to join"},
		{"name already taken", []string{"--name", "host2", "--data-dir", filepath.Join(t.TempDir(), "dup"), "--join", joinA, "--token", managerToken}, `another manager named "host2"`},
		{"no token", []string{"--name", "m8", "--data-dir", filepath.Join(t.TempDir(), "m8"), "--join", joinA}, "join with a token"},
		{"a worker's token", []string{"--name", "m7", "--data-dir", filepath.Join(t.TempDir(), "m7"), "--join", joinA, "--token", workerToken}, "a manager joins with the manager token"},
		{"a forged token", []string{"--name", "m6", "--data-dir", filepath.Join(t.TempDir(), "m6"), "--join", joinA, "--token", tok.String()}, "manager join token is not valid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"lab", "exec", "host4", "--", binary, "server", "--bind", "10.99.0.14", "--api-port", "7500", "--raft-port", "7501"}, tc.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			lastLine := lines[len(lines)-1]
			if err == nil || !strings.HasPrefix(lastLine, "clusterctl: ") || !strings.Contains(lastLine, tc.want) {
				t.Fatalf("want exit != 0 ending in one line with %q; got %v:\n%s", tc.want, err, out)
			}
		})
	}
	if after := treeHash(t, dirA); after != before {
		t.Fatal("a refused manager changed the data dir it was pointed at")
	}
}

// refusedCallers calls the lab's ports as callers they must refuse: none
// is plain HTTP, the API answers no one without a certificate of this
// cluster, a worker's certificate (an agent's) reaches no manager-only or
// operator endpoint, and the agents' and Raft's ports take no operator.
func refusedCallers(t *testing.T, ctxFile *contextfile.Context) {
	operator, err := ctxFile.Creds()
	if err != nil {
		t.Fatal(err)
	}
	worker, err := transport.LoadCreds("/var/lib/clusterctl/lab/hosts/host2/agent/tls")
	if err != nil {
		t.Fatal(err)
	}
	forged := testcreds.Forged(t, operator.Identity().Cluster, pki.RoleClient, "mallory")
	api1 := ctxFile.Servers[0]
	anon := testcreds.NoCert(operator.CAPEM(), 5*time.Second)
	call := func(hc *http.Client, method, url string) (int, string) {
		req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var e api.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error
	}
	for _, tc := range []struct {
		name        string
		hc          *http.Client
		method, url string
		code        int // 0: refused at the handshake
		want        string
	}{
		{"plain HTTP", &http.Client{Timeout: 5 * time.Second}, "GET", "http://" + api1 + "/v1/status", 400, ""},
		{"no certificate", anon, "GET", transport.URL(api1) + "/v1/status", 401, "needs a certificate of this cluster"},
		{"another cluster's certificate", forged.HTTPClient(5 * time.Second), "GET", transport.URL(api1) + "/v1/status", 0, "tls"},
		{"a worker joining Raft", worker.HTTPClient(5 * time.Second), "POST", transport.URL(api1) + "/v1/cluster/join", 403, "is not for a worker"},
		{"a worker deploying", worker.HTTPClient(5 * time.Second), "PUT", transport.URL(api1) + "/v1/apps/evil", 403, "is not for a worker"},
		{"a worker reading a token", worker.HTTPClient(5 * time.Second), "GET", transport.URL(api1) + "/v1/cluster/tokens/manager", 403, "is not for a worker"},
		{"a worker as another host", worker.HTTPClient(5 * time.Second), "POST", transport.URL(api1) + "/v1/hosts/host3/heartbeat", 403, "cannot act for host host3"},
		{"an operator on an agent's port", operator.BulkClient(5 * time.Second), "GET", transport.URL(ctxFile.Hosts[1].Addr+":7947") + "/v1/volumes/x", 0, "tls"},
	} {
		code, msg := call(tc.hc, tc.method, tc.url)
		if code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, code, msg, tc.code, tc.want)
		}
	}
	// A host's Docker requires its client certificate: without one, or
	// with the cluster's, it answers nothing.
	h := ctxFile.Hosts[1]
	for name, certs := range map[string]string{"no certificate": "", "the operator's certificate": operator.Dir()} {
		d, err := engine.ConnectTLS(h.Docker, certs)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := d.Ping(ctx); err == nil {
			t.Errorf("Docker on %s answered a client with %s", h.Name, name)
		}
		cancel()
		d.Close()
	}
	// Raft's port: an operator's certificate gets no answer.
	conn, err := tls.Dial("tcp", ctxFile.Hosts[0].Addr+":7401", operator.ClientTLS(pki.RoleManager))
	if err == nil {
		_, _ = conn.Write([]byte{0})
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("an operator on Raft's port: %v, want a TLS refusal", err)
	}
}

// loginAndRotate gets an operator's certificate with `clusterctl login`
// and uses it, then rotates the manager token: the old one no longer logs
// in, the new one does, and the first login's certificate still works.
func loginAndRotate(t *testing.T, c *cli, ctxFile *contextfile.Context) {
	servers := strings.Join(ctxFile.Servers, ",")
	manager := c.must("token", "show", "manager")
	worker := c.must("token", "show", "worker")
	alice := newCLI(t)
	out := alice.must("login", "--servers", servers, "--token", manager, "--name", "alice")
	if !strings.Contains(out, "as client alice") {
		t.Errorf("login said %q", out)
	}
	if _, err := alice.run("status"); err != nil {
		t.Errorf("status after login: %v", err)
	}
	if _, err := newCLI(t).run("login", "--servers", servers, "--token", worker); err == nil || !strings.Contains(err.Error(), "a client joins with the manager token") {
		t.Errorf("login with the worker token: %v", err)
	}
	rotated := strings.TrimSpace(c.must("token", "rotate", "manager"))
	if rotated == strings.TrimSpace(manager) {
		t.Fatal("the rotated token is the old one")
	}
	if _, err := newCLI(t).run("login", "--servers", servers, "--token", manager); err == nil || !strings.Contains(err.Error(), "manager join token is not valid") {
		t.Errorf("login with the rotated-out token: %v", err)
	}
	if _, err := newCLI(t).run("login", "--servers", servers, "--token", rotated, "--name", "bob"); err != nil {
		t.Errorf("login with the new token: %v", err)
	}
	if _, err := alice.run("status"); err != nil {
		t.Errorf("status with a certificate from before the rotation: %v", err)
	}
}

// treeHash hashes every file's path (relative to dir) and content under
// dir, so that two copies of a tree compare equal.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func leaderOf(t *testing.T, c *api.Client) string {
	t.Helper()
	st, err := c.Status(context.Background())
	if err != nil || st.Leader == "" {
		t.Fatalf("status: %+v %v", st, err)
	}
	return st.Leader
}

func hostStateIs(c *api.Client, name, want string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := c.Hosts(ctx, false)
	if err != nil {
		return err
	}
	for _, h := range resp.Hosts {
		if h.Name == name && string(h.State) == want {
			return nil
		}
	}
	return fmt.Errorf("%s is not %s", name, want)
}

func writeKey(i int) string { return fmt.Sprintf("w%05d", i) }

// writer writes w00000, w00001, ... one after another, remembering which
// writes were acknowledged.
type writer struct {
	mu    sync.Mutex
	acked []int
	done  chan struct{}
	wg    sync.WaitGroup
}

func startWriter(c *api.Client) *writer {
	w := &writer{done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-w.done:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.SetVar(ctx, writeKey(i), strconv.Itoa(i))
			cancel()
			if err == nil {
				w.mu.Lock()
				w.acked = append(w.acked, i)
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *writer) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *writer) waitAcked(t *testing.T, n int) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("%d acknowledged writes", n), func() error {
		if got := w.ackedCount(); got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
}

func (w *writer) stop() []int {
	close(w.done)
	w.wg.Wait()
	return w.acked
}
