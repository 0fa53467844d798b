//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLab brings up a 3-host lab and checks what every later feature relies
// on: separate engines with their own addresses that reach each other,
// hosts that power off and boot with their data, partitions that cut and
// heal, and a teardown that leaves nothing behind.
func TestLab(t *testing.T) {
	before := machineDocker(t)
	c := labCLI(t)
	c.must("lab", "up", "--hosts", "3", "--images", images)

	if _, err := c.run("lab", "up"); err == nil || !strings.Contains(err.Error(), "already up") {
		t.Fatalf("a second lab up: want 'already up', got %v", err)
	}
	st := c.status()
	if len(st.Hosts) != 3 {
		t.Fatalf("lab status: want 3 hosts, got %+v", st)
	}
	addrs := map[string]bool{}
	for _, h := range st.Hosts {
		if h.State != "up" || addrs[h.Addr] {
			t.Fatalf("host %s: state %s, addr %s (want up, distinct)", h.Name, h.State, h.Addr)
		}
		addrs[h.Addr] = true
	}
	addrOf := func(name string) string {
		for _, h := range st.Hosts {
			if h.Name == name {
				return h.Addr
			}
		}
		t.Fatalf("no host %s", name)
		return ""
	}

	t.Run("containers on every host", func(t *testing.T) {
		for _, h := range st.Hosts {
			startKV(t, dockerAt(t, h.Docker, h.DockerCertPath))
		}
		for _, h := range st.Hosts {
			eventually(t, 20*time.Second, h.Name+" kvdb answers", func() error {
				_, err := httpGet(fmt.Sprintf("http://%s:7000/healthz", h.Addr))
				return err
			})
		}
	})

	t.Run("hosts reach each other", func(t *testing.T) {
		c := c.with(t)
		for _, from := range st.Hosts {
			// Every engine, from inside this host's namespaces.
			out, err := c.run("lab", "exec", from.Name, "--", binary, "--context", c.context, "hosts", "--direct", "-o", "json")
			if err != nil {
				t.Fatal(err)
			}
			hostnames := engineHostnames(t, out)
			for _, to := range st.Hosts {
				if hostnames[to.Name] != to.Name {
					t.Errorf("from %s: engine of %s answered as %q", from.Name, to.Name, hostnames[to.Name])
				}
			}
			// Every other host's published port, from a container.
			for _, to := range st.Hosts {
				code, err := probeFrom(dockerAt(t, from.Docker, from.DockerCertPath), fmt.Sprintf("http://%s:7000/healthz", to.Addr))
				if err != nil || code != 0 {
					t.Errorf("container on %s -> %s:7000: exit %d, %v", from.Name, to.Name, code, err)
				}
			}
		}
	})

	t.Run("stop and start keep address and data", func(t *testing.T) {
		c := c.with(t)
		kv := fmt.Sprintf("http://%s:7000/kv/survivor", addrOf("host2"))
		put(t, kv, "still here")
		c.must("lab", "stop", "host2")
		if s := hostState(c, "host2"); s != "stopped" {
			t.Fatalf("host2 after stop: %s", s)
		}
		if _, err := httpGet(kv); err == nil {
			t.Fatal("host2's kvdb still answers after the host stopped")
		}
		out, err := c.run("lab", "exec", "host1", "--", binary, "--context", c.context, "hosts", "--direct", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		if engineHostnames(t, out)["host2"] != "" {
			t.Fatal("host1 still reaches host2's engine after host2 stopped")
		}
		c.must("lab", "start", "host2")
		if s := hostState(c, "host2"); s != "up" {
			t.Fatalf("host2 after start: %s", s)
		}
		eventually(t, 30*time.Second, "host2's kvdb restarts with its data", func() error {
			got, err := httpGet(kv)
			if err == nil && got != "still here" {
				return fmt.Errorf("value %q", got)
			}
			return err
		})
	})

	t.Run("partition and heal", func(t *testing.T) {
		c := c.with(t)
		h1 := dockerAt(t, st.Hosts[0].Docker, st.Hosts[0].DockerCertPath)
		url := fmt.Sprintf("http://%s:7000/healthz", addrOf("host3"))
		c.must("lab", "partition", "host3")
		if s := hostState(c, "host3"); s != "partitioned" {
			t.Fatalf("host3 after partition: %s", s)
		}
		if code, err := probeFrom(h1, url); err != nil || code == 0 {
			t.Fatalf("host1 still reaches partitioned host3 (exit %d, %v)", code, err)
		}
		if _, err := httpGet(url); err == nil {
			t.Fatal("the root namespace still reaches partitioned host3")
		}
		c.must("lab", "heal", "host3")
		eventually(t, 10*time.Second, "host1 reaches host3 after heal", func() error {
			if code, err := probeFrom(h1, url); err != nil || code != 0 {
				return fmt.Errorf("exit %d, %v", code, err)
			}
			return nil
		})
	})

	t.Run("down leaves nothing", func(t *testing.T) {
		c := c.with(t)
		c.must("lab", "down")
		if left := labLeftovers(); len(left) > 0 {
			t.Fatalf("after lab down: %s", strings.Join(left, "; "))
		}
		if _, err := c.run("hosts"); err == nil || !strings.Contains(err.Error(), "no cluster context") {
			t.Fatalf("the lab's context file survived lab down: %v", err)
		}
		if after := machineDocker(t); after != before {
			t.Fatalf("the machine's own Docker changed:\nbefore %s\nafter %s", before, after)
		}
	})
}

// engineHostnames maps host names to the name each engine gave itself in
// `clusterctl hosts -o json` ("" if unreachable).
func engineHostnames(t *testing.T, out string) map[string]string {
	t.Helper()
	var hosts struct {
		Hosts []struct{ Name, Hostname, State string }
	}
	if err := json.Unmarshal([]byte(out), &hosts); err != nil {
		t.Fatalf("hosts -o json: %v: %s", err, out)
	}
	m := map[string]string{}
	for _, h := range hosts.Hosts {
		m[h.Name] = h.Hostname
	}
	return m
}

func hostState(c *cli, name string) string {
	for _, h := range c.status().Hosts {
		if h.Name == name {
			return h.State
		}
	}
	return "missing"
}

// put stores a value in a kvdb.
func put(t *testing.T, url, value string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(value))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT %s: %s %s", url, resp.Status, body)
	}
}
