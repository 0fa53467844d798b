//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// volumeInfo is one volume of `clusterctl volume ls -o json`.
type volumeInfo struct {
	Name       string   `json:"name"`
	Backend    string   `json:"backend"`
	Owner      string   `json:"owner"`
	Generation uint64   `json:"generation"`
	UsedBy     []string `json:"used_by"`
}

// volumes returns the cluster's volumes by name.
func (c *cli) volumes() (map[string]volumeInfo, error) {
	out, err := c.run("volume", "ls", "-o", "json")
	if err != nil {
		return nil, err
	}
	var resp struct {
		Volumes []volumeInfo `json:"volumes"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return nil, fmt.Errorf("volume ls -o json: %w", err)
	}
	m := map[string]volumeInfo{}
	for _, v := range resp.Volumes {
		m[v.Name] = v
	}
	return m, nil
}

// runWithVolume starts kvdb on a host with a cluster volume at /data and
// its port published on hostPort; it returns Docker's error, if any.
func runWithVolume(d *client.Client, name, vol, hostPort string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	port := nat.Port("7000/tcp")
	created, err := d.ContainerCreate(ctx,
		&container.Config{Image: "sample/kvdb:latest", ExposedPorts: nat.PortSet{port: {}}},
		&container.HostConfig{
			PortBindings: nat.PortMap{port: {{HostPort: hostPort}}},
			Binds:        []string{vol + ":/data"},
			VolumeDriver: "clustervol",
		}, nil, nil, name)
	if err != nil {
		return err
	}
	return d.ContainerStart(ctx, created.ID, container.StartOptions{})
}

// TestVolumes drives the clustervol plugin through the lab hosts' real
// dockerd: volumes created by Docker and by the CLI, mounted under a lease
// that only one host holds, data written through a container, removal.
func TestVolumes(t *testing.T) {
	c := labCLI(t)
	c.must("lab", "up", "--hosts", "3", "--images", images)
	st := c.status()
	h1, h2 := st.Hosts[0], st.Hosts[1]
	d1, d2 := dockerAt(t, h1.Docker, h1.DockerCertPath), dockerAt(t, h2.Docker, h2.DockerCertPath)
	ctx := context.Background()

	t.Run("bad input creates nothing", func(t *testing.T) {
		c := c.with(t)
		for _, bad := range []struct {
			args []string
			want string
		}{
			{[]string{"volume", "create", "a/b"}, `invalid volume name "a/b"`},
			{[]string{"volume", "create", "a..b"}, `invalid volume name "a..b"`},
			{[]string{"volume", "create", "x", "--opt", "backend=nfs"}, `unknown volume backend "nfs"`},
			{[]string{"volume", "create", "x", "--opt", "backend=block", "--opt", "size=1k"}, `invalid volume size "1k"`},
			{[]string{"volume", "create", "x", "--opt", "colour=red"}, `unknown volume option "colour"`},
			{[]string{"volume", "rm", "nosuch"}, `no volume "nosuch"`},
		} {
			_, err := c.run(bad.args...)
			if err == nil || !strings.Contains(err.Error(), bad.want) {
				t.Errorf("%v: want an error with %q, got %v", bad.args, bad.want, err)
			}
		}
		_, err := d1.VolumeCreate(ctx, volume.CreateOptions{Name: "x", Driver: "clustervol", DriverOpts: map[string]string{"backend": "nfs"}})
		if err == nil || !strings.Contains(err.Error(), `unknown volume backend "nfs"`) {
			t.Errorf("docker volume create -o backend=nfs: %v", err)
		}
		vols, err := c.volumes()
		if err != nil || len(vols) != 0 {
			t.Errorf("volumes after bad input: %v, %v", vols, err)
		}
	})

	for i, backend := range []string{"copy", "block"} {
		t.Run(backend+" volume: lease, data, removal", func(t *testing.T) {
			c := c.with(t)
			name, port := "data-"+backend, fmt.Sprint(7101+i)
			opts := map[string]string{"backend": backend}
			if backend == "block" {
				opts["size"] = "64MiB"
			}
			if _, err := d1.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: "clustervol", DriverOpts: opts}); err != nil {
				t.Fatalf("docker volume create on %s: %v", h1.Name, err)
			}
			if err := runWithVolume(d1, "kv-"+backend, name, port); err != nil {
				t.Fatalf("run with %s on %s: %v", name, h1.Name, err)
			}
			url := "http://" + h1.Addr + ":" + port + "/kv/k"
			value := "written on " + h1.Name + " " + backend
			eventually(t, 20*time.Second, "kvdb answers", func() error { return httpPut(url, value) })
			if got, err := httpGet(url); err != nil || got != value {
				t.Fatalf("read back %q, %v; want %q", got, err, value)
			}
			eventually(t, 10*time.Second, "volume used by the container", func() error {
				vols, err := c.volumes()
				if err != nil {
					return err
				}
				v := vols[name]
				if v.Owner != h1.Name || v.Generation != 1 || v.Backend != backend || len(v.UsedBy) != 1 {
					return fmt.Errorf("volume %+v, want owner %s generation 1 used by kv-%s", v, h1.Name, backend)
				}
				return nil
			})

			err := runWithVolume(d2, "kv-"+backend+"-2", name, port)
			want := fmt.Sprintf("volume %s is attached to %s (lease generation 1)", name, h1.Name)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("mount on %s: want an error with %q, got %v", h2.Name, want, err)
			}

			if _, err := c.run("volume", "rm", name); err == nil || !strings.Contains(err.Error(), "in use by "+h1.Name+"/kv-"+backend) {
				t.Fatalf("volume rm while in use: %v", err)
			}
			for _, d := range []*client.Client{d1, d2} {
				_ = d.ContainerRemove(ctx, "kv-"+backend+"-2", container.RemoveOptions{Force: true})
			}
			if err := d1.ContainerRemove(ctx, "kv-"+backend, container.RemoveOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 20*time.Second, "volume rm once unused", func() error {
				_, err := c.run("volume", "rm", name)
				return err
			})
			if vols, err := c.volumes(); err != nil || len(vols) != 0 {
				t.Errorf("volumes after rm: %v, %v", vols, err)
			}
			leftover := filepath.Join("/var/lib/clusterctl/lab/hosts", h1.Name, "agent/volumes", name)
			if backend == "block" {
				leftover = filepath.Join("/var/lib/clusterctl/lab/shared", name+".img")
			}
			if _, err := os.Lstat(leftover); !os.IsNotExist(err) {
				t.Errorf("%s still exists after volume rm (%v)", leftover, err)
			}
		})
	}
}
