//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
)

// psTask is one task of `clusterctl ps -o json`.
type psTask struct {
	Service   string   `json:"service"`
	Task      string   `json:"task"`
	Host      string   `json:"host"`
	State     string   `json:"state"`
	Health    string   `json:"health"`
	IP        string   `json:"ip"`
	Ports     []string `json:"ports"`
	Restarts  int      `json:"restarts"`
	Message   string   `json:"message"`
	Container string   `json:"container"`
}

// ps returns the app's tasks by name ("web.1").
func (c *cli) ps(app string) (map[string]psTask, error) {
	out, err := c.run("ps", "-p", app, "-o", "json")
	if err != nil {
		return nil, err
	}
	var resp struct {
		Tasks []psTask `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return nil, fmt.Errorf("ps -o json: %w: %s", err, out)
	}
	tasks := map[string]psTask{}
	for _, t := range resp.Tasks {
		tasks[t.Task] = t
	}
	return tasks, nil
}

// running checks that exactly the named tasks run (and are healthy where
// they have a healthcheck).
func running(tasks map[string]psTask, names ...string) error {
	for _, n := range names {
		t, ok := tasks[n]
		if !ok || t.State != "running" || (t.Health != "" && t.Health != "healthy") {
			return fmt.Errorf("%s: %+v", n, t)
		}
	}
	if len(tasks) != len(names) {
		return fmt.Errorf("tasks %v, want only %v", keys(tasks), names)
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// writeCompose writes a Compose file into a fresh directory.
func writeCompose(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "compose.yml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// webApp is samples/hello with web at the given replicas and version.
func webApp(replicas int, version string) string {
	return fmt.Sprintf(`services:
  db:
    image: sample/kvdb:latest
    restart: unless-stopped
    volumes: [data:/data]
    healthcheck:
      test: ["CMD", "/kvdb", "health"]
      interval: 1s
      timeout: 3s
      retries: 5
  web:
    image: sample/web:latest
    ports: ["8080:8080"]
    environment:
      DB_URL: http://db:7000
      VERSION: "%s"
    deploy:
      replicas: %d
    depends_on:
      db:
        condition: service_healthy
volumes:
  data:
`, version, replicas)
}

func TestApps(t *testing.T) {
	c := labCLI(t)
	c.must("lab", "up", "--hosts", "3", "--images", images)
	st := c.status()
	hostByName := map[string]labHost{}
	for _, h := range st.Hosts {
		hostByName[h.Name] = h
	}
	nothingOnHosts := func(t *testing.T) {
		t.Helper()
		for _, h := range st.Hosts {
			if left := appResources(t, h, "shop"); len(left) > 0 {
				t.Errorf("%s still has %v", h.Name, left)
			}
		}
	}

	t.Run("bad input creates nothing", func(t *testing.T) {
		c := c.with(t)
		for _, bad := range []struct{ body, want string }{
			{"services:\n  web:\n    image: sample/web:latest\n   ports: [8080]\n", "line 3"},
			{"services:\n  web:\n    image: sample/web:latest\n    depends_on: [dbb]\n", `undefined service "dbb"`},
			{"services:\n  a:\n    image: sample/web:latest\n    depends_on: [b]\n  b:\n    image: sample/web:latest\n    depends_on: [a]\n", "cycle"},
			{"services:\n  web:\n    image: sample/web:latest\n    deploy:\n      placement:\n        constraints: [\"node.labels.zone == mars\"]\n", "web.1: no host fits: 3 hosts: constraint node.labels.zone == mars not met"},
			{"services:\n  web:\n    image: nosuch/image:1\n", "image nosuch/image:1 is not on host"},
			{"services:\n  web:\n    build: .\n", "build the image"},
		} {
			_, err := c.run("up", "-d", "-p", "shop", "-f", writeCompose(t, bad.body))
			if err == nil || !strings.Contains(err.Error(), bad.want) {
				t.Errorf("up of %q: want an error with %q, got %v", bad.body, bad.want, err)
			}
		}
		if _, err := c.run("ps", "-p", "shop"); err == nil {
			t.Error("a refused app exists")
		}
		nothingOnHosts(t)
	})

	t.Run("failure halfway", func(t *testing.T) {
		c := c.with(t)
		broken := "services:\n  ok:\n    image: sample/kvdb:latest\n  broken:\n    image: sample/kvdb:latest\n    entrypoint: [\"/no/such/binary\"]\n"
		out, err := c.run("up", "-d", "-p", "half", "-f", writeCompose(t, broken))
		if err == nil || !strings.Contains(err.Error(), "failed") {
			t.Fatalf("up with a container that cannot start: want a failure, got %v: %s", err, out)
		}
		tasks, err := c.ps("half")
		if err != nil {
			t.Fatal(err)
		}
		if tasks["ok.1"].State != "running" || !strings.HasPrefix(tasks["broken.1"].Message, "failed: ") {
			t.Errorf("after a failed up: %+v", tasks)
		}
		for _, h := range st.Hosts { // everything there is labelled
			list, err := dockerAt(t, h.Docker, h.DockerCertPath).ContainerList(context.Background(), container.ListOptions{All: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, ct := range list {
				if ct.Labels["com.docker.compose.project"] == "" || ct.Labels["io.clusterctl.task"] == "" {
					t.Errorf("%s: container %v without labels", h.Name, ct.Names)
				}
			}
		}
		// Fixed, up again converges.
		c.must("up", "-d", "-p", "half", "-f", writeCompose(t, strings.ReplaceAll(broken, "    entrypoint: [\"/no/such/binary\"]\n", "")))
		if tasks, err := c.ps("half"); err != nil || running(tasks, "ok.1", "broken.1") != nil {
			t.Errorf("after fixing: %+v %v", tasks, err)
		}
		c.must("down", "-p", "half")
	})

	file := writeCompose(t, webApp(1, "1"))
	t.Run("up", func(t *testing.T) {
		c := c.with(t)
		c.must("up", "-d", "-p", "shop", "-f", file)
		tasks, err := c.ps("shop")
		if err != nil {
			t.Fatal(err)
		}
		if err := running(tasks, "db.1", "web.1"); err != nil {
			t.Fatalf("after up: %v", err)
		}
		web := tasks["web.1"]
		if web.IP == "" || !slices.Equal(web.Ports, []string{"8080:8080/tcp"}) {
			t.Errorf("web.1: ip %q ports %v", web.IP, web.Ports)
		}
		// The container is where ps says, labelled as Compose labels it,
		// and serves on its host's address.
		h := hostByName[web.Host]
		info := inspectByName(t, h, "shop-web-1")
		for k, v := range map[string]string{"com.docker.compose.project": "shop", "com.docker.compose.service": "web", "com.docker.compose.container-number": "1"} {
			if info.Config.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, info.Config.Labels[k], v)
			}
		}
		if !strings.HasPrefix(info.Config.Labels["io.clusterctl.task"], "shop.web.1.") {
			t.Errorf("task label %q", info.Config.Labels["io.clusterctl.task"])
		}
		eventually(t, 10*time.Second, "web answers on "+h.Addr, func() error {
			_, err := httpGet(fmt.Sprintf("http://%s:8080/healthz", h.Addr))
			return err
		})
		// Its output, fetched through the managers from its host.
		logs := c.must("logs", "-p", "shop", "web")
		if !strings.Contains(logs, "web.1 | ") || !strings.Contains(logs, "host="+web.Host) {
			t.Errorf("logs web: %q", logs)
		}
	})

	t.Run("restart policy", func(t *testing.T) {
		c := c.with(t)
		tasks, _ := c.ps("shop")
		db := tasks["db.1"]
		d := dockerAt(t, hostByName[db.Host].Docker, hostByName[db.Host].DockerCertPath)
		if err := d.ContainerKill(context.Background(), "shop-db-1", "KILL"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "db restarted", func() error {
			tasks, err := c.ps("shop")
			if err != nil {
				return err
			}
			if db := tasks["db.1"]; db.Restarts < 1 || db.State != "running" {
				return fmt.Errorf("db.1: %+v", db)
			}
			return nil
		})
	})

	t.Run("scale", func(t *testing.T) {
		c := c.with(t)
		c.must("scale", "-p", "shop", "web=2")
		tasks, err := c.ps("shop")
		if err != nil {
			t.Fatal(err)
		}
		if err := running(tasks, "db.1", "web.1", "web.2"); err != nil {
			t.Fatal(err)
		}
		if tasks["web.1"].Host == tasks["web.2"].Host {
			t.Errorf("both web tasks on %s: want them spread", tasks["web.1"].Host)
		}
		_, err = c.run("scale", "-p", "shop", "web=4")
		if err == nil || !strings.Contains(err.Error(), "web.4: no host fits: 3 hosts: port 8080/tcp in use") {
			t.Fatalf("scale to 4 with one port per host: want refused with its reason, got %v", err)
		}
		if tasks, _ := c.ps("shop"); len(tasks) != 3 {
			t.Errorf("a refused scale changed the tasks: %v", keys(tasks))
		}
	})

	t.Run("rolling update", func(t *testing.T) {
		c := c.with(t)
		before, _ := c.ps("shop")
		var mu sync.Mutex
		minRunning := 2
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // watch that web never goes fully down
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				tasks, err := c.ps("shop")
				if err != nil {
					continue
				}
				n := 0
				for _, name := range []string{"web.1", "web.2"} {
					if tasks[name].State == "running" {
						n++
					}
				}
				mu.Lock()
				minRunning = min(minRunning, n)
				mu.Unlock()
			}
		}()
		c.must("up", "-d", "-p", "shop", "-f", writeCompose(t, webApp(2, "2")))
		close(stop)
		<-done
		after, err := c.ps("shop")
		if err != nil {
			t.Fatal(err)
		}
		if err := running(after, "db.1", "web.1", "web.2"); err != nil {
			t.Fatal(err)
		}
		if after["db.1"].Container != before["db.1"].Container {
			t.Error("db was replaced though its spec did not change")
		}
		for _, name := range []string{"web.1", "web.2"} {
			info := inspectByName(t, hostByName[after[name].Host], "shop-"+strings.ReplaceAll(name, ".", "-"))
			if !slices.Contains(info.Config.Env, "VERSION=2") {
				t.Errorf("%s runs env %v, want VERSION=2", name, info.Config.Env)
			}
		}
		if minRunning < 1 {
			t.Errorf("both web tasks were down at once during the rolling update")
		}
	})

	t.Run("host stopped", func(t *testing.T) {
		c := c.with(t)
		tasks, _ := c.ps("shop")
		lost := tasks["web.1"].Host
		c.must("lab", "stop", lost)
		start := time.Now()
		eventually(t, 10*time.Second, "web.1 running elsewhere", func() error {
			tasks, err := c.ps("shop")
			if err != nil {
				return err
			}
			if w := tasks["web.1"]; w.State != "running" || w.Host == lost {
				return fmt.Errorf("web.1: %+v", w)
			}
			return nil
		})
		t.Logf("web.1 back on another host %.1fs after %s stopped", time.Since(start).Seconds(), lost)
		c.must("lab", "start", lost)
		// Its old copy must not run beside the new one.
		eventually(t, 20*time.Second, "old web.1 removed from "+lost, func() error {
			tasks, err := c.ps("shop")
			if err != nil {
				return err
			}
			onLost := 0
			for _, task := range tasks {
				if task.Host == lost {
					onLost++
				}
			}
			if n := countContainers(t, hostByName[lost], "shop"); n != onLost {
				return fmt.Errorf("%s has %d shop containers, the store says %d", lost, n, onLost)
			}
			return nil
		})
	})

	t.Run("down", func(t *testing.T) {
		c := c.with(t)
		c.must("down", "-p", "shop", "-v")
		if _, err := c.run("ps", "-p", "shop"); err == nil {
			t.Error("ps of a removed app worked")
		}
		nothingOnHosts(t)
	})
}

// labHost is a host of `lab status -o json`.
type labHost struct {
	Name           string `json:"name"`
	Addr           string `json:"addr"`
	Docker         string `json:"docker"`
	DockerCertPath string `json:"docker_cert_path"`
	State          string `json:"state"`
}

// inspectByName inspects a container on a host.
func inspectByName(t *testing.T, h labHost, name string) container.InspectResponse {
	t.Helper()
	info, err := dockerAt(t, h.Docker, h.DockerCertPath).ContainerInspect(context.Background(), name)
	if err != nil {
		t.Fatalf("inspect %s on %s: %v", name, h.Name, err)
	}
	return info
}

// countContainers counts an app's containers on a host, running or not.
func countContainers(t *testing.T, h labHost, app string) int {
	t.Helper()
	list, err := dockerAt(t, h.Docker, h.DockerCertPath).ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+app))})
	if err != nil {
		t.Fatalf("list containers on %s: %v", h.Name, err)
	}
	return len(list)
}

// appResources lists what of an app is on a host: containers, networks,
// volumes.
func appResources(t *testing.T, h labHost, app string) []string {
	t.Helper()
	ctx := context.Background()
	d := dockerAt(t, h.Docker, h.DockerCertPath)
	f := filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+app))
	var left []string
	if n := countContainers(t, h, app); n > 0 {
		left = append(left, fmt.Sprintf("%d containers", n))
	}
	nets, err := d.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		left = append(left, "network "+n.Name)
	}
	vols, err := d.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols.Volumes {
		left = append(left, "volume "+v.Name)
	}
	return left
}
