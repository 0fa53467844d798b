//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/internal/sampleapp"
	"github.com/docker/docker/api/types/container"
	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// overlayApp is web on host1 (its port published through a bridge
// network) counting hits in db, which runs anywhere but host1, the two
// talking over a clusternet network by name.
var overlayApp = sampleapp.App{Name: "shop", Port: 8080, WebOnHost1: true}.Compose()

// webHit is web's answer to GET /.
type webHit struct {
	Hits int    `json:"hits"`
	DB   string `json:"db"` // the address db's name resolved to
}

func getHit(url string) (webHit, error) {
	body, err := httpGet(url)
	if err != nil {
		return webHit{}, err
	}
	var h webHit
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		return h, fmt.Errorf("web answered %q: %w", body, err)
	}
	return h, nil
}

// TestOverlay runs an app across hosts on a clusternet network, through
// the lab hosts' real dockerd: web reaches db by its service name on
// another host; db's host is powered off and db comes back on another host
// with the same address, reachable again at once; an agent restart
// rebuilds a host's data plane; down leaves no devices, leases or network.
func TestOverlay(t *testing.T) {
	c := labCLI(t)
	c.must("lab", "up", "--hosts", "3", "--images", images)
	st := c.status()
	h1 := st.Hosts[0]
	web := "http://" + h1.Addr + ":8080/"
	c.must("up", "-d", "-f", writeCompose(t, overlayApp))

	var first webHit
	eventually(t, 30*time.Second, "web answers with a hit from db", func() error {
		var err error
		first, err = getHit(web)
		return err
	})
	tasks, err := c.ps("shop")
	if err != nil {
		t.Fatal(err)
	}
	db := tasks["db.1"]
	if db.Host == h1.Name || db.IP == "" || first.DB != db.IP+":7000" {
		t.Fatalf("db.1 %+v; web resolved db to %s, want db's cluster address on another host", db, first.DB)
	}
	if next, err := getHit(web); err != nil || next.Hits != first.Hits+1 {
		t.Fatalf("second hit: %+v, %v; want %d", next, err, first.Hits+1)
	}
	n, err := c.network("shop_back")
	if err != nil || len(n.Leases) != 2 {
		t.Fatalf("shop_back: %+v, %v; want db's and web's leases", n, err)
	}

	t.Run("db's host powered off: db comes back elsewhere with its address", func(t *testing.T) {
		c := c.with(t)
		c.must("lab", "stop", db.Host)
		var moved psTask
		eventually(t, 60*time.Second, "db.1 running on another host", func() error {
			tasks, err := c.ps("shop")
			if err != nil {
				return err
			}
			moved = tasks["db.1"]
			if moved.Host == db.Host || !strings.HasPrefix(moved.State, "running") {
				return fmt.Errorf("db.1 %+v", moved)
			}
			return nil
		})
		if moved.IP != db.IP {
			t.Errorf("db.1 came back on %s at %s, want its address %s", moved.Host, moved.IP, db.IP)
		}
		took := eventuallyTimed(t, 10*time.Second, 20*time.Millisecond, "web reaches db on its new host", func() error {
			h, err := getHit(web)
			if err == nil && h.DB != db.IP+":7000" {
				return fmt.Errorf("db resolved to %s, want %s", h.DB, db.IP)
			}
			return err
		})
		t.Logf("db.1 moved %s -> %s, kept %s; web reached it %s after it showed running", db.Host, moved.Host, db.IP, took)
		if took > time.Second {
			t.Errorf("web reached the moved db %s after it showed running, want under 1s", took)
		}
		c.must("lab", "start", db.Host)
	})

	t.Run("names resolve on every host's name service", func(t *testing.T) {
		tasks, err := c.ps("shop")
		if err != nil {
			t.Fatal(err)
		}
		n, err := c.network("shop_back")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"db", "db.shop", "shop-db-1", "web", "shop-web-1"} {
			svc := strings.Split(strings.TrimPrefix(name, "shop-"), ".")[0]
			svc = strings.TrimSuffix(svc, "-1")
			want := tasks[svc+".1"].IP
			for _, h := range c.status().Hosts {
				got, err := lookupIn(t, h.Name, n.Gateway, name)
				if err != nil || len(got) != 1 || got[0] != want {
					t.Errorf("%s on %s's name service: %v, %v; want %s", name, h.Name, got, err, want)
				}
			}
		}
	})

	t.Run("a task's address is refused to anything else", func(t *testing.T) {
		tasks, err := c.ps("shop")
		if err != nil {
			t.Fatal(err)
		}
		d1 := dockerAt(t, h1.Docker, h1.DockerCertPath)
		err = runOnNetwork(d1, "intruder", "shop_back", tasks["db.1"].IP)
		if err == nil || !strings.Contains(err.Error(), "is leased to task") {
			t.Errorf("a container run by hand with db's address %s: %v", tasks["db.1"].IP, err)
		}
		_ = d1.ContainerRemove(context.Background(), "intruder", container.RemoveOptions{Force: true})
		if h, err := getHit(web); err != nil || h.DB != tasks["db.1"].IP+":7000" {
			t.Errorf("web after the refused intruder: %+v, %v", h, err)
		}
	})

	t.Run("db's host partitioned, then healed", func(t *testing.T) {
		c := c.with(t)
		tasks, err := c.ps("shop")
		if err != nil {
			t.Fatal(err)
		}
		dbHost := tasks["db.1"].Host
		c.must("lab", "partition", dbHost)
		healed := false
		t.Cleanup(func() {
			if !healed {
				_, _ = c.run("lab", "heal", dbHost)
			}
		})
		eventually(t, 10*time.Second, "web loses db", func() error {
			if _, err := getHit(web); err == nil {
				return fmt.Errorf("web still reaches db on the partitioned %s", dbHost)
			}
			return nil
		})
		c.must("lab", "heal", dbHost)
		healed = true
		took := eventuallyTimed(t, 30*time.Second, 50*time.Millisecond, "web reaches db again", func() error { _, err := getHit(web); return err })
		t.Logf("web reached db again %s after %s was healed", took, dbHost)
	})

	t.Run("agent restart rebuilds the data plane", func(t *testing.T) {
		c := c.with(t)
		n, err := c.network("shop_back")
		if err != nil {
			t.Fatal(err)
		}
		vx := fmt.Sprintf("cnvx%d", n.VNI)
		c.must("lab", "kill", h1.Name, "agent")
		c.must("lab", "exec", h1.Name, "--", "ip", "link", "del", vx)
		if _, err := getHit(web); err == nil {
			t.Fatal("web still reaches db with host1's VXLAN device gone: the test proves nothing")
		}
		c.must("lab", "revive", h1.Name, "agent")
		eventually(t, 15*time.Second, "web reaches db again", func() error { _, err := getHit(web); return err })
	})

	t.Run("down leaves no devices, leases or network", func(t *testing.T) {
		c := c.with(t)
		c.must("down")
		eventually(t, 30*time.Second, "shop_back gone", func() error {
			out := c.must("network", "ls")
			if strings.Contains(out, "shop_back") {
				return fmt.Errorf("network ls:\n%s", out)
			}
			return nil
		})
		for _, h := range c.status().Hosts {
			out := c.must("lab", "exec", h.Name, "--", "ip", "-br", "link")
			if strings.Contains(out, "cnbr") || strings.Contains(out, "cnvx") || strings.Contains(out, "cnh") {
				t.Errorf("%s keeps overlay devices after down:\n%s", h.Name, out)
			}
		}
	})
}

// lookupIn asks the name service on a network's gateway, from inside a
// lab host's network namespace, for a name's addresses.
func lookupIn(t *testing.T, host, gateway, name string) ([]string, error) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(labRunDir, host, "dockerd.pid"))
	if err != nil {
		return nil, err
	}
	ns, err := netns.GetFromPath(fmt.Sprintf("/proc/%s/ns/net", strings.TrimSpace(string(b))))
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	type answer struct {
		addrs []string
		err   error
	}
	done := make(chan answer, 1)
	go func() {
		// A thread of its own in the host's namespace, never reused.
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			done <- answer{err: err}
			return
		}
		resp, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(new(dns.Msg).SetQuestion(dns.Fqdn(name), dns.TypeA), net.JoinHostPort(gateway, "53"))
		if err != nil {
			done <- answer{err: err}
			return
		}
		var out []string
		for _, rr := range resp.Answer {
			if a, ok := rr.(*dns.A); ok {
				out = append(out, a.A.String())
			}
		}
		done <- answer{addrs: out}
	}()
	a := <-done
	return a.addrs, a.err
}
